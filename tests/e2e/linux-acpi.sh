# Debian's stock kernel finds colovm's machine through ACPI. The kernel is
# built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so the virtio_mmio.device=
# entries colovm puts on the command line do nothing for it: it sees the
# virtio-mmio devices only as LNRO0005 devices in the DSDT, and the second
# vCPU only in the MADT.
#
# A first, short boot (1 vCPU) of the vmlinux inside the bzImage (its PVH
# entry) powers off: ACPI S5 ends colovm with 0. A second one, of the
# bzImage (64-bit boot protocol), idles: the kernel's GED driver has
# unmasked the power button's interrupt, but nothing in this initramfs acts
# on the button (no `button` module, no acpid), so SIGTERM presses it, the
# guest does not power off, and colovm stops after --shutdown-timeout 2
# with 143. Both reach userspace, and their init reports the kernel's
# command line (it must hold this boot's marker) and /proc/version. (This
# was e2e.linux-smoke's pair of boots; the bzImage's own power-off through
# S5 is e2e.linux-guest's and e2e.linux-migrate's shutdown.)
# The main boot: the bzImage with a busybox initramfs holding virtio_mmio,
# virtio_net and virtio_blk (and what they depend on), --cpus 2, a --net and
# a --disk. Checks: 2 processors online, no ACPI error or warning in the
# kernel log, both devices on /sys/bus/virtio through LNRO0005 platform
# devices, /dev/vda reads the image's first bytes, eth0 has colovm's MAC,
# the GED (ACPI0013) holds GSI 16 as an edge IOAPIC interrupt and the
# power button (PNP0C0C) is on the ACPI bus; reports the time to the
# initramfs. Then snapshot, SIGTERM (the button is pressed, colovm waits for
# a power-off that does not come) and a second SIGTERM (stops at once, 143),
# restore: the restored kernel reads the same tables, and its reboot (Linux
# jumps to the BIOS reset vector; colovm's stub there resets through the
# i8042) ends colovm with 0.
source "$(dirname "$0")/lib.sh"
need_linux_guest
vmlinuz=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1 || true)
[ -n "$vmlinuz" ] || skip "no Debian kernel in /boot (install linux-image-amd64)"
kver=${vmlinuz#/boot/vmlinuz-}
[ -d "/lib/modules/$kver" ] || skip "no /lib/modules/$kver for $vmlinuz"
command -v busybox >/dev/null || skip "needs busybox (busybox-static) for the initramfs"

# The vmlinux inside the bzImage: the setup header says where the payload
# is; decompress it with the matching tool.
python3 - "$vmlinuz" "$TMP/payload" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
setup = ((d[0x1f1] or 4) + 1) * 512
off, length = struct.unpack_from('<II', d, 0x248)
open(sys.argv[2], 'wb').write(d[setup + off: setup + off + length])
PY
case "$(head -c 6 "$TMP/payload" | od -An -tx1 | tr -d ' \n')" in
fd377a585a00) xz -dc "$TMP/payload" >"$TMP/vmlinux" ;;
28b52ffd*) zstd -qdc "$TMP/payload" >"$TMP/vmlinux" ;;
1f8b*) gzip -dc "$TMP/payload" >"$TMP/vmlinux" ;;
*) fail "unknown compression of the kernel payload in $vmlinuz" ;;
esac 2>/dev/null || true
[ -s "$TMP/vmlinux" ] || fail "could not extract vmlinux from $vmlinuz"

# The modules and their dependencies, dependencies first.
mods=()
add_mod() {
	local m=$1 d
	for d in $(modinfo -k "$kver" -F depends "$m" | tr ',' ' '); do add_mod "$d"; done
	[[ " ${mods[*]} " == *" $m "* ]] || mods+=("$m")
}
for m in virtio_mmio virtio_net virtio_blk; do add_mod "$m"; done
root=$TMP/initramfs
mkdir -p "$root/bin" "$root/lib/modules" "$root/proc" "$root/sys" "$root/dev"
cp "$(command -v busybox)" "$root/bin/busybox"
for m in "${mods[@]}"; do
	f=$(modinfo -k "$kver" -n "$m")
	case $f in
	*.ko) cp "$f" "$root/lib/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
	*.ko.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
	*) fail "module $m: unexpected file $f" ;;
	esac
