#!/bin/bash
# Re-protect after a failover, repeatedly, under app=kv load. One "LAN": a
# netns whose bridge br0 (10.0.0.1, the client) has a tap per colovm; the
# pairs' channels are on its loopback. Every guest has the same MAC: the
# copy that takes over announces it (RARP) and the bridge follows.
# Two clients (tests/guest/tools/kvclient.py, each checking every answer
# against its own history) keep their connections from start to end:
#   "old": 4 connections opened while A is protected by X;
#   "new": 4 connections opened while A is protected by B, with no
#          checkpoint after them (checkpoint-interval 60 s): B's guest picked
#          other initial sequence numbers, so after B takes over its wire must
#          rewrite them for good (wire-offsets), and so must C's after C does.
# The chain:
#  (a) A primary + X secondary; X SIGKILLed: A runs on unprotected;
#      colo-protect on A with a fresh B: checkpoints, RAM digests equal.
#  (b) A SIGKILLed: B takes over (COLO_EXIT); colo-protect on B with a fresh
#      C: B answers as the primary now, checkpoints, digests equal (B, C);
#      B SIGKILLed: C takes over, the "new" connections' offsets with it.
#  (c) (a) again on C, a former secondary: C protected by D, digests equal;
#      D SIGKILLed: C runs on unprotected; C protected by E: 6 checkpoints'
#      digests equal. (Once, in a host VM, the digests of this last pair
#      differed at its third compared checkpoint, when it was not yet part
#      of this test; natively it passed every time.)
# After each event both clients make progress; at the end both end cleanly
# (no wrong answer, no connection lost).
# Every loss here is a SIGKILL, seen at once as the channel's reset; the
# heartbeat (tests/e2e/colo-heartbeat.sh tests it) is made tolerant, 200 ms x
# 25, so that a host VM starved of CPU does not split a pair into two serving
# copies (the witness's business, not this test's).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
need_netns
NS=colovm-rp-$$
port=$((49100 + RANDOM % 800))
MAC=52:54:00:12:34:56
ARGS=(--kernel "$TESTGUEST" --mem 32 --cmdline "app=kv")
T0=$SECONDS
note() { echo "--- [$((SECONDS - T0)) s] $*" >&2; }
# (KEEP_LOGS=DIR: the logs are copied there at the end)
[ -z "${KEEP_LOGS:-}" ] || on_exit "rm -rf $KEEP_LOGS; cp -r $TMP $KEEP_LOGS 2>/dev/null"

bridge_ns "$NS" tapa tapx tapb tapc tapd tape

