# Linux smoke test: boot Debian's stock kernel (linux-image-amd64) with an
# initramfs, once as the bzImage (64-bit boot protocol) and once as the
# vmlinux inside it (PVH entry), and wait for its first console lines.
#
# On this machine KVM is PVM: guest code at CPL 0 is emulated at about 1.5
# million instructions per second, so Linux cannot finish booting here. The
# test therefore waits only for "Linux version ..." and the command line it
# was given (bounded timeouts), then stops colovm.
#
# The bzImage must first run its xz decompressor at CPL 0: emulated, that
# takes about half an hour here before "Linux version" appears (on VT-x or
# AMD-V it is a fraction of a second). By default the bzImage case therefore
# checks the hand-off itself: after 20 s the decompressor must be running at
# its relocated address on the page tables it built (so it read boot_params,
# the e820 map and the command line without faulting). COLOVM_SLOW_TESTS=1
# waits for "Linux version" from the bzImage too (up to 45 minutes).
#
# colovm runs with --shutdown-timeout 0: SIGTERM stops it at once (143)
# even when the kernel got far enough to listen to the ACPI power button
# (on nested SVM the bzImage can be fully booted after 20 s), which would
# otherwise be pressed first.
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
	local name=$1 kernel=$2 secs=$3 log="$TMP/$1.log" t0 pid
	t0=$(date +%s%N)
	"$COLOVM" run --kernel "$kernel" --initrd "$TMP/initrd.gz" --mem 512 --shutdown-timeout 0 \
		--cmdline "console=ttyS0 earlyprintk=serial,ttyS0,115200 colovm.smoke=$name" \
		--serial "file:$log" 2>"$TMP/$name.err" &
	pid=$!
	on_exit "kill $pid 2>/dev/null"
	if ! wait_for_line "$log" "Command line: .*colovm.smoke=$name" "$secs"; then
		kill "$pid" 2>/dev/null || true
		cat "$TMP/$name.err"
		head -20 "$log" || true
		fail "$name: no 'Linux version' and command line on the console within ${secs}s"
	fi
	grep -m1 "Linux version" "$log" >&2 || fail "$name: no 'Linux version' line"
	kill -TERM "$pid"
	local st=0
	wait "$pid" || st=$?
	[ "$st" = 143 ] || fail "$name: colovm exited $st after SIGTERM, expected 143"
	echo "ok: $name: first console lines after $((($(date +%s%N) - t0) / 1000000)) ms," \
		"clean exit on SIGTERM"
}

boot pvh "$TMP/vmlinux" 120

if [ "${COLOVM_SLOW_TESTS:-0}" = 1 ]; then
	boot bzimage "$vmlinuz" 2700
	exit 0
fi
"$COLOVM" run -v --kernel "$vmlinuz" --initrd "$TMP/initrd.gz" --mem 512 --shutdown-timeout 0 \
	--cmdline "console=ttyS0 earlyprintk=serial,ttyS0,115200" --serial none 2>"$TMP/bz.err" &
pid=$!
on_exit "kill $pid 2>/dev/null"
sleep 20
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 143 ] || { cat "$TMP/bz.err"; fail "bzimage: colovm exited $st, expected 143 (SIGTERM)"; }
state=$(grep -m1 'vCPU 0: rip=' "$TMP/bz.err") || { cat "$TMP/bz.err"; fail "bzimage: no vCPU state"; }
echo "bzimage after 20s: $state" >&2
rip=$(sed -E 's/.*rip=(0x[0-9a-f]+).*/\1/' <<<"$state")
cr3=$(sed -E 's/.*cr3=(0x[0-9a-f]+).*/\1/' <<<"$state")
# Loaded at pref_address (16 MiB); the decompressor relocates itself to the
# end of the init_size buffer and switches to its own identity map.
(( rip >= 0x1000000 && rip < 0x1000000 + 256 * 1024 * 1024 )) ||
	fail "bzimage: rip $rip is outside the kernel's load buffer"
(( cr3 != 0x9000 )) || fail "bzimage: still on colovm's boot page tables (cr3=$cr3)"
echo "ok: bzimage: 64-bit entry taken, decompressor running on its own page tables" \
	"(set COLOVM_SLOW_TESTS=1 to wait ~30 min for 'Linux version')"
