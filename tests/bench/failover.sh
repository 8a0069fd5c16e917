# Failover: how long a takeover takes. DRILLS drills (default 100; 0: none) of
# tests/e2e/colo-drills.sh: a colovm pair with a witness, app=kv under a
# client that checks every answer, the primary SIGKILLed at a random moment;
# per drill the time from the kill to the secondary's COLO_EXIT event
# (detection: the channel's reset; the witness's grant; the switch of its
# packet path; RARP), and whether the kill landed in a checkpoint's pause.
# Every drill must also pass the test's own checks (no wrong answer, the
# client's connections go on against the new primary).
#
# NOWITNESS_DRILLS more (default 30; 0: none) without a witness: the
# takeover without the grant's round trip, as QEMU's (which has none).
#
# The guest RAM anchor (hw/anchor.c), against its absence in the same run:
# NOWITNESS_DRILLS more with COLOVM_RAM_ANCHOR=0 (a killed VMM frees its
# guest before its sockets close), and BIG_DRILLS (default 10; 0: none)
# each way with a guest of BIG_MEM MiB (default 1024) that has touched all
# its RAM (--mem-prealloc), no witness.
#
# Then the baseline, QEMU_DRILLS times (default 10; 0: none): QEMU 7.2's own
# COLO of the same guest (tests/bench/two-hosts.bash, as tests/bench/colo.sh
# sets it up), its primary SIGKILLed and `x-colo-lost-heartbeat` sent to
# the secondary at once (QEMU has no heartbeat: it cannot see the loss by
# itself); per drill the time from the kill to the secondary's COLO_EXIT
# event. A host VM killed outright is tests/bench/hostkill.sh.
set -euo pipefail
: "${COLOVM:?}" "${SRC:?}" "${TESTGUEST:?}"
DRILLS=${DRILLS:-100}
QEMU_DRILLS=${QEMU_DRILLS:-10}
NOWITNESS_DRILLS=${NOWITNESS_DRILLS:-30}
BIG_DRILLS=${BIG_DRILLS:-10}
BIG_MEM=${BIG_MEM:-1024}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# drills N WITNESS ANCHOR MEM [PREALLOC]: N drills of colo-drills.sh; a table row
drills() {
	local st=0
	DRILLS=$1 WITNESS=$2 COLOVM_RAM_ANCHOR=$3 MEM=$4 MEM_PREALLOC=${5:-0} \
		bash "$SRC/tests/e2e/colo-drills.sh" >"$log" 2>&1 || st=$?
	grep -E '^--- drill|^FAIL' "$log" | sed 's/^--- //' >&2 || true
	[ $st = 0 ] || { tail -30 "$log" >&2; echo "the drills failed (status $st)"; exit 1; }
	python3 - "$log" "$2" "$3" "$4" "${5:-0}" <<'PY'
import re, sys
t = [int(m.group(1)) for m in re.finditer(r"takeover in (\d+) ms", open(sys.argv[1]).read())]
mid = open(sys.argv[1]).read().count("(mid-checkpoint)")
t.sort()
pct = lambda p: t[min(len(t) - 1, int(round(p / 100 * (len(t) - 1))))]
print("| %d | %s | %s MiB%s | %s | %d ms | %d ms | %d ms | %d |" % (len(t),
      "yes" if sys.argv[2] != "0" else "no", sys.argv[4], ", all touched" if sys.argv[5] != "0" else "",
      "yes" if sys.argv[3] != "0" else "no", pct(50), pct(99), t[-1], mid))
PY
}
echo "| drills | witness | guest RAM | RAM anchor | takeover median | p99 | max | kills in a checkpoint's pause |"
echo "|---|---|---|---|---|---|---|---|"
[ "$DRILLS" = 0 ] || drills "$DRILLS" 1 1 32
if [ "$NOWITNESS_DRILLS" != 0 ]; then
	drills "$NOWITNESS_DRILLS" 0 1 32
	drills "$NOWITNESS_DRILLS" 0 0 32
fi
if [ "$BIG_DRILLS" != 0 ]; then
	drills "$BIG_DRILLS" 0 1 "$BIG_MEM" 1
	drills "$BIG_DRILLS" 0 0 "$BIG_MEM" 1
fi

[ "$QEMU_DRILLS" -gt 0 ] || exit 0
rm -f "$log"
PIN_P=(env) PIN_S=(env)
source "$(dirname "$0")/two-hosts.bash"
bench_two_hosts colovm-f
: >"$tmp/qemu.res"
for ((d = 1, tries = 0; d <= QEMU_DRILLS && tries < QEMU_DRILLS + 3; tries++)); do
	if qemu_colo_start "app=http" && sleep 1 && t=$(qemu_takeover); then
		echo "$t" >>"$tmp/qemu.res"
		echo "QEMU drill $d: kill to x-colo-lost-heartbeat answered, to COLO_EXIT: $t ms" >&2
		d=$((d + 1))
	else
		echo "QEMU drill: the pair did not form or take over, again: $(tail -n 2 "$tmp/p.err" "$tmp/s.err")" >&2
	fi
	qemu_stop
done
echo
python3 - "$tmp/qemu.res" <<'PY'
import sys
rows = [tuple(map(float, l.split()[:2])) for l in open(sys.argv[1]) if l.strip()]
reasons = {}
for l in open(sys.argv[1]):
    if l.strip():
        reasons[l.split()[2]] = reasons.get(l.split()[2], 0) + 1
if not rows:
    sys.exit("no QEMU drill took over")
run = sorted(r[1] for r in rows)
sent = sorted(r[0] for r in rows)
pct = lambda t, p: t[min(len(t) - 1, int(round(p / 100 * (len(t) - 1))))]
print("| QEMU 7.2 COLO drills | kill to COLO_EXIT: median | p99 | max | kill to x-colo-lost-heartbeat answered: median | COLO_EXIT reason |")
print("|---|---|---|---|---|---|")
print("| %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %s |" % (len(run), pct(run, 50), pct(run, 99), run[-1], pct(sent, 50), ", ".join("%s (%d)" % kv for kv in sorted(reasons.items()))))
PY
