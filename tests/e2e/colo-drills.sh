#!/bin/bash
# Failover drills under load. One "LAN" (bridge_ns: a bridge whose 10.0.0.1
# is the client, a tap per colovm, the same MAC on every guest: the copy
# that takes over announces it and the bridge follows), the pairs' channels
# and a `colovm witness` on the namespace's loopback.
#
# DRILLS times (default 2): a primary A protected by a secondary B (both
# with the witness), a KV client over 4 connections checking every answer
# against its own history (tests/guest/tools/kvclient.py), A SIGKILLed at a
# random moment 0.2-2.2 s into protection (a checkpoint every 100 ms, so
# some kills land in a checkpoint's pause: the secondary's log says so),
# by `colovmctl drill failover`, whose JSON report is checked: PASS, B
# alone serves, unprotected and running, A killed and gone, B's COLO_EXIT,
# B on a checkpoint no older than its own before the kill, one failover.
# Then: B is granted by the witness (asked over its standing session) and
# takes over (COLO_EXIT), the same
# client connections go on against B's guest for 40 more answers, and the
# client ends clean (no wrong answer, no connection lost: nothing
# acknowledged was lost, no answer contradicts an earlier one). The
# takeover time, the kill to B's COLO_EXIT (as the drill saw it), is printed per drill and as
# a median.
#
# WITNESS=0 (tests/bench/failover.sh): the same without a witness, so the
# takeover has no grant to wait for. MEM=MiB (default 32) and MEM_PREALLOC=1
# (--mem-prealloc: every page of guest RAM touched, as a long-running guest
# has) size the guests (tests/bench/failover.sh: a large guest).
#
# Once more, A is killed in the middle of the first sync: B never had a
# whole copy, so it must not run one: it says the first sync failed and
# exits 2 (as with QEMU's COLO, a guest is protected only once its first
# sync is complete).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
need_netns
NS=colovm-dr-$$
port=$((47100 + RANDOM % 800))
wport=$((port + 850))
DRILLS=${DRILLS:-2}
MAC=52:54:00:12:34:56
head -c32 /dev/urandom >"$TMP/key"
WITNESS=${WITNESS:-1}
WARGS=()
[ "$WITNESS" = 0 ] || WARGS=(--witness tcp:127.0.0.1:$wport)
ARGS=(--kernel "$TESTGUEST" --mem "${MEM:-32}" --cmdline "app=kv" --peer-key "$TMP/key" "${WARGS[@]}")
[ "${MEM_PREALLOC:-0}" = 0 ] || ARGS+=(--mem-prealloc)

taps=()
for i in $(seq 0 "$DRILLS"); do taps+=("tpa$i" "tpb$i"); done
bridge_ns "$NS" "${taps[@]}"
if [ "$WITNESS" != 0 ]; then
	ip netns exec "$NS" "$COLOVM" witness --listen tcp:127.0.0.1:$wport --peer-key "$TMP/key" \
		2>"$TMP/witness.err" &
	on_exit "kill $! 2>/dev/null"
	wait_for_line "$TMP/witness.err" 'serving claims' 10 ||
		fail "no witness: $(cat "$TMP/witness.err")"
fi

vm() { lan_vm "$@"; }
# pair K: primary aK protected by secondary bK (colo-protect, so the
# heartbeat is set first: a SIGKILL is seen as the channel's reset, and a
# host VM starved of CPU must not look like a dead peer here)
pair() {
	port=$((port + 1))
	vm b$1 tpb$1 --colo secondary --listen tcp:127.0.0.1:$port
	wait_for_line "$TMP/b$1.err" 'waiting for a primary' 20 || fail "b$1 does not listen"
	vm a$1 tpa$1
	wait_for_line "$TMP/a$1.out" '^net: up ' 30 || fail "a$1's guest has no network"
	q "$TMP/a$1.sock" migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 \
		checkpoint-interval=100 >/dev/null
	q "$TMP/a$1.sock" colo-protect uri=tcp:127.0.0.1:$port >/dev/null || fail "colo-protect"
}
# client K: kvclient on 4 connections until $TMP/stopK; progress in $TMP/cK.progress
client() {
	ip netns exec "$NS" python3 "$SRC/tests/guest/tools/kvclient.py" --conns 4 --ops 100 \
		--keys 50 --prefix "d$1-" --seed $RANDOM --timeout 60 --rate 50 \
		--until "$TMP/stop$1" --progress "$TMP/c$1.progress" >"$TMP/c$1.out" 2>&1 &
	CL=$!
	on_exit "kill $CL 2>/dev/null"
}
progress() { cat "$TMP/c$1.progress" 2>/dev/null || echo 0; }
# answers K N: the client makes N more answers within 60 s
answers() {
	local n0 end=$((SECONDS + 60))
	n0=$(progress "$1")
	until [ "$(progress "$1")" -ge $((n0 + $2)) ]; do
		kill -0 $CL 2>/dev/null || fail "drill $1: the client ended: $(tail -5 "$TMP/c$1.out")"
		[ $SECONDS -lt $end ] || fail "drill $1: the client is stuck at op $n0: $(tail -5 "$TMP/c$1.out")"
		sleep 0.2
	done
}