done
cat >"$root/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "acpi-e2e: init uptime \$(cut -d' ' -f1 /proc/uptime)"
echo "acpi-e2e: cmdline \$(cat /proc/cmdline)"
echo "acpi-e2e: version \$(cat /proc/version)"
if grep -q acpi_e2e.poweroff /proc/cmdline; then
	echo "acpi-e2e: powering off"
	poweroff -f
fi
if grep -q acpi_e2e.idle /proc/cmdline; then
	echo "acpi-e2e: idle"
	exec sleep 3600
fi
for m in ${mods[*]}; do insmod /lib/modules/\$m.ko || echo "acpi-e2e: insmod \$m failed"; done
for i in \$(seq 50); do [ -b /dev/vda ] && [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
echo "acpi-e2e: cpus \$(grep -c ^processor /proc/cpuinfo)"
echo "acpi-e2e: online \$(cat /sys/devices/system/cpu/online)"
for d in /sys/bus/virtio/devices/*; do
	echo "acpi-e2e: virtio \${d##*/} device \$(cat \$d/device) driver \$(basename \$(readlink \$d/driver)) on \$(basename \$(readlink -f \$d/..))"
done
[ -b /dev/vda ] && echo "acpi-e2e: vda \$(dd if=/dev/vda bs=16 count=1 2>/dev/null)"
[ -e /sys/class/net/eth0 ] && echo "acpi-e2e: eth0 \$(cat /sys/class/net/eth0/address)"
dmesg | grep -E 'ACPI|APIC|smp|CPU|LNRO|virtio|vda' | sed 's/^/acpi-e2e: dmesg: /'
dmesg | grep -E 'ACPI (BIOS )?(Error|Warning)|ACPI: .*(error|failed)' | sed 's/^/acpi-e2e: dmesg-bad /'
grep 'ACPI:' /proc/interrupts | sed 's/^/acpi-e2e: acpi irq /'
for d in /sys/bus/acpi/devices/ACPI0013:* /sys/bus/acpi/devices/PNP0C0C:*; do
	[ -e "\$d" ] && echo "acpi-e2e: acpi device \${d##*/} \$(cat \$d/path)"
done
tables() { for t in DSDT FACP APIC; do echo -n "\$t=\$(md5sum </sys/firmware/acpi/tables/\$t | cut -c1-12) "; done; }
echo "acpi-e2e: tables \$(tables)"
echo "acpi-e2e: waiting for a line on the console"
read -r line
echo "acpi-e2e: tables after \$(tables)"
echo "acpi-e2e: done"
reboot -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$TMP/initrd.gz"
truncate -s 8M "$TMP/disk.img"
printf 'COLOVM-ACPI-DISK' | dd of="$TMP/disk.img" conv=notrunc status=none

log=$TMP/console.log
show() { cat "$TMP/colovm.err" >&2; cat "$log" >&2; }
# No panic=: a kernel that cannot reboot or power off hangs, and the
# timeout says so.
run() { # KERNEL ARGS...
	local kernel=$1
	shift
	st=0
	timeout -k 5 180 "$COLOVM" run --kernel "$kernel" --initrd "$TMP/initrd.gz" --mem 512 \
		"$@" --serial "file:$log" 2>"$TMP/colovm.err" || st=$?
}
# booted NAME: the kernel reached this initramfs, saw its command line
# (colovm.smoke=NAME) and says what it is
booted() {
	grep -q "^acpi-e2e: cmdline .*colovm.smoke=$1" "$log" ||
		{ show; fail "$1: the kernel did not reach its init or did not see its command line"; }
	grep -m1 '^acpi-e2e: version Linux version ' "$log" >&2 || { show; fail "$1: no 'Linux version' in /proc/version"; }
}

