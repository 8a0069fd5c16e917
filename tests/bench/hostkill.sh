# Failover when the primary's whole host dies: DRILLS (default 10) drills of
# tests/e2e/colo-hostkill.sh. Two host VMs (qemu TCG, nested SVM) over a
# link; each drill kills the qemu of the host VM that runs the primary (the
# first one protected from start, each later one handed the guest by
# `migrate --continue`) and the survivor's heartbeat (200 ms x 10) must take
# over while a client checks every answer. Per drill: the heartbeat's silence
# when the survivor gave its primary up, and the time from the kill to its
# COLO_EXIT event seen from outside (the test polls a shared folder every
# 50 ms: +-0.1 s). Runs natively: it starts its own host VMs.
set -euo pipefail
: "${SRC:?}"
DRILLS=${DRILLS:-10}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
st=0
DRILLS=$DRILLS bash "$SRC/tests/e2e/colo-hostkill.sh" >"$log" 2>&1 || st=$?
grep -E '^--- .*drill|^FAIL' "$log" | sed 's/^--- //' >&2 || true
[ $st = 0 ] || { tail -40 "$log" >&2; echo "the drills failed (status $st)"; exit 1; }
python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
d = [(int(a), int(b)) for a, b in re.findall(r"^drill: kill to takeover (\d+) ms, heartbeat silence (\d+) ms", text, re.M)]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
k = [a for a, _ in d]
s = [b for _, b in d]
print("| host VMs killed | kill to takeover: median | max | heartbeat silence: median | max |")
print("|---|---|---|---|---|")
print("| %d | %d ms | %d ms | %d ms | %d ms |" % (len(d), pct(k, 50), max(k), pct(s, 50), max(s)))
PY
