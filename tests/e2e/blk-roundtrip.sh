#!/bin/bash
# app=blk on colovm: a raw image made here, --disk IMG, the guest writes its
# pattern over 8 MiB, flushes, reads back and verifies; then the image is
# checked from the host (tests/guest/tools/blkcheck.py). With
# --disk IMG,readonly the write fails and app=blk says so (status 13).
source "$(dirname "$0")/lib.sh"

need_kvm
img=$TMP/disk.img
truncate -s 32M "$img"

# run NAME ARGS...: colovm with the test guest, output (without CRs) in
# $TMP/NAME.out, exit status in $status.
run() {
	local name=$1
	shift
	status=0
	timeout 120 "$COLOVM" run --kernel "$TESTGUEST" "$@" </dev/null 2>&1 |
		tr -d '\r' >"$TMP/$name.out" || status=${PIPESTATUS[0]}
}

note "read-write: pattern written, verified by the guest and by the host"
run rw --disk "$img" --cmdline "app=blk mb=8"
cat "$TMP/rw.out" >&2
[ "$status" = 0 ] || fail "colovm exited $status"
grep -qE '^blk: ok sectors=65536 MB/s write=[0-9.]+ read=[0-9.]+$' "$TMP/rw.out" || fail "no 'blk: ok' line"
grep -q '^testguest: exit 0$' "$TMP/rw.out" || fail "no clean exit"
python3 "$SRC/tests/guest/tools/blkcheck.py" "$img" 8 || fail "image does not hold the pattern"

note "readonly: the write error is reported"
truncate -s 0 "$img" && truncate -s 32M "$img"
run ro --disk "$img,readonly" --cmdline "app=blk mb=8"
cat "$TMP/ro.out" >&2
[ "$status" = 13 ] || fail "readonly: colovm exited $status, expected 13 (guest code 6)"
grep -q '^blk: write error: sector=0 status=1 (IOERR)$' "$TMP/ro.out" || fail "no write error line"
cmp -s -n 1048576 "$img" /dev/zero || fail "readonly image was written"

note "disk too small for mb=: a clear message"
run small --disk "$img" --cmdline "app=blk mb=64"
[ "$status" = 13 ] || fail "small disk: colovm exited $status, expected 13"
grep -q '^blk: disk too small' "$TMP/small.out" || fail "no 'disk too small' line"
echo "PASS"
