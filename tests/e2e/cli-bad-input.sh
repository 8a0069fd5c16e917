# Bad input never crashes colovm: each case prints a clear error on stderr
# and exits with status 2 (could not start the guest).
source "$(dirname "$0")/lib.sh"

run_bad "no command" "missing command" "$COLOVM"
run_bad "unknown command" "unknown command 'fly'" "$COLOVM" fly
run_bad "unknown flag" "unknown option '--bogus'" "$COLOVM" run --kernel "$TESTGUEST" --bogus
run_bad "flag without value" "needs an argument" "$COLOVM" run --kernel
run_bad "no kernel" "--kernel FILE is required" "$COLOVM" run --mem 64
run_bad "mem not a number" "--mem 'lots': not a number" "$COLOVM" run --kernel "$TESTGUEST" --mem lots
run_bad "mem too small" "--mem '1': out of range" "$COLOVM" run --kernel "$TESTGUEST" --mem 1
run_bad "cpus zero" "--cpus '0': out of range" "$COLOVM" run --kernel "$TESTGUEST" --cpus 0
run_bad "bad serial" "--serial tty9: expected stdio" "$COLOVM" run --kernel "$TESTGUEST" --serial tty9
run_bad "stray argument" "unexpected argument 'extra'" "$COLOVM" run --kernel "$TESTGUEST" extra
run_bad "witness not tcp" "--witness rdma:1.2.3.4:5: expected tcp:HOST:PORT" \
	"$COLOVM" run --kernel "$TESTGUEST" --witness rdma:1.2.3.4:5
run_bad "witness-key alone" "--witness-key goes with --witness" \
	"$COLOVM" run --kernel "$TESTGUEST" --witness-key "$TMP/nope"
run_bad "witness without listen" "--listen tcp:HOST:PORT is required" "$COLOVM" witness
printf '0123 primary 1\n' >"$TMP/witness.state"
run_bad "witness state damaged" "witness.state:1: expected 'PAIR" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --state "$TMP/witness.state"
run_bad "witness bad key" "not a key" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --peer-key "$TMP/witness.state"

need_kvm
run_bad "missing kernel" "cannot read kernel $TMP/nope: No such file" \
	"$COLOVM" run --kernel "$TMP/nope"
run_bad "kernel is a directory" "not a regular file" "$COLOVM" run --kernel "$TMP"
head -c 100000 /dev/urandom >"$TMP/garbage"
run_bad "garbage kernel" "not a bootable kernel" "$COLOVM" run --kernel "$TMP/garbage"
: >"$TMP/empty"
run_bad "empty kernel" "not a bootable kernel" "$COLOVM" run --kernel "$TMP/empty"
# An ELF whose program headers point past the end of the file.
head -c 200 "$TESTGUEST" >"$TMP/truncated.elf"
run_bad "truncated ELF" "not a bootable kernel|corrupt ELF" "$COLOVM" run --kernel "$TMP/truncated.elf"
run_bad "missing initrd" "cannot read initrd" \
	"$COLOVM" run --kernel "$TESTGUEST" --initrd "$TMP/nope"
run_bad "prealloc beyond the host" "--mem-prealloc: 1048576 MiB of guest RAM, but the host has only" \
	"$COLOVM" run --kernel "$TESTGUEST" --mem 1048576 --mem-prealloc
run_bad "cmdline too long" "command line too long" \
	"$COLOVM" run --kernel "$TESTGUEST" --cmdline "$(head -c 70000 /dev/zero | tr '\0' x)"

# A kernel that does not fit: a PVH ELF whose segment is loaded at 64 MiB.
python3 - "$TESTGUEST" "$TMP/high.elf" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
phoff, = struct.unpack_from('<Q', d, 0x20)
phnum, = struct.unpack_from('<H', d, 0x38)
for i in range(phnum):
    o = phoff + 56 * i
    if struct.unpack_from('<I', d, o)[0] == 1:  # PT_LOAD
        struct.pack_into('<Q', d, o + 24, 64 << 20)  # p_paddr
        struct.pack_into('<Q', d, o + 40, 64 << 20)  # p_memsz
        break
open(sys.argv[2], 'wb').write(d)
PY
run_bad "kernel too big for --mem" "does not fit in guest RAM" \
	"$COLOVM" run --kernel "$TMP/high.elf" --mem 32
if ls /boot/vmlinuz-* >/dev/null 2>&1; then
	run_bad "bzImage too big for --mem" "more than --mem 32 MiB" \
		"$COLOVM" run --kernel "$(ls /boot/vmlinuz-* | head -1)" --mem 32
fi

# No permission on /dev/kvm: an unprivileged user.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	cp "$TESTGUEST" "$TMP/guest.elf" && chmod 755 "$TMP" && chmod 644 "$TMP/guest.elf"
	run_bad "no permission on /dev/kvm" "cannot open /dev/kvm: Permission denied" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$COLOVM" run --kernel "$TMP/guest.elf"
	# No /dev/kvm at all: a private mount namespace with an empty /dev.
	if unshare -m true 2>/dev/null; then
		run_bad "no /dev/kvm" "cannot open /dev/kvm: No such file" \
			unshare -m sh -c "mount -t tmpfs none /dev && exec \"$COLOVM\" run --kernel \"$TMP/guest.elf\""
	fi
else
	echo "note: not root: skipping the /dev/kvm permission cases"
fi
echo "all bad-input cases rejected cleanly"
