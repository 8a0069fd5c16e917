#!/bin/bash
# The same test guest, unchanged, on QEMU microvm (the reference VMM): its
# virtio-mmio devices come from the ACPI DSDT there (QEMU's microvm with
# ACPI puts no virtio_mmio.device= on the command line). ping + tcp-echo
# (1 MB), a short kv model check, app=blk with the image checked from the
# host, and the read-only write error.
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/tools/netenv.sh"

need_kvm
need_netns
[ -n "$QEMU" ] || skip "needs qemu-system-x86_64"
net_setup

note "QEMU: ping, tcp-echo"
vm_start tcp qemu "app=tcp-echo"
grep -q 'virtio-mmio devices from the ACPI DSDT' "$TMP/tcp.out" ||
	grep -q 'virtio-mmio device at' "$TMP/tcp.out" || fail "no virtio-mmio device found"
nsx ping -c 5 -i 0.2 -W 2 10.0.0.2 >"$TMP/ping.out" || { cat "$TMP/ping.out" >&2; fail "ping"; }
tcp_echo_check 1000000
vm_stop tcp

note "QEMU: kv"
vm_start kv qemu "app=kv"
nsx python3 "$TOOLS/kvclient.py" --ops 2000 --conns 4 || fail "kv model check"
vm_stop kv

note "QEMU: blk"
img=$TMP/disk.img
truncate -s 32M "$img"
# boot NAME CMDLINE DISK-ARGS...: QEMU with the disk, output without CRs in
# $TMP/NAME.out, exit status in $status.
boot() {
	local name=$1 cmdline=$2
	shift 2
	status=0
	eval "timeout 120 $(vm_cmd qemu "$cmdline" "$@")" </dev/null >"$TMP/$name.raw" 2>&1 ||
		status=$?
	tr -d '\r' <"$TMP/$name.raw" >"$TMP/$name.out"
}
boot blk "app=blk mb=8" $(disk_args qemu "$img")
cat "$TMP/blk.out" >&2
[ "$status" = 0 ] || fail "QEMU exited $status"
grep -qE '^blk: ok sectors=65536 MB/s write=[0-9.]+ read=[0-9.]+$' "$TMP/blk.out" || fail "no 'blk: ok'"
python3 "$TOOLS/blkcheck.py" "$img" 8 || fail "image does not hold the pattern"
boot ro "app=blk" $(disk_args qemu "$img" readonly)
[ "$status" = 13 ] || { cat "$TMP/ro.out" >&2; fail "readonly: QEMU exited $status, expected 13"; }
grep -q '^blk: write error: sector=0 status=1 (IOERR)$' "$TMP/ro.out" || fail "no write error line"
echo "PASS"
