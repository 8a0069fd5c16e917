#!/bin/bash
# No virtio-blk request is lost across a snapshot: app=blk mb=128 (64 KiB
# requests, 16 in flight; about half a second of writing here, so the stop lands
# in the middle of it) is snapshotted while it writes, the source is
# stopped, and the restore (same image) finishes with `blk: ok` (the
# pattern is verified by the guest and by blkcheck.py).
source "$(dirname "$0")/lib.sh"
need_kvm
CTL=${COLOVMCTL:?}
truncate -s 512M "$TMP/disk.img"
ARGS=(--kernel "$TESTGUEST" --mem 128 --disk "$TMP/disk.img" --cmdline "app=blk mb=128")

"$COLOVM" run "${ARGS[@]}" --serial file:"$TMP/src.out" --qmp unix:"$TMP/q.sock",server \
	2>"$TMP/src.err" &
pid=$!
on_exit "kill $pid 2>/dev/null"
wait_for_line "$TMP/src.out" '^blk: device ' 20 || fail "blk app did not start"
"$CTL" --qmp "$TMP/q.sock" stop >/dev/null || fail "stop failed"
grep -q '^blk: ok' "$TMP/src.out" && skip "the app finished before the snapshot"
"$CTL" --qmp "$TMP/q.sock" snapshot-save file="$TMP/snap" >/dev/null || fail "snapshot-save failed"
kill $pid; wait $pid 2>/dev/null || true

got=0
"$COLOVM" run "${ARGS[@]}" --restore "$TMP/snap" --serial file:"$TMP/rst.out" \
	2>"$TMP/rst.err" || got=$?
[ $got = 0 ] || fail "restored run exited $got: $(cat "$TMP/rst.out" "$TMP/rst.err")"
grep -q 'booted' "$TMP/rst.out" && fail "restored guest booted again"
grep -q '^blk: ok' "$TMP/rst.out" || fail "no 'blk: ok' after the restore: $(cat "$TMP/rst.out")"
python3 "$SRC/tests/guest/tools/blkcheck.py" "$TMP/disk.img" 128 >"$TMP/check.out" 2>&1 ||
	fail "image check: $(cat "$TMP/check.out")"
note "$(grep '^blk: ok' "$TMP/rst.out")"
echo "PASS"
