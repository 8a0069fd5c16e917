# Linux smoke test: boot Debian's stock kernel (linux-image-amd64) with a
# one-line busybox initramfs, once as the bzImage (64-bit boot protocol) and
# once as the vmlinux inside it (PVH entry): each must reach userspace (its
# init prints a line) and power the machine off (busybox poweroff -f: ACPI S5
# through the FADT's sleep register), which ends colovm with status 0.
#
# The rest of what a Linux guest does (virtio, SMP, HTTP, snapshot,
# migration, shutdown) is tests/e2e/linux-*.sh with tests/guest/linux.
source "$(dirname "$0")/lib.sh"
need_kvm
vmlinuz=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -1 || true)
[ -n "$vmlinuz" ] || skip "no Debian kernel in /boot (install linux-image-amd64)"
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

# A small initramfs: busybox and an init that says hello.
mkdir -p "$TMP/initramfs/bin"
cp "$(command -v busybox)" "$TMP/initramfs/bin/busybox"
printf '#!/bin/busybox sh\n/bin/busybox echo initramfs: hello\n/bin/busybox poweroff -f\n' \
	>"$TMP/initramfs/init"
chmod +x "$TMP/initramfs/init"
(cd "$TMP/initramfs" && find . | cpio -o -H newc --quiet | gzip -1) >"$TMP/initrd.gz"

boot() { # NAME KERNEL TIMEOUT
	local name=$1 kernel=$2 secs=$3 log="$TMP/$1.log" t0 pid st=0
	t0=$(date +%s%N)
	"$COLOVM" run --kernel "$kernel" --initrd "$TMP/initrd.gz" --mem 512 \
		--cmdline "console=ttyS0 colovm.smoke=$name" \
		--serial "file:$log" 2>"$TMP/$name.err" &
	pid=$!
	on_exit "kill $pid 2>/dev/null"
	if ! wait_for_line "$log" "initramfs: hello" "$secs"; then
		kill "$pid" 2>/dev/null || true
		cat "$TMP/$name.err"
		tail -20 "$log" || true
		fail "$name: the kernel did not reach its init within ${secs}s"
	fi
	grep -q "Command line: .*colovm.smoke=$name" "$log" || fail "$name: the kernel did not see its command line"
	grep -m1 "Linux version" "$log" >&2 || fail "$name: no 'Linux version' line"
	wait_exit "$pid" 60 || st=$?
	[ "$st" = 0 ] || { cat "$TMP/$name.err"; tail -5 "$log"; fail "$name: colovm exited $st after the guest's poweroff, expected 0"; }
	grep -q "powered off (ACPI S5)" "$TMP/$name.err" || fail "$name: the power-off did not go through ACPI S5"
	echo "ok: $name: userspace and ACPI power-off after $((($(date +%s%N) - t0) / 1000000)) ms"
}

boot pvh "$TMP/vmlinux" 180
boot bzimage "$vmlinuz" 180
