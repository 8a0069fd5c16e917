#!/bin/bash
# A plain running VM is protected from QMP (colo-protect), then the secondary
# of the pair is killed (SIGKILL: its host lost power).
# The primary notices at once (EOF on the channel) or at its next checkpoint,
# leaves COLO for RUNNING if a checkpoint held the guest, logs why, and its
# guest keeps running unprotected; a killed peer never crashes it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
port=$((48100 + RANDOM % 90))
d=$TMP
args=(--kernel "$TESTGUEST" --mem 32 --cmdline "app=dirty mb=8 rate=2")

start_secondary "$d" $port "${args[@]}"
"$COLOVM" run "${args[@]}" --serial file:"$d/pri.out" --qmp unix:"$d/pri.sock",server \
	2>"$d/pri.err" &
PRI_PID=$!
on_exit "kill -9 $PRI_PID 2>/dev/null"
wait_for_line "$d/pri.out" '^dirty: t=1 ' 60 || fail "the VM does not run: $(cat "$d/pri.err")"
q "$d/pri.sock" query-colo-status | grep -q '"state": "none"' || fail "a plain VM is not 'none'"
! q "$d/pri.sock" colo-protect uri=tcp:nohost 2>"$d/bad.err" || fail "a bad URI was taken"
grep -q 'Invalid peer URI' "$d/bad.err" || fail "colo-protect bad URI: $(cat "$d/bad.err")"
q "$d/pri.sock" colo-protect uri=tcp:127.0.0.1:$port >/dev/null || fail "colo-protect refused"
wait_state "$d/pri.sock" protected 180 ||
	fail "no pair: $(q "$d/pri.sock" query-colo-status) $(cat "$d/pri.err" "$d/sec.err")"
q "$d/pri.sock" migrate-set-parameters checkpoint-interval=100 >/dev/null
t=0
until [ "$(q "$d/pri.sock" query-colo-stats | jq_ 'd["checkpoints"]')" -ge 5 ]; do
	sleep 0.5
	t=$((t + 1))
	[ $t -lt 240 ] || fail "fewer than 5 checkpoints in 120 s"
done
kill -9 "$SEC_PID"
wait "$SEC_PID" 2>/dev/null || true
note "secondary killed at checkpoint $(q "$d/pri.sock" query-colo-status | jq_ 'd["last-checkpoint"]')"
wait_state "$d/pri.sock" unprotected 60 ||
	fail "the primary did not notice: $(q "$d/pri.sock" query-colo-status)"
st=$(q "$d/pri.sock" query-colo-status)
note "primary: $st"
echo "$st" | grep -qE '"reason": "[^"]*secondary' || fail "no reason naming the secondary: $st"
echo "$st" | grep -q '"last-mode": "primary"' || fail "last-mode: $st"
grep -q 'protection lost' "$d/pri.err" || fail "the primary's log does not say why: $(cat "$d/pri.err")"
q "$d/pri.sock" query-status | grep -q '"status": "running"' ||
	fail "the primary is not running: $(q "$d/pri.sock" query-status)"
# And it keeps serving: new lines after the loss, no lost write.
n0=$(grep -c '^dirty: t=' "$d/pri.out" || true)
t=0
until [ "$(grep -c '^dirty: t=' "$d/pri.out" || true)" -ge $((n0 + 2)) ]; do
	sleep 0.5
	t=$((t + 1))
	[ $t -lt 120 ] || fail "the primary's guest stopped after the loss"
done
! grep -q 'verify failed' "$d/pri.out" || fail "the guest lost a write"
# No new checkpoint is taken, and x-colo-checkpoint says why.
! q "$d/pri.sock" x-colo-checkpoint 2>"$d/ck.err" || fail "x-colo-checkpoint accepted unprotected"
grep -q 'not protected' "$d/ck.err" || fail "x-colo-checkpoint: $(cat "$d/ck.err")"
q "$d/pri.sock" quit >/dev/null || true
wait_exit $PRI_PID 20 || fail "the primary did not quit"
no_crash "$d/pri.err"
echo PASS
