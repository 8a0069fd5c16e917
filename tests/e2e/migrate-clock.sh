#!/bin/bash
# The guest's clock across a live migration. app=http stamp=1 answers with
# X-Stamp, the guest's TSC. Source and target start together (so the TSC
# the target loads lies close to what KVM would expect of its own: the case
# where KVM's TSC "synchronisation" of host writes moved it), the source
# serves a while, is migrated, and the guest time that passed between an
# answer before and one after is at most the wall time between them (plus
# 0.5 s), and not negative: the guest's clock neither jumped nor went back.
source "$(dirname "$0")/lib.sh"
need_kvm
need_netns
CTL=${COLOVMCTL:?}
NS=colovm-mck-$$
MAC=52:54:00:12:34:57
port=$((47000 + RANDOM % 800))
nsx() { ip netns exec "$NS" "$@"; }

bridge_ns "$NS" tap0 tap1

ARGS=(--kernel "$TESTGUEST" --mem 64 --cmdline "app=http stamp=1")
migration_pair "$NS" $MAC $port "${ARGS[@]}"
khz=$(sed -n 's/^testguest: tsc \([0-9]*\)\.\([0-9]*\) MHz.*/\1\2/p' "$TMP/s.out")
[ -n "$khz" ] && [ "$khz" -gt 0 ] || fail "no TSC frequency on the console: $(head "$TMP/s.out")"

# stamp: the guest's TSC in an answer, and the wall clock (ns) at the answer
stamp() {
	local h w
	h=$(nsx curl -sf -m 20 -D - -o /dev/null http://10.0.0.2/) || fail "curl failed"
	w=$(date +%s%N)
	echo "$(sed -n 's/^X-Stamp: \([0-9]*\).*/\1/p' <<<"$h") $w"
}
read -r g1 w1 < <(stamp)
[ -n "$g1" ] || fail "no X-Stamp header"
sleep 4
note "migrate"
"$CTL" --qmp "$TMP/s.sock" migrate tcp:127.0.0.1:$port >"$TMP/ctl.out" 2>&1 ||
	fail "migrate failed: $(cat "$TMP/ctl.out" "$TMP/s.out")"
grep -q '"completed"' "$TMP/ctl.out" || fail "no completed status: $(cat "$TMP/ctl.out")"
wait_for_line "$TMP/t.out" 'incoming migration complete' 10 || fail "target not running"
read -r g2 w2 < <(stamp)
guest_ms=$(((g2 - g1) / khz))
wall_ms=$(((w2 - w1) / 1000000))
note "between two answers: guest clock $guest_ms ms, wall clock $wall_ms ms"
[ "$guest_ms" -ge 0 ] || fail "the guest's clock went back $((-guest_ms)) ms"
[ "$guest_ms" -le $((wall_ms + 500)) ] ||
	fail "the guest's clock jumped: $guest_ms ms of guest time in $wall_ms ms"
"$CTL" --qmp "$TMP/t.sock" quit >/dev/null 2>&1 || true
echo "PASS"
