#!/bin/bash
# Heartbeats and failover on a COLO pair. Two "hosts" (network namespaces
# joined by a veth that carries the pair's channel), each with a tap for its
# guest (app=kv); the client is the primary host's side of its tap.
#
# 1. A client SETs 20 keys through the pair (each answer released only once
#    the secondary agreed or a checkpoint covered it), then the link between
#    the hosts is cut (`colovmctl drill link-cut`: the primary's veth end
#    down, so no carrier, no FIN, no RST, silence; its report checked: both
#    sides unprotected and running, FAIL: no witness, a split brain; the
#    link up again after it). Both
#    sides give the other up within a few heartbeats (100 ms x 8), not the
#    channel's 30 s timeout, and say so. The secondary takes over and
#    announces its guest's MAC (RARP) on its own wire; from its own host's
#    side of its tap, a client reads the 20 keys back from its
#    guest (nothing acknowledged was lost); the primary's guest serves its
#    client on.
#    Each side sends a COLO_EXIT event (mode, reason "error", why, and the
#    silence it acted on).
# 2. x-colo-lost-heartbeat on a secondary: it takes over at once (COLO_EXIT
#    reason "request").
# 3. x-colo-lost-heartbeat on a primary: it gives its secondary up, which
#    is told to stand down and ends (never a second copy); the primary's
#    guest serves on.
# Each failover is counted once, by why (query-colo-stats "failovers", the
# colovm_failovers_total metric): heartbeat in 1 on both sides, drill on
# the side that was told in 2 and 3.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
need_netns
NSP=colovm-hp-$$ NSS=colovm-hs-$$
port=$((46100 + RANDOM % 800))
head -c32 /dev/urandom >"$TMP/key"
two_hosts $NSP $NSS

kv() { # NS OP...: each "SET k v" / "GET k" on one connection, the answers
	ip netns exec "$1" python3 - "${@:2}" <<'PY'
import socket, sys
s = socket.create_connection(("10.0.0.2", 7000), timeout=20)
f = s.makefile("rwb")
for op in sys.argv[1:]:
    f.write((op + "\n").encode()); f.flush()
    print(f.readline().decode().rstrip("\n"))
PY
}
# watch_events NAME: record the QMP events of NAME's pair in $TMP/NAME-{pri,sec}.ev
watch_events() {
	local side
	for side in pri sec; do
		"$CTL" --qmp "$TMP/$1-$side.sock" --watch >"$TMP/$1-$side.ev" 2>/dev/null &
		on_exit "kill $! 2>/dev/null"
	done
	sleep 0.5
}
# colo_exit NAME SIDE MODE REASON: SIDE sent one COLO_EXIT with MODE and REASON
colo_exit() {
	local f=$TMP/$1-$2.ev end=$((SECONDS + 10))
	until grep -q '"COLO_EXIT"' "$f"; do
		[ $SECONDS -lt $end ] || fail "$1: no COLO_EXIT event from the $2 side"
		sleep 0.2
	done
	grep -m1 '"COLO_EXIT"' "$f" | jq_ '(d["data"]["mode"], d["data"]["reason"])' |
		grep -qxF "('$3', '$4')" || fail "$1: the $2 side's COLO_EXIT: $(grep COLO_EXIT "$f")"
}

# ---- 1. the link is cut ------------------------------------------------------
net_pair cut "app=kv"
watch_events cut
q "$TMP/cut-pri.sock" query-migrate-parameters |
	grep -q '"heartbeat-interval": 100, "heartbeat-misses": 8' ||
	fail "heartbeat parameters: $(q "$TMP/cut-pri.sock" query-migrate-parameters)"
sets=() gets=() want=()
for i in $(seq 20); do
	sets+=("SET key$i v$i-$RANDOM")
	gets+=("GET key$i")
	want+=("${sets[-1]##* }")