times=() midckpt=0
for k in $(seq 1 "$DRILLS"); do
	pair $k
	wait_state "$TMP/a$k.sock" protected 120 ||
		fail "drill $k: no pair: $(q "$TMP/a$k.sock" query-colo-status)"
	client $k
	answers $k 40
	# a random moment 0.2-2.2 s on
	sleep "$(python3 -c 'import random; print(round(random.uniform(0.2, 2.2), 3))')"
	# (colovmctl drill: SIGKILL to a's colovm, b watched until it serves;
	# the second drill's report for a person, the others' JSON)
	r=$TMP/drill$k.json
	if [ $k = 2 ]; then
		r=$TMP/drill$k.txt
		"$CTL" drill failover --primary "$TMP/a$k.sock" --secondary "$TMP/b$k.sock" \
			--timeout 20 >"$r" 2>&1 || fail "drill $k: colovmctl drill failover: $(cat "$r")"
		wait "$(pid a$k)" 2>/dev/null || true
		note "drill $k's report: $(cat "$r")"
		[ "$(tail -1 "$r")" = "VERDICT: PASS" ] || fail "drill $k: the report's verdict: $(cat "$r")"
		grep -qx 'serving:   secondary' "$r" || fail "drill $k: the report's sides that serve"
		grep -q '^primary: .*: killed, gone$' "$r" || fail "drill $k: the report's primary"
		grep -qE '^ +state unprotected, run state running, serves: yes; last checkpoint [1-9]' \
			"$r" || fail "drill $k: the report's secondary"
		t=$(sed -n 's/^takeover:  \([0-9]*\) ms$/\1/p' "$r")
		[ -n "$t" ] && [ "$t" -ge 0 ] || fail "drill $k: the report's takeover time"
	else
		drill failover "$r" --primary "$TMP/a$k.sock" --secondary "$TMP/b$k.sock" --timeout 20
		wait "$(pid a$k)" 2>/dev/null || true
		drill_pass "$r" secondary 0 20000
		got=$(report "$r" '(d["primary"]["killed"], d["primary"]["alive"], d["secondary"]["colo-exit"]["mode"], d["secondary"]["last-checkpoint"] >= d["before"]["secondary-last-checkpoint"] > 0, sum(d["secondary"]["failovers"].values()))')
		[ "$got" = "(True, False, 'secondary', True, 1)" ] || fail "drill $k: the report: $got: $(cat "$r")"
		t=$(report "$r" 'd["takeover-ms"]')
	fi
	[ "$WITNESS" = 0 ] || grep -q 'granted it over the standing session in [0-9]* ms: taking over' "$TMP/b$k.err" ||
		fail "drill $k: b$k's log: $(tail -3 "$TMP/b$k.err")"
	times+=("$t")
	grep -q 'dropped half-way' "$TMP/b$k.err" && midckpt=$((midckpt + 1)) && at=" (mid-checkpoint)" || at=""
	answers $k 40
	touch "$TMP/stop$k"
	wait $CL || fail "drill $k: the client failed: $(tail -5 "$TMP/c$k.out")"
	note "drill $k: takeover in $t ms$at, checkpoint $(q "$TMP/b$k.sock" query-colo-status | jq_ 'd["last-checkpoint"]'); client: $(tail -1 "$TMP/c$k.out")"
	q "$TMP/b$k.sock" quit >/dev/null || true
	wait_exit "$(pid b$k)" 30 || true
	no_crash "$TMP/a$k.err" "$TMP/b$k.err"
done
note "takeover (kill to b's COLO_EXIT seen by colovmctl drill, SIGKILL seen as a reset, $([ "$WITNESS" = 0 ] && echo "no witness" || echo "witness asked")): median $(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms over $DRILLS drills (${times[*]}); $midckpt in a checkpoint's pause"

# ---- the primary dies in the middle of the first sync --------------------------
# (a bigger guest and a slow first sync: it takes seconds)
ARGS=(--kernel "$TESTGUEST" --mem 256 --cmdline "app=dirty mb=128 rate=64" --peer-key "$TMP/key"
	"${WARGS[@]}")
vm bx tpb0 --colo secondary --listen tcp:127.0.0.1:$((port + 1))
wait_for_line "$TMP/bx.err" 'waiting for a primary' 20 || fail "bx does not listen"
vm ax tpa0
# (once the guest has touched its 128 MiB: the zero pages are not sent)
wait_for_line "$TMP/ax.out" '^dirty: t=3 ' 60 || fail "ax's guest does not run: $(cat "$TMP/ax.out")"
q "$TMP/ax.sock" migrate-set-parameters max-bandwidth=$((16 << 20)) >/dev/null
q "$TMP/ax.sock" colo-protect uri=tcp:127.0.0.1:$((port + 1)) >/dev/null || fail "colo-protect"
wait_state "$TMP/ax.sock" sync 20 || fail "no first sync: $(q "$TMP/ax.sock" query-colo-status)"
sleep 1
[ "$(colo_state "$TMP/ax.sock")" = sync ] || fail "the first sync ended within 1 s: nothing to drill"
kill -9 "$(pid ax)"
st=0
wait_exit "$(pid bx)" 30 || st=$?
[ $st != 124 ] || fail "bx runs on after a half first sync"
[ $st = 2 ] || fail "bx ended with status $st, not 2"
grep -q 'the first sync failed' "$TMP/bx.err" || fail "bx's log: $(tail -3 "$TMP/bx.err")"
grep -q '^testguest: booted' "$TMP/bx.out" && fail "bx's guest ran"
note "a kill mid-first-sync: $(grep -m1 'first sync failed' "$TMP/bx.err")"
no_crash "$TMP/ax.err" "$TMP/bx.err"
echo PASS
