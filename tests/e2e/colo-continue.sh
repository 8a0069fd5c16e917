#!/bin/bash
# Checkpointed continuation: `colovmctl migrate --continue STANDBY URI` moves
# a running guest to another host and leaves the source as its hot standby,
# roles swapped, protection going on. Under app=kv load from a client that
# checks every answer against its own history (tests/guest/tools/kvclient.py,
# 4 connections kept from start to end). One "LAN" as in colo-reprotect.sh: a
# netns whose bridge (10.0.0.1, the client) has a tap per colovm, the same
# MAC on both guests (the copy that serves announces it), the pair's channel
# on the netns' loopback.
#  (1) bad requests are refused with a message and change nothing: continue
#      without standby, standby without continue, a URI where nobody listens
#      (the guest runs on, unprotected, the client with it);
#  (2) A unprotected, B a waiting secondary: migrate --continue from A: A
#      protects B (the first sync is a live migration), hands the guest over
#      in one last checkpoint and becomes B's standby; B serves (COLO_EXIT
#      reason request, no failover) and protects it with A: checkpoints,
#      RAM digests equal on both;
#  (3) back again from B, the pair already formed: the switchover is the next
#      checkpoint; A serves, B is its standby; digests equal;
#  (4) and the pair still protects: A SIGKILLed, B takes over.
# After each step the client makes progress; at the end it ends cleanly (no
# wrong answer, no connection lost).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
need_netns
NS=colovm-ct-$$
port=$((48100 + RANDOM % 800))
PA=$port PB=$((port + 1))
MAC=52:54:00:12:34:57
ARGS=(--kernel "$TESTGUEST" --mem 32 --cmdline "app=kv")
T0=$SECONDS
note() { echo "--- [$((SECONDS - T0)) s] $*" >&2; }

bridge_ns "$NS" tapa tapb

sock() { echo "$TMP/$1.sock"; }
stat() { q "$(sock "$1")" query-colo-stats | jq_ "$2"; }
status() { q "$(sock "$1")" query-colo-status | jq_ "$2"; }
ckpts() { stat "$1" 'd["checkpoints"]'; }
watch() { # NAME: its QMP events into $TMP/NAME.ev
	"$CTL" --qmp "$(sock "$1")" --watch >"$TMP/$1.ev" 2>/dev/null &
	on_exit "kill $! 2>/dev/null"
}
progress() { cat "$TMP/kv.progress"; }
# client_go WHAT: the client answers 40 more ops within 60 s
client_go() {
	local n0 end=$((SECONDS + 60))
	n0=$(progress)
	until [ "$(progress)" -ge $((n0 + 40)) ]; do
		kill -0 "$CL" 2>/dev/null || fail "the client ended $1: $(cat "$TMP/kv.out")"
		[ $SECONDS -lt $end ] || fail "the client is stuck $1 (op $n0): $(cat "$TMP/kv.out")"
		sleep 0.2
	done
	note "the client goes on $1 ($(progress) ops)"
}
# digests P S: 3 checkpoints' RAM digests equal on P (the primary) and S
digests() {
	q "$(sock "$1")" migrate-set-parameters x-colo-ram-digest=true checkpoint-interval=300 >/dev/null
	mkdir -p "$TMP/dg-$1"
	ln -sf "$(sock "$1")" "$TMP/dg-$1/pri.sock"
	ln -sf "$(sock "$2")" "$TMP/dg-$1/sec.sock"
	compare_digests "$TMP/dg-$1" 3 90 2
	q "$(sock "$1")" migrate-set-parameters x-colo-ram-digest=false >/dev/null
	note "$1 primary, $2 standby: 3 checkpoints' digests (RAM, disks) equal (last $LAST)"
}
running() { # NAME: its guest runs (within 5 s: a checkpoint pauses it)
	local t
	for t in $(seq 50); do
		[ "$(q "$(sock "$1")" query-status | jq_ 'd["status"]')" = running ] && return 0
		sleep 0.1
	done
	return 1
}
# switched OLD NEW: NEW serves the guest as the primary, protected by OLD
switched() {
	wait_state "$(sock "$1")" protected 120 ||
		fail "$1 is not the standby: $(q "$(sock "$1")" query-colo-status)"
	[ "$(status "$1" 'd["mode"]')" = secondary ] ||
		fail "$1 is protected but not as the secondary: $(q "$(sock "$1")" query-colo-status)"
	[ "$(status "$2" 'd["mode"] + " " + d["state"]')" = "primary protected" ] ||
		fail "$2 does not serve as the primary: $(q "$(sock "$2")" query-colo-status)"
	# (running, or paused for a checkpoint a moment: "colo")
	running "$2" || fail "$2's guest does not run: $(q "$(sock "$2")" query-status)"
	wait_for_line "$TMP/$2.ev" '"COLO_EXIT"' 10 || fail "$2: no COLO_EXIT event"
	grep '"COLO_EXIT"' "$TMP/$2.ev" | tail -1 | grep -q '"reason": "request"' ||
		fail "$2: COLO_EXIT: $(grep COLO_EXIT "$TMP/$2.ev")"
	grep -q 'switchover: the guest runs on' "$TMP/$1.err" ||
		fail "$1 does not log its switchover: $(tail "$TMP/$1.err")"
	note "switched over: $2 serves, $1 is its standby ($(status "$1" 'd["reason"]'))"
}

