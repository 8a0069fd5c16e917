#!/bin/bash
# snapshot-save of app=dirty at t~2, --restore: the next lines continue the
# sequence of an uninterrupted run (same t/written/checksum), no verification
# failure. A truncated or bit-flipped snapshot, or one restored with another
# --mem/--cpus, is refused with a message and exit 2 (the guest never runs).
source "$(dirname "$0")/lib.sh"
need_kvm
CTL=${COLOVMCTL:?}
ARGS=(--kernel "$TESTGUEST" --mem 128 --cmdline "app=dirty mb=32 rate=10 seconds=12")

# The reference run goes on beside the snapshot's source: app=dirty's lines
# are a function of (mb, rate, t) only, never of timing (apps/dirty.c).
note "reference run (in the background) and snapshot at t=2"
"$COLOVM" run "${ARGS[@]}" --serial file:"$TMP/ref.out" 2>"$TMP/ref.err" &
ref=$!
on_exit "kill $ref 2>/dev/null"
"$COLOVM" run "${ARGS[@]}" --serial file:"$TMP/src.out" --qmp unix:"$TMP/q.sock",server \
	2>"$TMP/src.err" &
pid=$!
on_exit "kill $pid 2>/dev/null"
wait_for_line "$TMP/src.out" '^dirty: t=2 ' 20 || fail "source never reached t=2"
"$CTL" --qmp "$TMP/q.sock" snapshot-save file="$TMP/snap" >/dev/null ||
	fail "snapshot-save failed"
"$CTL" --qmp "$TMP/q.sock" query-status | grep -q '"running"' ||
	fail "source not running after snapshot-save"
[ -s "$TMP/snap" ] || fail "no snapshot file"

note "restore (while the source and the reference run go on)"
expect_status 0 "$COLOVM" run "${ARGS[@]}" --restore "$TMP/snap" --serial file:"$TMP/rst.out" \
	2>"$TMP/rst.err"
wait $pid || fail "source exited $?"
st=0
wait $ref || st=$?
[ $st = 0 ] || fail "the reference run exited $st, expected 0: $(cat "$TMP/ref.err")"
grep -q '^dirty: t=12 ' "$TMP/ref.out" || fail "reference run did not reach t=12"
grep -q 'verify failed' "$TMP/rst.out" && fail "dirty verification failed after restore"
grep -q '^testguest: exit 0' "$TMP/rst.out" || fail "restored guest did not finish"
grep -q 'booted' "$TMP/rst.out" && fail "restored guest booted again"
n=0
while read -r line; do
	grep -qxF "$line" "$TMP/ref.out" || fail "restored line '$line' not in the reference run"
	n=$((n + 1))
done < <(grep '^dirty: t=' "$TMP/rst.out")
[ $n -ge 2 ] || fail "only $n dirty lines after restore"
grep -q '^dirty: t=12 ' "$TMP/rst.out" || fail "restored guest did not reach t=12"

refuse() { # refuse NAME REGEX ARGS...: exit 2, message, no guest output
	local name=$1 re=$2
	shift 2
	local got=0
	"$COLOVM" run "$@" --serial file:"$TMP/$name.out" 2>"$TMP/$name.err" || got=$?
	[ $got = 2 ] || fail "$name: exit $got, expected 2 ($(cat "$TMP/$name.err"))"
	grep -qE -e "$re" "$TMP/$name.err" || fail "$name: no message matching '$re': $(cat "$TMP/$name.err")"
	[ ! -s "$TMP/$name.out" ] || fail "$name: the guest ran"
}
size=$(stat -c %s "$TMP/snap")
note "truncated snapshot"
head -c $((size / 2)) "$TMP/snap" >"$TMP/trunc"
refuse trunc "restore.*(truncated|section)" "${ARGS[@]}" --restore "$TMP/trunc"
note "one bit flipped (RAM)"
cp "$TMP/snap" "$TMP/flip"
python3 - "$TMP/flip" $((size / 3)) <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x10]))
PY
refuse flip "section 'ram'.*CRC|CRC" "${ARGS[@]}" --restore "$TMP/flip"
note "one bit flipped (device state near the end)"
cp "$TMP/snap" "$TMP/flip2"
python3 - "$TMP/flip2" $((size - 300)) <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x01]))
PY
refuse flip2 "section '" "${ARGS[@]}" --restore "$TMP/flip2"
note "--mem mismatch"
refuse mem "--mem must match" --kernel "$TESTGUEST" --mem 256 --restore "$TMP/snap"
note "--cpus mismatch"
refuse cpus "--cpus must match|section 'cpu'" --kernel "$TESTGUEST" --mem 128 --cpus 2 \
	--restore "$TMP/snap"
echo "PASS"