# colo_run NAME TAP [ROLE URI]: colovm NAME ($TMP/NAME.{sock,err,out}) on TAP,
# a plain VM or --colo secondary --listen URI; PID in PID_NAME.
colo_run() {
	local n=$1 tap=$2 role=${3:-} uri=${4:-} colo=()
	[ -z "$role" ] || colo=(--colo "$role" --listen "$uri")
	lan_vm "$n" "$tap" "${colo[@]}"
	if [ "$role" = secondary ]; then
		wait_for_line "$TMP/$n.err" 'waiting for a primary' 20 ||
			fail "$n does not listen: $(cat "$TMP/$n.err")"
	fi
}
sock() { echo "$TMP/$1.sock"; }
# kill9 NAME: the host of NAME loses power
kill9() {
	kill -9 "$(pid "$1")"
	wait "$(pid "$1")" 2>/dev/null || true
	note "$1 killed (SIGKILL)"
}
stat() { q "$(sock "$1")" query-colo-stats | jq_ "$2"; }
ckpts() { stat "$1" 'd["checkpoints"]'; }
# protect P S: colo-protect on P with S's URI; both say they are paired
protect() {
	local t0=$SECONDS
	q "$(sock "$1")" migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 >/dev/null
	q "$(sock "$1")" colo-protect uri=tcp:127.0.0.1:"$(eval "echo \$PORT_$2")" >/dev/null ||
		fail "colo-protect on $1 refused"
	wait_state "$(sock "$1")" protected 120 ||
		fail "$1 is not protected by $2: $(q "$(sock "$1")" query-colo-status)"
	wait_state "$(sock "$2")" protected 20 ||
		fail "$2 is not $1's secondary: $(q "$(sock "$2")" query-colo-status)"
	q "$(sock "$1")" query-colo-status | grep -q '"mode": "primary"' ||
		fail "$1 does not answer as the primary: $(q "$(sock "$1")" query-colo-status)"
	note "$1 protected by $2 after $((SECONDS - t0)) s"
}
secondary() { # NAME TAP: a fresh secondary
	port=$((port + 1))
	eval "PORT_$1=$port"
	colo_run "$1" "$2" secondary tcp:127.0.0.1:$port
}
# checkpoints_rise P N: P takes N more checkpoints
checkpoints_rise() {
	local n0 end=$((SECONDS + 60))
	n0=$(ckpts "$1")
	until [ "$(ckpts "$1")" -ge $((n0 + $2)) ]; do
		[ $SECONDS -lt $end ] || fail "$1: fewer than $2 checkpoints in 60 s"
		sleep 0.3
	done
}
# digests P S N: N checkpoints' RAM digests equal on P and S
digests() {
	mkdir -p "$TMP/dg-$1"
	ln -sf "$(sock "$1")" "$TMP/dg-$1/pri.sock"
	ln -sf "$(sock "$2")" "$TMP/dg-$1/sec.sock"
	compare_digests "$TMP/dg-$1" "$3" 90 2
	note "$1/$2: $3 checkpoints' RAM digests equal (last $LAST)"
}
# takeover S: S took over (query-colo-status, its COLO_EXIT event)
takeover() {
	wait_state "$(sock "$1")" unprotected 20 ||
		fail "$1 did not take over: $(q "$(sock "$1")" query-colo-status)"
	q "$(sock "$1")" query-colo-status | grep -q '"last-mode": "secondary"' ||
		fail "$1: $(q "$(sock "$1")" query-colo-status)"
	wait_for_line "$TMP/$1.ev" '"COLO_EXIT"' 10 || fail "$1: no COLO_EXIT event"
	grep '"COLO_EXIT"' "$TMP/$1.ev" | grep -q '"mode": "secondary"' ||
		fail "$1: COLO_EXIT: $(grep COLO_EXIT "$TMP/$1.ev")"
	note "$1 took over: $(q "$(sock "$1")" query-colo-status | jq_ 'd["reason"]')"
}
watch() { # NAME: its QMP events into $TMP/NAME.ev
	"$CTL" --qmp "$(sock "$1")" --watch >"$TMP/$1.ev" 2>/dev/null &
	on_exit "kill $! 2>/dev/null"
}
# clients_go WHAT: both clients answer 40 more ops each, within 60 s
clients_go() {
	local c n0 end
	for c in old new; do
		[ -e "$TMP/$c.progress" ] || continue
		n0=$(cat "$TMP/$c.progress") end=$((SECONDS + 60))
		until [ "$(cat "$TMP/$c.progress")" -ge $((n0 + 40)) ]; do
			kill -0 "$(eval "echo \$CL_$c")" 2>/dev/null ||
				fail "client $c ended $1: $(cat "$TMP/$c.out")"
			[ $SECONDS -lt $end ] || fail "client $c is stuck $1 (op $n0): $(cat "$TMP/$c.out")"
			sleep 0.2
		done
	done
	note "clients go on $1 (old: $(cat "$TMP/old.progress") ops, new: $(cat "$TMP/new.progress" 2>/dev/null || echo -))"
}
client() { # NAME: kvclient over 4 connections until $TMP/stop
	ip netns exec "$NS" python3 "$SRC/tests/guest/tools/kvclient.py" --conns 4 --ops 100 --keys 50 \
		--prefix "$1-" --seed $RANDOM --timeout 60 --rate 50 --until "$TMP/stop" \
		--progress "$TMP/$1.progress" >"$TMP/$1.out" 2>&1 &
	eval "CL_$1=$!"
	on_exit "kill $! 2>/dev/null"
	local end=$((SECONDS + 60))
	until [ -e "$TMP/$1.progress" ]; do
		[ $SECONDS -lt $end ] || fail "client $1 does not start: $(cat "$TMP/$1.out")"
		sleep 0.2
	done
}

