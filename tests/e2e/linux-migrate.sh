#!/bin/bash
# Live migration, then snapshot and restore, of the Linux guest
# (tests/guest/linux), with clients connected. One boot serves both (each
# boot of the guest is most of such a test's time in a host VM).
#
# Migration: a netns holds bridge br0 (10.0.0.1/24) with tap0 (source) and
# tap1 (target); both VMs use the same disk image (shared storage). A client
# keeps 4 TCP connections to the guest's KV service busy (every answer
# checked against a model) while `migrate` runs; after it, the same
# connections go on against the target (the source ends postmigrate), the
# target's whoami page shows the same boot id (no reboot), and its serial
# shell reads back a file written on the disk before the migration.
#
# Snapshot of the migrated guest: 200 keys SET in its KV service through
# one TCP connection kept open; the target is stopped, saved (colovm:
# snapshot-save; QEMU: migrate to a file) and killed; a request is sent
# while no VM runs (TCP retransmits it); the snapshot is restored on the
# same tap and disk (colovm --restore; QEMU -incoming from the file): the
# same connection gets the data back and INCR goes on from the saved value,
# whoami shows the first boot's id, and the restored guest's serial shell
# reads the file back. colovm's restored guest is then shut down by QMP
# system_powerdown and checked down to the disk image (lg_shutdown: the
# button seen, /data unmounted, ACPI S5, exit 0, the image clean and
# holding the last write; QEMU's system_powerdown: e2e.linux-guest-qemu).
#
# VMM=qemu (linux-migrate-qemu.sh): the same between QEMU microvms.
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/linux/vm.sh"
VMM=${VMM:-colovm}
lg_need_vmm "$VMM"
need_netns
lg_build
MAC=52:54:00:12:34:56
port=$((48700 + RANDOM % 800))

NS=colovm-lgm-$$
ip netns add "$NS"
on_exit "ip netns del $NS"
LG_NSX="ip netns exec $NS"
$LG_NSX ip link set lo up
$LG_NSX ip link add br0 type bridge
$LG_NSX ip addr add 10.0.0.1/24 dev br0
for t in tap0 tap1; do
	$LG_NSX ip tuntap add dev $t mode tap
	$LG_NSX ip link set $t master br0
	$LG_NSX ip link set $t up
done
$LG_NSX ip link set br0 up
img=$TMP/disk.img
truncate -s 64M "$img"

lg_start s "$VMM" ns="$NS" tap=tap0 mac=$MAC disk="$img"
lg_start t "$VMM" ns="$NS" tap=tap1 mac=$MAC disk="$img" incoming=tcp:127.0.0.1:$port
lg_wait_up s 300
note "$VMM: source up after $(lg_elapsed_ms s) ms"
boot_id=$(lg_whoami s boot_id)
[ -n "$boot_id" ] || fail "no boot_id from the source"
token=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
lg_sh s "echo $token >/data/token && sync" >/dev/null

cat >"$TMP/client.py" <<'PY'
import os, random, socket, sys, time
d = sys.argv[1]
rng = random.Random(11)
conns = [socket.create_connection(("10.0.0.2", 7000), timeout=60) for _ in range(4)]
files = [s.makefile("rwb") for s in conns]
model, ops, last, worst = {}, 0, time.time(), 0.0
keys = ["k%d" % i for i in range(64)]
after = -1
while True:
    if after < 0 and os.path.exists(d + "/migrated"):
        after = ops
    if after >= 0 and ops - after >= 500:
        break
    f = files[ops % 4]
    k = rng.choice(keys)
    r = rng.random()
    if r < 0.35:
        v = "v%d" % rng.randrange(1 << 30)
        cmd, want = "SET %s %s" % (k, v), "OK"
        model[k] = v
    elif r < 0.7:
        cmd, want = "GET %s" % k, model.get(k, "NIL")
    else:
        old = model.get(k, "0")
        want = str(int(old) + 1) if old.isdigit() else "ERR not an integer"
        cmd = "INCR %s" % k
        if want[0] != "E":
            model[k] = want
    f.write((cmd + "\n").encode()); f.flush()
    line = f.readline()
    if not line:
        sys.exit("op %d: connection closed (%s)" % (ops, cmd))
    got = line.decode().rstrip("\n")
    if got != want:
        sys.exit("op %d: %s -> %r, model says %r" % (ops, cmd, got, want))
    now = time.time()
    worst = max(worst, now - last)
    last = now
    ops += 1
    if ops == 200:
        open(d + "/busy", "w").close()
