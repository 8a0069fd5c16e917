# QMP system_reset reboots the guest (machine reset: devices to power-on
# state, kernel reloaded) and the VM keeps running; x-query-registers finds
# its vCPU in the test guest, which runs on; --reboot makes a guest
# reset reboot too, where by default it ends colovm with status 0.
source "$(dirname "$0")/lib.sh"
need_kvm
[ -x "${COLOVMCTL:-}" ] || skip "colovmctl not built"
sock=$TMP/qmp.sock
"$COLOVM" run --kernel "$TESTGUEST" --cmdline "app=dirty mb=16 rate=10" \
	--qmp "unix:$sock,server" --serial "file:$TMP/console" 2>"$TMP/err" </dev/null &
vm=$!
on_exit "kill $vm 2>/dev/null"
wait_for_line "$TMP/console" '^dirty: t=2 ' 20 || fail "guest did not start"
"$COLOVMCTL" --qmp "$sock" --watch >"$TMP/events" 2>&1 &
watch=$!
on_exit "kill $watch 2>/dev/null"
sleep 0.5
"$COLOVMCTL" --qmp "$sock" system_reset >/dev/null || fail "system_reset refused"
# After the reset the workload starts over: its t=1 line appears a second time
# with the same checksum as the first time (RAM and devices were reset, the
# kernel reloaded).
for _ in $(seq 50); do
	[ "$(grep -c '^dirty: t=1 ' "$TMP/console")" -ge 2 ] && break
	sleep 0.1
done
first=$(grep '^dirty: t=1 ' "$TMP/console" | tr -d '\r' | sed -n 1p)
second=$(grep '^dirty: t=1 ' "$TMP/console" | tr -d '\r' | sed -n 2p)
[ "$(grep -c 'testguest: booted' "$TMP/console")" = 2 ] || fail "guest did not boot again"
[ -n "$second" ] && [ "$first" = "$second" ] ||
	{ cat "$TMP/console"; fail "workload did not restart: '$first' / '$second'"; }
"$COLOVMCTL" --qmp "$sock" query-status | grep -q '"running": true' || fail "not running"
grep -q '"event": "RESET"' "$TMP/events" || { cat "$TMP/events"; fail "no RESET event"; }
# x-query-registers: where the vCPU is, inside the test guest's image (a
# guest at CPL 3: CS RPL 3, paging and long mode on), and the guest runs on.
got=$(hung_guest "$COLOVMCTL" "$sock")
[[ "$got" =~ ^vCPU\ 0\ at\ rip=0x1[0-9a-f]{5}\ rsp=0x[0-9a-f]+\ cr3=0x[0-9a-f]+$ ]] ||
	fail "x-query-registers: $got"
"$COLOVMCTL" --qmp "$sock" x-query-registers | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert len(r) == 1 and r[0]["cs"] & 3 == 3 and int(r[0]["cr0"], 16) >> 31 and int(r[0]["efer"], 16) & 0x400, r' ||
	fail "x-query-registers: not a test guest at CPL 3 in long mode"
n=$(grep -c '^dirty: t=' "$TMP/console")
for _ in $(seq 30); do
	[ "$(grep -c '^dirty: t=' "$TMP/console")" -gt "$n" ] && break
	sleep 0.1
done
[ "$(grep -c '^dirty: t=' "$TMP/console")" -gt "$n" ] || fail "the guest stopped after x-query-registers"
"$COLOVMCTL" --qmp "$sock" quit >/dev/null
st=0
wait $vm || st=$?
[ "$st" = 0 ] || fail "quit: status $st"
echo "ok: system_reset rebooted the guest, RESET event, VM kept running; x-query-registers: $got"

# --reboot: app=hello resets at its end, so the guest boots again and again.
"$COLOVM" run --reboot --kernel "$TESTGUEST" --cmdline app=hello >"$TMP/loop" 2>/dev/null </dev/null &
vm=$!
for _ in $(seq 100); do
	[ "$(grep -c 'hello, world' "$TMP/loop")" -ge 3 ] && break
	sleep 0.1
done
kill -TERM $vm
st=0
wait $vm || st=$?
[ "$st" = 143 ] || fail "--reboot: status $st after SIGTERM"
n=$(grep -c 'hello, world' "$TMP/loop")
[ "$n" -ge 3 ] || fail "--reboot: guest booted $n times, expected >= 3"
echo "ok: --reboot: the guest rebooted $n times until SIGTERM"