# `poweroff` writes S5 to the FADT's sleep control register: colovm ends, 0.
run "$TMP/vmlinux" --cpus 1 --cmdline "console=ttyS0 quiet loglevel=4 acpi_e2e.poweroff colovm.smoke=pvh"
[ "$st" = 0 ] || { show; fail "poweroff: colovm exited $st (expected 0: ACPI S5)"; }
grep -q 'guest powered off (ACPI S5)' "$TMP/colovm.err" || { show; fail "poweroff: not through ACPI S5"; }
grep -q '^acpi-e2e: powering off' "$log" || { show; fail "poweroff: the initramfs did not run"; }
booted pvh
echo "ok: the vmlinux (PVH entry) reaches userspace; poweroff in the guest ends colovm through ACPI S5" >&2

# A guest that listens to the power button but does not power off: SIGTERM
# presses the button, colovm waits --shutdown-timeout, then stops (143).
"$COLOVM" run --kernel "$vmlinuz" --initrd "$TMP/initrd.gz" --mem 512 --cpus 1 \
	--shutdown-timeout 2 --cmdline "console=ttyS0 quiet loglevel=4 acpi_e2e.idle colovm.smoke=bzimage" \
	--serial "file:$log" 2>"$TMP/colovm.err" &
pid=$!
wait_for_line "$log" '^acpi-e2e: idle' 180 || { show; fail "idle: the initramfs did not start"; }
booted bzimage
t0=$(date +%s%N)
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$st" = 143 ] || { show; fail "idle: colovm exited $st after SIGTERM, expected 143"; }
grep -q 'received Terminated: pressing the power button, waiting up to 2 s' "$TMP/colovm.err" ||
	{ show; fail "idle: colovm did not press the power button of a guest that listens"; }
grep -q 'the guest did not power off within 2 s: shutting down' "$TMP/colovm.err" ||
	{ show; fail "idle: colovm did not say the guest missed --shutdown-timeout"; }
[ "$ms" -ge 2000 ] || { show; fail "idle: colovm stopped after $ms ms, before --shutdown-timeout 2"; }
echo "ok: SIGTERM presses the button of a listening guest and stops it $ms ms later (--shutdown-timeout 2)" >&2

# The main boot: --serial stdio from a FIFO, so the test can let the guest
# go on when it wants; a QMP socket for the snapshot.
mkfifo "$TMP/in"
exec 3<>"$TMP/in"
ARGS=(--kernel "$vmlinuz" --initrd "$TMP/initrd.gz" --mem 512 --cpus 2 --net hook
	--disk "$TMP/disk.img" --cmdline "console=ttyS0 quiet loglevel=4" --serial stdio)
t0=$(date +%s%N)
"$COLOVM" run "${ARGS[@]}" --qmp unix:"$TMP/q.sock",server <"$TMP/in" >"$log" 2>"$TMP/colovm.err" &
pid=$!
wait_for_line "$log" '^acpi-e2e: waiting' 240 || { show; fail "the initramfs did not finish"; }
ms=$((($(date +%s%N) - t0) / 1000000))
grep '^acpi-e2e:' "$log" >&2

grep -q '^acpi-e2e: cpus 2' "$log" || { show; fail "the kernel does not see 2 processors"; }
grep -q '^acpi-e2e: online 0-1' "$log" || { show; fail "the second vCPU did not come online"; }
if grep -q 'dmesg-bad' "$log"; then show; fail "ACPI errors or warnings in the kernel log"; fi
[ "$(grep -c '^acpi-e2e: virtio .* on LNRO0005:' "$log")" = 2 ] ||
	{ show; fail "expected 2 virtio devices on LNRO0005 (ACPI) platform devices"; }
