#!/bin/bash
# Debian's own kernel as the guest (tests/guest/linux: bzImage + busybox
# initramfs) with 2 vCPUs, a virtio-net NIC on a tap in a netns and a fresh
# virtio-blk disk, on colovm — or, with VMM=qemu (linux-guest-qemu.sh), the
# same checks on QEMU microvm with the same kernel and initramfs:
#
#   boot to the serial shell's prompt, no ACPI errors in the boot log, the
#   virtio devices found through ACPI; `nproc` over the serial shell says 2;
#   curl from the host side gets the index page and /cgi-bin/whoami (2 CPUs,
#   this boot's id); 64 KiB through the TCP echo service; the KV service
#   checked against a model (4 connections); a file written on the ext4
#   filesystem the guest made on first boot, then the guest reboots
#   (`reboot` in the guest: a clean reboot through colovm's --reboot): a new
#   boot id, the disk's boot counter at 2, the file read back.
#
# Then a clean shutdown from the host (lg_shutdown): colovm gets SIGTERM
# (the guest listens to the ACPI power button, so colovm presses it and
# waits for the power-off), QEMU gets QMP system_powerdown (it ends at once
# on SIGTERM); the guest sees the button, unmounts /data, powers off (ACPI
# S5 on colovm), the VMM exits 0 and the ext4 image is clean and holds a
# file written just before, never synced. (colovm's system_powerdown:
# e2e.linux-migrate, on the restored guest.)
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/linux/vm.sh"
VMM=${VMM:-colovm}
lg_need_vmm "$VMM"
need_netns
lg_build

NS=colovm-lg-$$
ip netns add "$NS"
on_exit "ip netns del $NS"
LG_NSX="ip netns exec $NS"
$LG_NSX ip link set lo up
$LG_NSX ip tuntap add dev tap0 mode tap
$LG_NSX ip addr add 10.0.0.1/24 dev tap0
$LG_NSX ip link set tap0 up
img=$TMP/disk.img
truncate -s 64M "$img"

note "$VMM: boot with 2 vCPUs, a NIC and an empty disk"
lg_start g "$VMM" ns="$NS" tap=tap0 disk="$img" cpus=2 reboot=1 shutdown_timeout=30
lg_wait_up g 300
boot1_ms=$(lg_elapsed_ms g)
note "$VMM: up with a shell prompt after $boot1_ms ms"
lg_sh g dmesg >"$TMP/dmesg1"
if grep -E 'ACPI (BIOS )?(Error|Exception|Warning)' "$TMP/dmesg1" >&2; then
	fail "ACPI errors in the kernel log"
fi
grep -q 'virtio_blk virtio[0-9]*: \[vda\]' "$TMP/dmesg1" || fail "no virtio-blk disk vda in the kernel log"
grep -q 'smp: Brought up 1 node, 2 CPUs' "$TMP/dmesg1" || fail "the kernel did not bring up 2 CPUs"
grep -q '^linuxguest: network: eth0 10.0.0.2/24' "$TMP/g.out" || fail "no eth0 with 10.0.0.2/24"
grep -q '^linuxguest: disk: made ext4 on /dev/vda' "$TMP/g.out" || fail "no ext4 made on the empty disk"

cpus=$(lg_sh g nproc)
[ "$cpus" = 2 ] || fail "nproc over the serial shell says '$cpus', expected 2"

$LG_NSX curl -sf -m 20 http://10.0.0.2/ >"$TMP/index.html" || fail "curl http://10.0.0.2/ failed"
grep -q '<h1>linuxguest</h1>' "$TMP/index.html" || fail "index page: $(cat "$TMP/index.html")"
[ "$(lg_whoami g cpus)" = 2 ] || fail "whoami: cpus=$(lg_whoami g cpus), expected 2"
[ "$(lg_whoami g name)" = g ] || fail "whoami: wrong name"
boot_id=$(lg_whoami g boot_id)
[ -n "$boot_id" ] || fail "whoami: no boot_id"
[ "$(lg_whoami g boots)" = 1 ] || fail "whoami: boots=$(lg_whoami g boots), expected 1"
note "curl: index page and whoami (cpus=2, boot_id=$boot_id)"

head -c 65536 /dev/urandom >"$TMP/echo.in"
$LG_NSX timeout 30 nc -N 10.0.0.2 7 <"$TMP/echo.in" >"$TMP/echo.out" || true
cmp -s "$TMP/echo.in" "$TMP/echo.out" ||
	fail "echo: $(stat -c %s "$TMP/echo.out") of 65536 bytes came back equal"
$LG_NSX python3 "$SRC/tests/guest/tools/kvclient.py" --host 10.0.0.2 --ops 2000 --conns 4 ||
	fail "KV service: model check failed"
note "echo 64 KiB and KV model check (2000 ops, 4 connections) passed"

if [ "$VMM" = qemu ] && [ "${HOSTVM:-}" = 1 ]; then
	# QEMU's reboot goes through its firmware, which fails in a host VM
	# (nested SVM under TCG): "KVM internal error ... emulation failure"
	# at a wild EIP in its 32-bit firmware right after "reboot: Restarting
	# system", in 3 runs of 3 (the first ran into CI's test timeout). That
	# is QEMU's and the nested environment's, not the guest's:
	# colovm's reboot is checked by e2e.linux-guest.
	note "NOT CHECKED: QEMU's reboot (its firmware fails in a host VM)"
	lg_shutdown g powerdown "$img"
	echo "PASS ($VMM: first boot $boot1_ms ms; reboot not checked in a host VM)"
	exit 0
fi
token=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
lg_sh g "echo $token >/data/token && sync" >/dev/null
note "$VMM: reboot from the guest"
lg_t0[g]=$(date +%s%N)
echo reboot >&"${lg_fd[g]}"
lg_wait_up g 300 2
note "$VMM: rebooted, up with a prompt after $(lg_elapsed_ms g) ms"
grep -q 'linuxguest: /data unmounted' "$TMP/g.out" || fail "/data was not unmounted before the reboot"
[ "$(lg_sh g 'cat /data/token')" = "$token" ] || fail "the file written before the reboot is not there"
[ "$(lg_whoami g boots)" = 2 ] || fail "whoami after the reboot: boots=$(lg_whoami g boots), expected 2"
[ "$(lg_whoami g boot_id)" != "$boot_id" ] || fail "whoami after the reboot: the same boot_id"
[ "$(lg_sh g nproc)" = 2 ] || fail "nproc after the reboot is not 2"
note "after the reboot: a new boot id, boot 2 of the disk, the file read back"
case $VMM in
colovm) lg_shutdown g sigterm "$img" ;;
qemu) lg_shutdown g powerdown "$img" ;;
esac
echo "PASS ($VMM: first boot $boot1_ms ms)"
