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

cat >"$TMP/client.py" <<'PY'
import os, socket, sys, time
d = sys.argv[1]
s = socket.create_connection(("10.0.0.2", 7000), timeout=60)
f = s.makefile("rwb")
def ask(cmd):
    f.write((cmd + "\n").encode()); f.flush()
    line = f.readline()
    if not line:
        sys.exit("connection closed on %r" % cmd)
    return line.decode().rstrip("\n")
for i in range(200):
    assert ask("SET key%d value-%d" % (i, i * 7)) == "OK"
for i in range(5):
    assert ask("INCR ctr") == str(i + 1)
open(d + "/ready", "w").close()
while not os.path.exists(d + "/go"):
    time.sleep(0.05)
t0 = time.time()
# sent while no VM runs: answered by the restored guest (TCP retransmits)
got = ask("GET key0")
assert got == "value-0", got
print("first answer after %.1f s" % (time.time() - t0))
for i in range(200):
    got = ask("GET key%d" % i)
    assert got == "value-%d" % (i * 7), (i, got)
got = ask("INCR ctr")
assert got == "6", got
assert ask("SET new 1") == "OK" and ask("GET new") == "1"
print("same connection: 200 keys back, INCR ctr = 6")
PY
nsx python3 "$TMP/client.py" "$TMP" >"$TMP/client.out" 2>&1 &
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