# ---- (1) refused requests ---------------------------------------------------
lan_vm b tapb --colo secondary --listen tcp:127.0.0.1:$PB
wait_for_line "$TMP/b.err" 'waiting for a primary' 20 || fail "B does not listen: $(cat "$TMP/b.err")"
lan_vm a tapa
wait_for_line "$TMP/a.out" '^net: up ' 30 || fail "A's guest has no network: $(cat "$TMP/a.out")"
watch a
watch b
q "$(sock a)" migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 >/dev/null
q "$(sock b)" migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 >/dev/null
ip netns exec "$NS" python3 "$SRC/tests/guest/tools/kvclient.py" --conns 4 --ops 100 --keys 50 \
	--prefix kv- --seed $RANDOM --timeout 60 --rate 50 --until "$TMP/stop" \
	--progress "$TMP/kv.progress" >"$TMP/kv.out" 2>&1 &
CL=$!
on_exit "kill $CL 2>/dev/null"
end=$((SECONDS + 60))
until [ -e "$TMP/kv.progress" ]; do
	[ $SECONDS -lt $end ] || fail "the client does not start: $(cat "$TMP/kv.out")"
	sleep 0.2
done
client_go "on A alone"

! q "$(sock a)" migrate uri=tcp:127.0.0.1:$PB continue=true 2>"$TMP/r1.err" ||
	fail "migrate with continue and no standby was taken"
grep -q 'needs standby' "$TMP/r1.err" || fail "continue without standby: $(cat "$TMP/r1.err")"
! q "$(sock a)" migrate uri=tcp:127.0.0.1:$PB standby=tcp:127.0.0.1:$PA 2>"$TMP/r2.err" ||
	fail "migrate with standby and no continue was taken"
grep -q 'argument of continue' "$TMP/r2.err" || fail "standby without continue: $(cat "$TMP/r2.err")"
st=0
"$CTL" --qmp "$(sock a)" migrate --continue tcp:127.0.0.1:$PA >"$TMP/r3.out" 2>"$TMP/r3.err" || st=$?
[ $st = 2 ] && grep -q 'usage: migrate --continue STANDBY URI' "$TMP/r3.err" ||
	fail "colovmctl migrate --continue with one URI: status $st, $(cat "$TMP/r3.err")"
# nobody at the URI: the guest runs on where it is, colovmctl says why
st=0
"$CTL" --qmp "$(sock a)" migrate --continue tcp:127.0.0.1:$PA tcp:127.0.0.1:1 \
	>"$TMP/r4.out" 2>"$TMP/r4.err" || st=$?
[ $st = 1 ] || fail "migrate --continue to nobody: status $st, $(cat "$TMP/r4.err")"
note "to nobody: $(tail -1 "$TMP/r4.err")"
running a || fail "A's guest stopped: $(q "$(sock a)" query-status)"
[ "$(status b 'd["state"]')" = waiting ] || fail "B: $(q "$(sock b)" query-colo-status)"
client_go "after the refused requests"

# ---- (2) A -> B: protect, then switch over ----------------------------------
t0=$SECONDS
"$CTL" --qmp "$(sock a)" migrate --continue tcp:127.0.0.1:$PA tcp:127.0.0.1:$PB \
	>"$TMP/c1.out" 2>"$TMP/c1.err" || fail "migrate --continue A -> B: $(cat "$TMP/c1.err")"
