#!/bin/bash
# app=kv on a tap in a netns: 200 keys SET through one TCP connection kept
# open; snapshot-save; the source is killed; a request is sent while no VM
# runs (TCP retransmits it); colovm --restore on the same tap: the data is
# there (GET) and the same connection answers, INCR goes on from the saved
# value. A restore without --net is refused naming the device.
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/tools/netenv.sh"
need_kvm
need_netns
CTL=${COLOVMCTL:?}
net_setup

vm_start src colovm "app=kv" --qmp unix:"$TMP/q.sock",server

nsx python3 "$SRC/tests/guest/tools/kvhold.py" "$TMP" 60 >"$TMP/client.out" 2>&1 &
cpid=$!
on_exit "kill $cpid 2>/dev/null"
for _ in $(seq 100); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
[ -e "$TMP/ready" ] || fail "client never got its keys in: $(cat "$TMP/client.out")"

note "snapshot-save, stop the source"
"$CTL" --qmp "$TMP/q.sock" snapshot-save file="$TMP/snap" >/dev/null || fail "snapshot-save failed"
vm_stop src
touch "$TMP/go"
sleep 1

note "restore on tap0"
nsx "$COLOVM" run --kernel "$TESTGUEST" --net tap=tap0 --cmdline "app=kv" --restore "$TMP/snap" \
	</dev/null >"$TMP/rst.out" 2>&1 &
rpid=$!
on_exit "kill $rpid 2>/dev/null"
wait $cpid || fail "client failed after the restore: $(cat "$TMP/client.out") / $(cat "$TMP/rst.out")"
note "$(cat "$TMP/client.out" | tr '\n' ';')"
grep -q 'booted' "$TMP/rst.out" && fail "restored guest booted again"
kill -0 $rpid 2>/dev/null || fail "restored colovm died: $(cat "$TMP/rst.out")"
kill_tree $rpid

note "restore without --net is refused"
got=0
"$COLOVM" run --kernel "$TESTGUEST" --cmdline "app=kv" --restore "$TMP/snap" --serial none \
	>"$TMP/nonet.out" 2>&1 || got=$?
[ $got = 2 ] || fail "restore without --net: exit $got, expected 2"
grep -q 'stream has virtio-net 0, this VM has none' "$TMP/nonet.out" ||
	fail "no device message: $(cat "$TMP/nonet.out")"
echo "PASS"