# ---- (a) a primary loses its secondary, then re-protects ---------------------
secondary x tapx
colo_run a tapa
wait_for_line "$TMP/a.out" '^net: up ' 30 || fail "A's guest has no network: $(cat "$TMP/a.out")"
protect a x
client old
clients_go "with A protected by X"
kill9 x
wait_state "$(sock a)" unprotected 20 || fail "A did not give X up: $(q "$(sock a)" query-colo-status)"
clients_go "with A unprotected"
secondary b tapb
watch b
protect a b
q "$(sock a)" migrate-set-parameters x-colo-ram-digest=true checkpoint-interval=300 >/dev/null
checkpoints_rise a 3
digests a b 3
clients_go "with A protected by B"

# ---- (b) the secondary takes over, then re-protects --------------------------
# No checkpoint from here to the kill: the "new" connections keep the offset
# between the two guests' initial sequence numbers.
q "$(sock a)" migrate-set-parameters checkpoint-interval=60000 x-colo-ram-digest=false >/dev/null
# (the periodic checkpoint already due under the old interval, at most 300
# ms away, still comes: let it pass before the new connections open)
sleep 1
n0=$(ckpts a)
client new
clients_go "with new connections"
[ "$(ckpts a)" = "$n0" ] || note "a checkpoint came after the new connections (by reason: $(stat a 'd["by-reason"]'))"
kill9 a
takeover b
off=$(stat b 'd["network"]["wire-offsets"]')
note "B rewrites $off connection(s) at its wire"
[ "$off" -ge 1 ] || fail "B rewrites no connection at its wire after its takeover: $(stat b 'd["network"]')"
clients_go "after B took over"
# Unprotected for a while: B's own wire must rewrite both ways (a guest
# whose acks are not its own retransmits, and its TCP gives up after ~26 s).
sleep 30
clients_go "30 s after B took over"
# a paired or listening secondary cannot protect its guest
secondary c tapc
watch c
! q "$(sock c)" colo-protect uri=tcp:127.0.0.1:1 2>"$TMP/busy.err" || fail "a waiting secondary took colo-protect"
note "colo-protect on a waiting secondary: $(cat "$TMP/busy.err")"
protect b c
q "$(sock b)" migrate-set-parameters x-colo-ram-digest=true checkpoint-interval=300 >/dev/null
checkpoints_rise b 3
digests b c 3
! q "$(sock c)" colo-protect uri=tcp:127.0.0.1:1 2>"$TMP/busy.err" || fail "a paired secondary took colo-protect"
# (refused by the role, or by the run state when a checkpoint holds it)
grep -qE 'only after it took over|cannot be protected in state' "$TMP/busy.err" ||
	fail "colo-protect on a paired secondary: $(cat "$TMP/busy.err")"
[ "$(stat b 'd["network"]["wire-offsets"]')" -ge 1 ] || fail "B's wire lost its offsets"
[ "$(stat c 'd["network"]["primary-wire-offsets"]')" -ge 1 ] ||
	fail "C does not hold B's wire offsets: $(stat c 'd["network"]')"
clients_go "with B protected by C"
kill9 b
takeover c
[ "$(stat c 'd["network"]["inherited-offsets"]')" -ge 1 ] ||
	fail "C took no offsets over from B: $(stat c 'd["network"]')"
clients_go "after C took over"

# ---- (c) a former secondary loses the secondary it attached, re-protects -----
secondary d tapd
protect c d
q "$(sock c)" migrate-set-parameters x-colo-ram-digest=true checkpoint-interval=300 >/dev/null
checkpoints_rise c 3
digests c d 3
kill9 d
wait_state "$(sock c)" unprotected 20 || fail "C did not give D up: $(q "$(sock c)" query-colo-status)"
clients_go "with C unprotected"
secondary e tape
protect c e
q "$(sock c)" migrate-set-parameters x-colo-ram-digest=true checkpoint-interval=300 >/dev/null
checkpoints_rise c 3
digests c e 6
clients_go "with C protected by E"

# ---- the clients' histories, from start to end -------------------------------
touch "$TMP/stop"
for c in old new; do
	wait_exit "$(eval "echo \$CL_$c")" 120 || fail "client $c: $(cat "$TMP/$c.out")"
	note "client $c: $(cat "$TMP/$c.out")"
done
q "$(sock c)" quit >/dev/null || true
wait_exit "$(pid c)" 30 || true
no_crash "$TMP"/*.err
echo PASS
