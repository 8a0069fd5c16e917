# Debian's stock kernel finds colovm's machine through ACPI. The kernel is
# built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so the virtio_mmio.device=
# entries colovm puts on the command line do nothing for it: it sees the
# virtio-mmio devices only as LNRO0005 devices in the DSDT, and the second
# vCPU only in the MADT. Boot the bzImage with a busybox initramfs holding
# virtio_mmio, virtio_net and virtio_blk (and what they depend on), with
# --cpus 2, a --net and a --disk; the init reports what it sees on the
# console and reboots, which goes through the FADT's reset register and
# ends colovm with status 0. Checks: 2 processors, no ACPI error or warning
# in the kernel log, two devices on /sys/bus/virtio, /dev/vda reads the
# image's first bytes, eth0 exists; reports the time to the initramfs.
source "$(dirname "$0")/lib.sh"
need_kvm
vmlinuz=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1 || true)
[ -n "$vmlinuz" ] || skip "no Debian kernel in /boot (install linux-image-amd64)"
kver=${vmlinuz#/boot/vmlinuz-}
[ -d "/lib/modules/$kver" ] || skip "no /lib/modules/$kver for $vmlinuz"
command -v busybox >/dev/null || skip "needs busybox (busybox-static) for the initramfs"

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
echo "acpi-e2e: done"
reboot -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$TMP/initrd.gz"
truncate -s 8M "$TMP/disk.img"
printf 'COLOVM-ACPI-DISK' | dd of="$TMP/disk.img" conv=notrunc status=none

log=$TMP/console.log
t0=$(date +%s%N)
st=0
timeout -k 5 180 "$COLOVM" run --kernel "$vmlinuz" --initrd "$TMP/initrd.gz" --mem 512 --cpus 2 \
	--net hook --disk "$TMP/disk.img" --cmdline "console=ttyS0 quiet loglevel=4 panic=-1" \
	--serial "file:$log" 2>"$TMP/colovm.err" || st=$?
ms=$((($(date +%s%N) - t0) / 1000000))
show() { cat "$TMP/colovm.err" >&2; cat "$log" >&2; }
[ "$st" = 0 ] || { show; fail "colovm exited $st (expected 0: the guest's reboot through the FADT reset register)"; }
grep -q 'guest reset' "$TMP/colovm.err" || { show; fail "colovm did not see the guest reset"; }
grep -q '^acpi-e2e: done' "$log" || { show; fail "the initramfs did not finish"; }
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
init_s=$(sed -n 's/^acpi-e2e: init uptime //p' "$log")
echo "ok: Debian $kver on colovm: 2 CPUs, virtio-net + virtio-blk through ACPI, no ACPI" \
	"errors; initramfs reached at ${init_s}s kernel uptime, whole run ${ms} ms"