done
[ "$(kv $NSP "${sets[@]}" | sort -u)" = OK ] || fail "SETs through the pair"
# colovmctl drill link-cut in the primary's host: its veth end down, so
# the other end has no carrier either; both sides watched; the link up
# again at the end. No witness here: both run on alone, and the drill
# says so (FAIL, exit 1: a split brain).
r=$TMP/cut.json
ip netns exec $NSP "$CTL" drill link-cut --primary "$TMP/cut-pri.sock" \
	--secondary "$TMP/cut-sec.sock" --link vp-$$ --timeout 20 --json >"$r" 2>"$r.err" || DRILL_ST=$?
[ "${DRILL_ST:-0}" = 1 ] || fail "drill link-cut: exit ${DRILL_ST:-0}, not 1: $(cat "$r" "$r.err")"
got=$(report "$r" '(d["verdict"], d["reason"], d["serving"], [d[s][k] for s in ("primary", "secondary") for k in ("state", "run-state", "alive")])')
[ "$got" = "('FAIL', 'both sides serve: a split brain (the pair has no witness: configure one on both sides)', ['primary', 'secondary'], ['unprotected', 'running', True, 'unprotected', 'running', True])" ] ||
	fail "drill link-cut's report: $got: $(cat "$r")"
# (no side can give the other up before 8 beats of 100 ms of silence)
t=$(report "$r" 'd["takeover-ms"]')
[ "$t" -ge 700 ] && [ "$t" -lt 10000 ] || fail "drill link-cut: both verdicts in $t ms"
note "drill link-cut: both sides ran on alone, the last $t ms after the cut"
ip -n $NSP link show vp-$$ | grep -q '[<,]UP[,>]' || fail "the drill left the link down"
note "primary: $(q "$TMP/cut-pri.sock" query-colo-status | jq_ 'd["reason"]')"
note "secondary: $(q "$TMP/cut-sec.sock" query-colo-status | jq_ 'd["reason"]')"
silent=$(sed -n 's/.*heartbeat: nothing from the primary for \([0-9]*\) ms: taking over.*/\1/p' \
	"$TMP/cut-sec.err")
[ -n "$silent" ] || fail "the secondary does not say the heartbeat was lost: $(tail -5 "$TMP/cut-sec.err")"
# the silence it acted on: a few beats (800 ms and the beat that saw it),
# not the channel's 30 s timeout
note "the secondary took over after $silent ms without a byte from the primary"
[ "$silent" -lt 3000 ] || fail "the secondary waited $silent ms: that is no heartbeat"
q "$TMP/cut-pri.sock" query-colo-status | grep -q 'the secondary fell silent: no heartbeat for' ||
	fail "the primary's reason does not name the heartbeat"
grep -q 'the pair broke: the primary fell silent: no heartbeat for' "$TMP/cut-sec.err" ||
	fail "the secondary does not say why the pair broke: $(tail -5 "$TMP/cut-sec.err")"
grep -q 'heartbeat: nothing from the secondary for [0-9]* ms' "$TMP/cut-pri.err" ||
	fail "the primary does not say the heartbeat was lost: $(tail -5 "$TMP/cut-pri.err")"
colo_exit cut sec secondary error
colo_exit cut pri primary error
# failovers(NAME SIDE) -> "heartbeat drill peer-lost" counts of query-colo-stats
failovers() {
	q "$TMP/$1-$2.sock" query-colo-stats |
		jq_ '" ".join(str(d["failovers"][k]) for k in ("heartbeat", "drill", "peer-lost"))'
}
[ "$(failovers cut sec)" = "1 0 0" ] || fail "the secondary's failovers: $(failovers cut sec)"
[ "$(failovers cut pri)" = "1 0 0" ] || fail "the primary's failovers: $(failovers cut pri)"
grep '"COLO_EXIT"' "$TMP/cut-sec.ev" | grep -q '"silent-ms": [0-9]' ||
	fail "the secondary's COLO_EXIT does not give the silence: $(grep COLO_EXIT "$TMP/cut-sec.ev")"
