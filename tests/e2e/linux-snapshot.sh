#!/bin/bash
# Snapshot and restore of the Linux guest (tests/guest/linux) with a client
# connected: 200 keys SET in the guest's KV service through one TCP
# connection kept open; a file written on the guest's disk; the source is
# stopped, saved (colovm: snapshot-save; QEMU: migrate to a file) and
# killed; a request is sent while no VM runs (TCP retransmits it); the
# snapshot is restored on the same tap and disk (colovm --restore; QEMU
# -incoming from the file): the same connection gets the data back and
# INCR goes on from the saved value, whoami shows the same boot id, and the
# restored guest's serial shell reads the file back.
# colovm's restored guest is then shut down by QMP system_powerdown and
# checked down to the disk image (lg_shutdown: the button seen, /data
# unmounted, ACPI S5, exit 0, the image clean and holding the last write).
# VMM=qemu (linux-snapshot-qemu.sh): the same on QEMU microvm (its
# system_powerdown: e2e.linux-guest-qemu).
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/linux/vm.sh"
VMM=${VMM:-colovm}
lg_need_vmm "$VMM"
need_netns
lg_build

NS=colovm-lgs-$$
ip netns add "$NS"
on_exit "ip netns del $NS"
LG_NSX="ip netns exec $NS"
$LG_NSX ip link set lo up
$LG_NSX ip tuntap add dev tap0 mode tap
$LG_NSX ip addr add 10.0.0.1/24 dev tap0
$LG_NSX ip link set tap0 up
img=$TMP/disk.img
truncate -s 64M "$img"

lg_start s "$VMM" ns="$NS" tap=tap0 disk="$img"
lg_wait_up s 300
note "$VMM: up after $(lg_elapsed_ms s) ms"
boot_id=$(lg_whoami s boot_id)
[ -n "$boot_id" ] || fail "no boot_id"
token=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
lg_sh s "echo $token >/data/token && sync" >/dev/null

cat >"$TMP/client.py" <<'PY'
import os, socket, sys, time
d = sys.argv[1]
s = socket.create_connection(("10.0.0.2", 7000), timeout=120)
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
$LG_NSX python3 "$TMP/client.py" "$TMP" >"$TMP/client.out" 2>&1 &
cpid=$!
on_exit "kill $cpid 2>/dev/null"
for _ in $(seq 600); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
[ -e "$TMP/ready" ] || fail "client never got its keys in: $(cat "$TMP/client.out")"

note "$VMM: stop, save, kill the source"
t0=$(date +%s%N)
case $VMM in
colovm)
	# stopped first: the disk image must not change after the save
	lg_qmp s stop >/dev/null || fail "stop failed"
	lg_qmp s snapshot-save file="$TMP/snap" >/dev/null || fail "snapshot-save failed"
	;;
qemu)
	lg_qmp s migrate "exec:cat >$TMP/snap" >"$TMP/ctl.out" 2>&1 ||
		fail "migrate to a file failed: $(cat "$TMP/ctl.out")"
	;;
esac
note "saved $(du -k "$TMP/snap" | cut -f1) KiB in $((($(date +%s%N) - t0) / 1000000)) ms"
lg_kill s
touch "$TMP/go"
sleep 1

note "$VMM: restore on tap0"
lg_start r "$VMM" ns="$NS" tap=tap0 disk="$img" restore="$TMP/snap" shutdown_timeout=30
wait $cpid || fail "client failed after the restore: $(cat "$TMP/client.out")"
note "$(tr '\n' ';' <"$TMP/client.out")"
lg_out r
grep -q '^linuxguest: up' "$TMP/r.out" && fail "the restored guest booted again"
[ "$(lg_whoami r boot_id)" = "$boot_id" ] || fail "the restored guest has another boot id"
[ "$(lg_sh r 'cat /data/token')" = "$token" ] || fail "the restored guest's shell does not read the file back"
[ "$(lg_sh r nproc)" = 2 ] || fail "the restored guest does not see 2 CPUs"
lg_alive r || fail "the restored VM ended"
case $VMM in
colovm) lg_shutdown r powerdown "$img" ;;
qemu) lg_kill r ;;
esac
echo "PASS ($VMM)"
