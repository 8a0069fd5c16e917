# virtio-blk with the test guest's app=blk: a pattern written by the guest is
# on the image afterwards (checked from the host); a readonly disk refuses
# writes with VIRTIO_BLK_S_IOERR and stays unchanged; O_DIRECT works too.
source "$(dirname "$0")/lib.sh"
need_kvm
command -v python3 >/dev/null || skip "needs python3 to check the image"

# check_image IMG MIB: every 64-bit word i of sector s is mix64(s << 6 | i).
check_image() {
	python3 - "$1" "$2" <<'PY'
import struct, sys
M = (1 << 64) - 1
def mix(x):
    x ^= x >> 30; x = (x * 0xbf58476d1ce4e5b9) & M
    x ^= x >> 27; x = (x * 0x94d049bb133111eb) & M
    return x ^ (x >> 31)
d = open(sys.argv[1], 'rb').read()
for s in range(int(sys.argv[2]) * 2048):
    w = struct.unpack_from('<64Q', d, s * 512)
    for i in range(64):
        if w[i] != mix(s << 6 | i):
            sys.exit("sector %d word %d: %#x" % (s, i, w[i]))
PY
}

run_blk() { # IMGSPEC MB -> status in $st, console in $TMP/console
	st=0
	timeout 120 "$COLOVM" run --kernel "$TESTGUEST" --cmdline "app=blk mb=$2" \
		--serial "file:$TMP/console" --disk "$1" 2>"$TMP/err" || st=$?
	! grep -qE 'AddressSanitizer|runtime error' "$TMP/err" || { cat "$TMP/err"; fail "sanitizer report"; }
}

truncate -s 8M "$TMP/disk.img"
run_blk "$TMP/disk.img" 4
grep -q "^blk: ok sectors=16384" "$TMP/console" || { cat "$TMP/console"; fail "app=blk did not pass"; }
[ "$st" = 0 ] || fail "exit status $st"
check_image "$TMP/disk.img" 4 || fail "image does not hold the guest's pattern"
echo "ok: round trip, $(grep '^blk: ok' "$TMP/console")"

# readonly: the write fails (IOERR), the guest exits with EXIT_DEVICE (6 -> 13)
truncate -s 0 "$TMP/ro.img"
truncate -s 8M "$TMP/ro.img"
before=$(sha256sum <"$TMP/ro.img")
run_blk "$TMP/ro.img,readonly" 1
grep -q "readonly=1" "$TMP/console" || fail "VIRTIO_BLK_F_RO not seen by the guest"
grep -q "blk: write error: sector=0 status=1 (IOERR)" "$TMP/console" ||
	{ cat "$TMP/console"; fail "readonly write not refused with IOERR"; }
[ "$st" = 13 ] || fail "readonly: exit status $st, expected 13"
[ "$(sha256sum <"$TMP/ro.img")" = "$before" ] || fail "readonly image changed"
echo "ok: readonly refused"

# O_DIRECT (tmpfs may not support it: then skip this part only)
if dd if=/dev/zero of="$TMP/probe" bs=4096 count=1 oflag=direct 2>/dev/null; then
	truncate -s 8M "$TMP/direct.img"
	run_blk "$TMP/direct.img,direct" 2
	grep -q "^blk: ok" "$TMP/console" || { cat "$TMP/console"; fail "direct: app=blk did not pass"; }
	check_image "$TMP/direct.img" 2 || fail "direct: image does not hold the pattern"
	echo "ok: O_DIRECT round trip"
else
	echo "note: $TMP does not support O_DIRECT; direct case not run"
fi

# a disk smaller than the test: the guest says so, colovm does not care
truncate -s 1M "$TMP/small.img"
run_blk "$TMP/small.img" 4
grep -q "blk: disk too small" "$TMP/console" || fail "small disk not reported"
echo "ok: small disk"