note "secondary's event: $(grep COLO_EXIT "$TMP/cut-sec.ev")"
# its announce (RARP) before any client spoke to it on its own wire
rarp=$(ip netns exec $NSS cat /sys/class/net/tap0/statistics/rx_packets)
[ "$rarp" -ge 1 ] || fail "the secondary announced nothing on its own wire after the takeover"
grep -q 'announced .* (RARP)' "$TMP/cut-sec.err" || fail "no announce in the secondary's log"
got=$(kv $NSS "${gets[@]}") || fail "the secondary's guest does not answer on its own wire"
[ "$got" = "$(printf '%s\n' "${want[@]}")" ] ||
	fail "the secondary's guest lost acknowledged writes: $(echo $got)"
note "the secondary's guest answers on its own wire with all 20 keys"
[ "$(kv $NSP "GET key20" "SET after cut")" = "$(printf '%s\nOK' "${want[19]}")" ] ||
	fail "the primary's guest does not serve on"
quit_split "$TMP/cut-pri" "$TMP/cut-sec"

# ---- 2. x-colo-lost-heartbeat on the secondary -------------------------------
net_pair dsec "app=kv"
watch_events dsec
q "$TMP/dsec-sec.sock" x-colo-lost-heartbeat >/dev/null || fail "x-colo-lost-heartbeat refused"
wait_state "$TMP/dsec-sec.sock" unprotected 10 ||
	fail "the secondary did not take over: $(q "$TMP/dsec-sec.sock" query-colo-status)"
q "$TMP/dsec-sec.sock" query-colo-status | grep -q 'x-colo-lost-heartbeat' ||
	fail "the secondary's reason: $(q "$TMP/dsec-sec.sock" query-colo-status)"
wait_state "$TMP/dsec-pri.sock" unprotected 20 ||
	fail "the primary did not notice: $(q "$TMP/dsec-pri.sock" query-colo-status)"
colo_exit dsec sec secondary request
[ "$(failovers dsec sec)" = "0 1 0" ] || fail "the secondary's failovers: $(failovers dsec sec)"
# (the primary saw its secondary go: the connection, or its silence)
[ "$(failovers dsec pri | tr ' ' + | bc)" = 1 ] ||
	fail "the primary's failovers: $(failovers dsec pri)"
[ "$(kv $NSP "SET a 1" "GET a")" = "$(printf 'OK\n1')" ] || fail "the primary's guest"
! q "$TMP/dsec-sec.sock" x-colo-lost-heartbeat 2>"$TMP/again.err" ||
	fail "x-colo-lost-heartbeat taken outside a pair"
grep -q 'not in a COLO pair' "$TMP/again.err" || fail "outside a pair: $(cat "$TMP/again.err")"
quit_split "$TMP/dsec-pri" "$TMP/dsec-sec"

# ---- 3. x-colo-lost-heartbeat on the primary ---------------------------------
net_pair dpri "app=kv"
watch_events dpri
q "$TMP/dpri-pri.sock" x-colo-lost-heartbeat >/dev/null || fail "x-colo-lost-heartbeat refused"
wait_state "$TMP/dpri-pri.sock" unprotected 10 ||
	fail "the primary still protects: $(q "$TMP/dpri-pri.sock" query-colo-status)"
q "$TMP/dpri-pri.sock" query-colo-status | grep -q 'x-colo-lost-heartbeat' ||
	fail "the primary's reason: $(q "$TMP/dpri-pri.sock" query-colo-status)"
colo_exit dpri pri primary request
[ "$(failovers dpri pri)" = "0 1 0" ] || fail "the primary's failovers: $(failovers dpri pri)"
wait_exit $SEC_PID 30 || fail "the secondary did not stand down"
grep -q 'the primary ends the pair' "$TMP/dpri-sec.err" ||
	fail "the secondary does not say why it ended: $(tail -3 "$TMP/dpri-sec.err")"
[ "$(kv $NSP "SET b 2" "GET b")" = "$(printf 'OK\n2')" ] || fail "the primary's guest"
q "$TMP/dpri-pri.sock" quit >/dev/null || true
wait_exit $PRI_PID 30 || true
no_crash "$TMP/dpri-pri.err" "$TMP/dpri-sec.err"
echo PASS
