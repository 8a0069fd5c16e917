# Failover: how long a takeover takes. DRILLS drills (default 100) of
# tests/e2e/colo-drills.sh: a colovm pair with a witness, app=kv under a
# client that checks every answer, the primary SIGKILLed at a random moment;
# per drill the time from the kill to the secondary's COLO_EXIT event
# (detection: the channel's reset; the witness's grant; the switch of its
# packet path; RARP), and whether the kill landed in a checkpoint's pause.
# Every drill must also pass the test's own checks (no wrong answer, the
# client's connections go on against the new primary).
#
# Not here yet: a host VM killed outright (detection by the heartbeat, 800 ms
# by default) and QEMU 7.2 COLO's takeover in the same host VM.
set -euo pipefail
: "${COLOVM:?}" "${SRC:?}"
DRILLS=${DRILLS:-100}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
st=0
DRILLS=$DRILLS bash "$SRC/tests/e2e/colo-drills.sh" >"$log" 2>&1 || st=$?
grep -E '^--- drill|^FAIL' "$log" | sed 's/^--- //' >&2 || true
[ $st = 0 ] || { tail -30 "$log" >&2; echo "the drills failed (status $st)"; exit 1; }
python3 - "$log" <<'PY'
import re, sys
t = [int(m.group(1)) for m in re.finditer(r"takeover in (\d+) ms", open(sys.argv[1]).read())]
mid = open(sys.argv[1]).read().count("(mid-checkpoint)")
t.sort()
pct = lambda p: t[min(len(t) - 1, int(round(p / 100 * (len(t) - 1))))]
print("| drills | takeover median | p99 | max | kills in a checkpoint's pause |")
print("|---|---|---|---|---|")
print("| %d | %d ms | %d ms | %d ms | %d |" % (len(t), pct(50), pct(99), t[-1], mid))
PY