print("ops=%d after=%d longest_wait=%.2fs" % (ops, after, worst))
PY
$LG_NSX python3 "$TMP/client.py" "$TMP" >"$TMP/client.out" 2>&1 &
cpid=$!
on_exit "kill $cpid 2>/dev/null"
for _ in $(seq 600); do [ -e "$TMP/busy" ] && break; sleep 0.1; done
[ -e "$TMP/busy" ] || fail "client not busy: $(cat "$TMP/client.out")"

note "$VMM: migrate tap0 -> tap1 with 4 KV connections busy"
t0=$(date +%s%N)
lg_qmp s migrate tcp:127.0.0.1:$port >"$TMP/ctl.out" 2>&1 ||
	fail "migrate failed: $(cat "$TMP/ctl.out")"
note "migrate took $((($(date +%s%N) - t0) / 1000000)) ms: $(tr '\r' '\n' <"$TMP/ctl.out" | grep -o '"downtime": [0-9]*' | tail -1)"
lg_qmp s query-status | grep -q '"postmigrate"' || fail "source not postmigrate"
for _ in $(seq 100); do lg_qmp t query-status 2>/dev/null | grep -q '"running"' && break; sleep 0.1; done
lg_qmp t query-status | grep -q '"running"' || fail "target not running"
touch "$TMP/migrated"
wait $cpid || fail "client: $(cat "$TMP/client.out")"
note "client on the same connections: $(cat "$TMP/client.out")"

[ "$(lg_whoami t boot_id)" = "$boot_id" ] || fail "the target's boot id differs: the guest rebooted?"
[ "$(lg_sh t 'cat /data/token')" = "$token" ] || fail "the target's serial shell does not read the file back"
[ "$(lg_sh t nproc)" = 2 ] || fail "the target's guest does not see 2 CPUs"
lg_qmp s quit >/dev/null 2>&1 || true
lg_kill s
note "$VMM: migration checked; now a snapshot of the migrated guest"

$LG_NSX python3 "$SRC/tests/guest/tools/kvhold.py" "$TMP" 120 >"$TMP/client2.out" 2>&1 &
cpid=$!
on_exit "kill $cpid 2>/dev/null"
for _ in $(seq 600); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
[ -e "$TMP/ready" ] || fail "client never got its keys in: $(cat "$TMP/client2.out")"

note "$VMM: stop, save, kill the migrated guest"
t0=$(date +%s%N)
case $VMM in
colovm)
	# stopped first: the disk image must not change after the save
	lg_qmp t stop >/dev/null || fail "stop failed"
	lg_qmp t snapshot-save file="$TMP/snap" >/dev/null || fail "snapshot-save failed"
	;;
qemu)
	lg_qmp t migrate "exec:cat >$TMP/snap" >"$TMP/ctl.out" 2>&1 ||
		fail "migrate to a file failed: $(cat "$TMP/ctl.out")"
	;;
esac
note "saved $(du -k "$TMP/snap" | cut -f1) KiB in $((($(date +%s%N) - t0) / 1000000)) ms"
lg_kill t
touch "$TMP/go"
sleep 1

note "$VMM: restore on tap1"
lg_start r "$VMM" ns="$NS" tap=tap1 mac=$MAC disk="$img" restore="$TMP/snap" shutdown_timeout=30
wait $cpid || fail "client failed after the restore: $(cat "$TMP/client2.out")"
note "$(tr '\n' ';' <"$TMP/client2.out")"
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