grep -q '^acpi-e2e: virtio .* device 0x0001 driver virtio_net' "$log" || { show; fail "no virtio-net bound"; }
grep -q '^acpi-e2e: virtio .* device 0x0002 driver virtio_blk' "$log" || { show; fail "no virtio-blk bound"; }
grep -q '^acpi-e2e: vda COLOVM-ACPI-DISK' "$log" || { show; fail "/dev/vda missing or does not read the image"; }
grep -q '^acpi-e2e: eth0 52:54:00:12:34:56' "$log" || { show; fail "no eth0 with colovm's MAC"; }
# evged.c names its interrupt "ACPI:Ged"; the IOAPIC column says pin and trigger.
grep -Eq '^acpi-e2e: acpi irq .*IO-APIC +16-edge +ACPI:Ged' "$log" ||
	{ show; fail "the GED's interrupt is not GSI 16, edge, in /proc/interrupts"; }
grep -q '^acpi-e2e: acpi device ACPI0013:00 \\_SB_.GED_' "$log" || { show; fail "no GED (ACPI0013) on the ACPI bus"; }
grep -q '^acpi-e2e: acpi device PNP0C0C:00 \\_SB_.PWRB' "$log" ||
	{ show; fail "no power button (PNP0C0C) on the ACPI bus"; }
init_s=$(sed -n 's/^acpi-e2e: init uptime //p' "$log")
echo "ok: Debian $kver on colovm: 2 CPUs, virtio-net + virtio-blk through ACPI, no ACPI" \
	"errors; initramfs reached at ${init_s}s kernel uptime, ${ms} ms after colovm started" >&2

# Snapshot, stop, restore: the tables are guest RAM and come back with it
# (Linux's /sys/firmware/acpi/tables reads them where they lie); the
# restored guest then reboots through the reset vector, also RAM.
sums=$(sed -n 's/^acpi-e2e: tables //p' "$log")
[[ "$sums" == DSDT=*FACP=*APIC=* ]] || { show; fail "no table checksums from the guest"; }
"$COLOVMCTL" --qmp "$TMP/q.sock" snapshot-save file="$TMP/snap" >/dev/null || { show; fail "snapshot-save failed"; }
# SIGTERM: this guest listens (its GED unmasked GSI 16), so colovm presses
# the button and waits (default --shutdown-timeout 30); nothing in it powers
# off. A second SIGTERM stops colovm at once.
kill -TERM "$pid"
wait_for_line "$TMP/colovm.err" 'pressing the power button, waiting up to 30 s' 10 ||
	{ show; fail "source: colovm did not press the power button on SIGTERM"; }
sleep 1
kill -0 "$pid" 2>/dev/null || { show; fail "source: colovm stopped without waiting for the guest"; }
t0=$(date +%s%N)
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$st" = 143 ] || { show; fail "source: colovm exited $st after two SIGTERMs, expected 143"; }
grep -q 'received Terminated again while the guest powers off: shutting down now' "$TMP/colovm.err" ||
	{ show; fail "source: no 'shutting down now' after the second SIGTERM"; }
[ "$ms" -lt 20000 ] || { show; fail "source: the second SIGTERM took $ms ms to stop colovm"; }
echo "ok: SIGTERM pressed the power button; a second SIGTERM stopped colovm after $ms ms" >&2
log=$TMP/restored.log
st=0
timeout -k 5 180 "$COLOVM" run "${ARGS[@]}" --restore "$TMP/snap" <"$TMP/in" >"$log" \
	2>"$TMP/colovm.err" &
pid=$!
echo go >&3
wait "$pid" || st=$?
[ "$st" = 0 ] || { show; fail "restored: colovm exited $st (expected 0: the guest's reboot)"; }
grep -q 'guest reset' "$TMP/colovm.err" || { show; fail "restored: colovm did not see the guest reset"; }
grep -qF "acpi-e2e: tables after $sums" "$log" ||
	{ show; fail "restored: the guest reads other tables (before: $sums)"; }
echo "ok: after snapshot and restore the guest reads the same tables ($sums) and reboots"