note "colovmctl migrate --continue A -> B: $((SECONDS - t0)) s; $(tr '\r' '\n' <"$TMP/c1.err" | grep -v '^\[' | tail -1)"
switched a b
grep -q 'switchover: .* handed the guest over' "$TMP/b.err" || fail "B does not log the switchover"
grep -q 'failover' "$TMP/b.err" && fail "B logs a failover: $(grep failover "$TMP/b.err")"
client_go "with B serving, A its standby"
digests b a
client_go "after the digests"

# ---- (3) B -> A: the pair formed already ------------------------------------
n0=$(ckpts b)
t0=$SECONDS
"$CTL" --qmp "$(sock b)" migrate --continue tcp:127.0.0.1:$PB tcp:127.0.0.1:$PA \
	>"$TMP/c2.out" 2>"$TMP/c2.err" || fail "migrate --continue B -> A: $(cat "$TMP/c2.err")"
note "colovmctl migrate --continue B -> A: $((SECONDS - t0)) s"
switched b a
client_go "with A serving again, B its standby"
digests a b
client_go "after the digests"

# ---- (4) the swapped pair protects: the primary dies, B takes over ----------
kill -9 "$(pid a)"
wait "$(pid a)" 2>/dev/null || true
note "A killed (SIGKILL)"
wait_state "$(sock b)" unprotected 20 || fail "B did not take over: $(q "$(sock b)" query-colo-status)"
running b || fail "B's guest does not run after the takeover: $(q "$(sock b)" query-status)"
client_go "after B took over"

touch "$TMP/stop"
wait "$CL" || fail "the client failed: $(cat "$TMP/kv.out")"
note "client: $(tail -1 "$TMP/kv.out")"

# ---- (5) replicated disks go with the guest ----------------------------------
# D runs app=blk (rewrites and verifies 4 MiB of an 8 MiB image of random
# bytes, a new pattern per pass) with --disk PATH,replicate; E waits with an
# empty image. D -> E, then E -> D: each time the images are equal byte for
# byte at 3 checkpoints (x-colo-ram-digest's disk-digest, with RAM's), and
# the guest goes on verifying on whichever copy serves.
head -c 8M /dev/urandom >"$TMP/d.img"
truncate -s 8M "$TMP/e.img"
blk_go() { # NAME WHAT: 2 more passes on NAME's console, none failed
	go_on "$TMP/$1.out" 2
	note "$1's guest verifies its disk $2 ($(passes "$TMP/$1.out") passes)"
}
blk_vm() { # NAME ARGS...
	local n=$1 t=0
	shift
	"$COLOVM" run --kernel "$TESTGUEST" --mem 16 --cmdline "app=blk mb=4 loop=1" \
		--disk "$TMP/$n.img",replicate "$@" --serial file:"$TMP/$n.out" \
		--qmp unix:"$TMP/$n.sock",server 2>"$TMP/$n.err" &
	eval "PID_$n=$!"
	on_exit "kill -9 $! 2>/dev/null"
	while [ ! -S "$TMP/$n.sock" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
	[ -S "$TMP/$n.sock" ] || fail "$n: no QMP socket: $(cat "$TMP/$n.err")"
}
PD=$((port + 2)) PE=$((port + 3))
blk_vm e --colo secondary --listen tcp:127.0.0.1:$PE
wait_for_line "$TMP/e.err" 'waiting for a primary' 20 || fail "E does not listen: $(cat "$TMP/e.err")"
blk_vm d
watch d
watch e
blk_go d "alone"
"$CTL" --qmp "$(sock d)" migrate --continue tcp:127.0.0.1:$PD tcp:127.0.0.1:$PE \
	>"$TMP/c3.out" 2>"$TMP/c3.err" || fail "migrate --continue D -> E: $(cat "$TMP/c3.err")"
switched d e
blk_go e "after D -> E"
digests e d
"$CTL" --qmp "$(sock e)" migrate --continue tcp:127.0.0.1:$PE tcp:127.0.0.1:$PD \
	>"$TMP/c4.out" 2>"$TMP/c4.err" || fail "migrate --continue E -> D: $(cat "$TMP/c4.err")"
switched e d
blk_go d "after E -> D"
digests d e
no_crash "$TMP"/*.err
echo "PASS: colo-continue ($((SECONDS - T0)) s)"
