#!/bin/bash
# A COLO pair on 127.0.0.1: app=dirty keeps rewriting its buffer on the
# primary; the secondary (same flags, same key) takes the first sync and then
# a checkpoint every 300 ms plus some on demand (x-colo-checkpoint). For at
# least 20 checkpoints the hash of the secondary's guest RAM right after it
# applied checkpoint N equals the hash of the primary's guest RAM in the
# pause of checkpoint N. query-colo-stats counts them by reason; the guest
# keeps running (its serial lines go on, no verification failure); a quit on
# the primary shuts the secondary down too.
# Both sides start from config files alone (colovm run --config FILE): the
# primary's checkpoint-interval and heartbeat-misses come from its file and
# rule the pair from its start (the secondary logs the heartbeat it got).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
port=$((47900 + RANDOM % 90))
d=$TMP
head -c32 /dev/urandom >"$d/key"
ARGS_CONFIG="mem = 32
cmdline = app=dirty mb=8 rate=2
"
write_config "$d/sec.conf" "$d" sec secondary $CHAN:$port "peer-key = $d/key"
write_config "$d/pri.conf" "$d" pri primary $CHAN:$port "peer-key = $d/key" \
	"checkpoint-interval = 300" "heartbeat-misses = 20"
for f in sec pri; do
	"$COLOVM" check-config "$d/$f.conf" >"$d/$f.check" 2>&1 || fail "check-config $f.conf: $(cat "$d/$f.check")"
done
grep -q "valid: VM pri, primary" "$d/pri.check" || fail "check-config: $(cat "$d/pri.check")"

start_secondary_config "$d" "$d/sec.conf"
q "$d/sec.sock" query-status | grep -q '"inmigrate"' || fail "the secondary is not inmigrate"
q "$d/sec.sock" query-colo-status | grep -q '"waiting"' || fail "the secondary is not waiting"
start_primary_config "$d" pri "$d/pri.conf"
wait_state "$d/pri.sock" protected 180 ||
	fail "no pair: $(q "$d/pri.sock" query-colo-status) $(cat "$d/pri.err" "$d/sec.err")"
note "paired: $(q "$d/pri.sock" query-colo-status)"
q "$d/sec.sock" query-colo-status | grep -q '"protected"' || fail "the secondary is not protected"
# Both run (or are in a checkpoint's pause, run state "colo").
q "$d/pri.sock" query-status | grep -qE '"status": "(running|colo)"' || fail "the primary is not running"
q "$d/sec.sock" query-status | grep -qE '"status": "(running|colo)"' ||
	fail "the secondary is not running: $(q "$d/sec.sock" query-status)"
# The file's tuning, in force from the start: QMP reads it back, and the
# secondary took the primary's heartbeat (100 ms, given up after 20 misses).
q "$d/pri.sock" query-migrate-parameters | grep -q '"checkpoint-interval": 300' ||
	fail "checkpoint-interval = 300 not in force: $(q "$d/pri.sock" query-migrate-parameters)"
grep -q 'heartbeat every 100 ms, the primary given up after 2000 ms' "$d/sec.err" ||
	fail "the secondary did not get heartbeat-misses = 20: $(grep heartbeat "$d/sec.err")"
q "$d/pri.sock" migrate-set-parameters x-colo-ram-digest=true >/dev/null
lines0=$(grep -c '^dirty: t=' "$d/pri.out" || true)

compare_digests "$d" 20 450 4
note "20 checkpoints compared, the last $LAST"
stats=$(q "$d/pri.sock" query-colo-stats)
note "primary stats: $stats"
note "secondary stats: $(q "$d/sec.sock" query-colo-stats)"
n=$(echo "$stats" | jq_ 'd["checkpoints"]')
[ "$n" -ge 20 ] || fail "query-colo-stats counts $n checkpoints"
[ "$(echo "$stats" | jq_ 'd["by-reason"]["periodic"]')" -gt 0 ] || fail "no periodic checkpoint"
[ "$(echo "$stats" | jq_ 'd["by-reason"]["request"]')" -gt 0 ] || fail "no requested checkpoint"
[ "$(echo "$stats" | jq_ 'd["failed"]')" = 0 ] || fail "failed checkpoints"
[ "$(echo "$stats" | jq_ 'd["pages"]["total"] > 0 and d["pause"]["max-ms"] > 0')" = True ] ||
	fail "no pages or pause recorded"
[ "$(q "$d/sec.sock" query-colo-stats | jq_ 'd["checkpoints"]')" -ge 20 ] ||
	fail "the secondary applied fewer than 20 checkpoints"
"$CTL" --qmp "$d/pri.sock" colo-status >"$d/status.txt" || fail "colovmctl colo-status failed"
grep -q 'protected' "$d/status.txt" || fail "colo-status: $(cat "$d/status.txt")"
cat "$d/status.txt" >&2

# The guest goes on: more lines, no lost write, on either side.
lines1=$(grep -c '^dirty: t=' "$d/pri.out" || true)
[ "$lines1" -gt "$lines0" ] || fail "the primary's guest printed nothing during the checkpoints"
! grep -q 'verify failed' "$d/pri.out" "$d/sec.out" || fail "the guest lost a write"
q "$d/pri.sock" query-colo-status | grep -q '"protected"' || fail "no longer protected"

# An orderly end on the primary ends the secondary (FailoverNotice).
q "$d/pri.sock" quit >/dev/null || true
wait_exit $PRI_PID 30 || true
st=0
wait_exit $SEC_PID 30 || st=$?
[ $st = 0 ] || fail "the secondary exited $st after the primary quit: $(tail -3 "$d/sec.err")"
grep -q 'the primary ends the pair' "$d/sec.err" || fail "the secondary did not say why it ended"
no_crash "$d/pri.err" "$d/sec.err"
echo PASS
