# QMP control of a running guest: stop freezes it (no new dirty lines, the
# last RAM checksum stays), query-status says paused, cont resumes it; a
# --watch client sees STOP then RESUME; quit ends colovm with SHUTDOWN.
source "$(dirname "$0")/lib.sh"
need_kvm
[ -x "${COLOVMCTL:-}" ] || skip "colovmctl not built"
[ -f "$TESTGUEST" ] || skip "test guest not built"

S=$TMP/qmp.sock
OUT=$TMP/guest.out
"$COLOVM" run --kernel "$TESTGUEST" --cmdline "app=dirty mb=16 rate=10" \
	--qmp "unix:$S,server" >"$OUT" 2>&1 </dev/null &
VM=$!
on_exit "kill $VM 2>/dev/null"
ctl() { "$COLOVMCTL" --qmp "$S" "$@"; }
dirty_count() { grep -c '^dirty: t=' "$OUT" || true; }
last_sum() { grep '^dirty: t=' "$OUT" | tail -1 | sed 's/.*checksum=//'; }

wait_for_line "$OUT" '^dirty: t=1 ' 30 || { cat "$OUT"; fail "guest did not start dirtying"; }
[ -S "$S" ] || fail "no QMP socket at $S"
[ "$(stat -c %a "$S")" = 600 ] || fail "QMP socket mode $(stat -c %a "$S"), want 600"

ctl --watch >"$TMP/watch.out" 2>"$TMP/watch.err" &
WATCH=$!
on_exit "kill $WATCH 2>/dev/null"
sleep 0.5

st=$(ctl query-status)
echo "$st" | grep -q '"status": "running"' || fail "query-status: $st"
echo "$st" | grep -q '"running": true' || fail "query-status: $st"

note "stop"
ctl stop >/dev/null || fail "stop failed"
st=$(ctl query-status)
echo "$st" | grep -q '"status": "paused"' || fail "after stop, query-status: $st"
echo "$st" | grep -q '"running": false' || fail "after stop, query-status: $st"
sleep 0.3 # a line already in the UART's path may still land
n1=$(dirty_count) s1=$(last_sum)
sleep 2.5
n2=$(dirty_count) s2=$(last_sum)
[ "$n1" = "$n2" ] || fail "guest kept running while stopped ($n1 -> $n2 dirty lines)"
[ "$s1" = "$s2" ] || fail "checksum changed while stopped ($s1 -> $s2)"
note "stopped for 2.5 s: $n1 lines, checksum $s1 unchanged"

note "cont"
ctl cont >/dev/null || fail "cont failed"
ctl query-status | grep -q '"status": "running"' || fail "after cont: not running"
t=0
while [ "$(dirty_count)" -le "$n2" ]; do
	sleep 0.1
	t=$((t + 1))
	[ $t -lt 50 ] || fail "no new dirty lines 5 s after cont"
done
note "resumed: $(dirty_count) lines, checksum $(last_sum)"

note "quit"
ctl quit >/dev/null || fail "quit failed"
st=0
wait $VM || st=$?
[ "$st" = 0 ] || { tail -5 "$OUT"; fail "colovm exited $st after quit, expected 0"; }
wait $WATCH || true
grep -o '"event": "[A-Z_]*"' "$TMP/watch.out" | tr '\n' ' ' >"$TMP/order"
note "events: $(cat "$TMP/order")"
grep -qE '"STOP".*"RESUME".*"SHUTDOWN"' "$TMP/order" || fail "events not STOP, RESUME, SHUTDOWN in order"
grep '"SHUTDOWN"' "$TMP/watch.out" | grep -q '"reason": "host-qmp-quit"' || fail "SHUTDOWN reason"
[ ! -e "$S" ] || fail "socket $S left behind"
! grep -qE 'AddressSanitizer|runtime error' "$OUT" || fail "sanitizer report"
echo "ok: qmp stop/cont/quit"
