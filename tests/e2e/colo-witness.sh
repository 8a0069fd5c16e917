#!/bin/bash
# No split brain: a witness decides who of a broken pair serves. Two "hosts"
# (network namespaces; the pair's channel on a veth between them, each
# guest on its host's tap, app=kv) and `colovm witness` in a third place
# (this machine's root namespace), which each host reaches over a veth of
# its own: cutting the pair's link leaves both able to ask it.
#
# 1. The link is cut, the witness up: the primary is granted and serves on;
#    the secondary (which asks two heartbeats later) is refused: its guest
#    stops (run state "paused", query-colo-status "fenced", COLO_EXIT with
#    "fenced"), it announces nothing, and its guest answers nobody on its
#    own wire. Exactly one copy serves.
# (A primary killed with the witness up: e2e.colo-drills, whose every drill
# is granted.)
# 2. The link is cut and what answers at the witness's address is garbage:
#    no side is granted, both guests stop, neither answers: no second
#    primary, ever.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
need_netns
NSP=colovm-wp-$$ NSS=colovm-ws-$$
port=$((45100 + RANDOM % 800))
wport=$((port + 900))
head -c32 /dev/urandom >"$TMP/key"
two_hosts $NSP $NSS
# the witness's links: 192.168.78.1 (here) - .2 (NSP), 192.168.79.1 - .2 (NSS)
ip link add wp-$$ type veth peer name wpn-$$ netns $NSP
ip link add ws-$$ type veth peer name wsn-$$ netns $NSS
on_exit "ip link del wp-$$ 2>/dev/null; ip link del ws-$$ 2>/dev/null"
ip addr add 192.168.78.1/24 dev wp-$$
ip addr add 192.168.79.1/24 dev ws-$$
ip -n $NSP addr add 192.168.78.2/24 dev wpn-$$
ip -n $NSS addr add 192.168.79.2/24 dev wsn-$$
ip link set wp-$$ up
ip link set ws-$$ up
ip -n $NSP link set wpn-$$ up
ip -n $NSS link set wsn-$$ up
PAIR_PRI_ARGS=(--witness tcp:192.168.78.1:$wport)
PAIR_SEC_ARGS=(--witness tcp:192.168.79.1:$wport)

start_witness() {
	"$COLOVM" witness --listen tcp:0.0.0.0:$wport --peer-key "$TMP/key" \
		--state "$TMP/witness.state" 2>>"$TMP/witness.err" &
	WIT_PID=$!
	on_exit "kill $WIT_PID 2>/dev/null"
	wait_for_line "$TMP/witness.err" 'witness: serving claims on' 10 ||
		fail "the witness does not start: $(cat "$TMP/witness.err")"
}
kv() { # NS TIMEOUT OP...: each "SET k v" / "GET k" on one connection, the answers
	ip netns exec "$1" python3 - "${@:2}" <<'PY'
import socket, sys
s = socket.create_connection(("10.0.0.2", 7000), timeout=float(sys.argv[1]))
f = s.makefile("rwb")
for op in sys.argv[2:]:
    f.write((op + "\n").encode()); f.flush()
    line = f.readline().decode()
    if not line:
        sys.exit("connection closed")
    print(line.rstrip("\n"))
PY
}
run_state() { q "$1" query-status | jq_ 'd["status"]'; }
cut() {
	ip -n $NSP link set vp-$$ down
	ip -n $NSS link set vs-$$ down
}
uncut() {
	ip -n $NSP link set vp-$$ up
	ip -n $NSS link set vs-$$ up
}
# stopped NAME SIDE: SIDE's guest is stopped (fenced) and answers nobody
fenced() {
	local sock=$TMP/$1-$2.sock ns
	[ "$2" = pri ] && ns=$NSP || ns=$NSS
	wait_state "$sock" fenced 20 ||
		fail "$1: the $2 side is not fenced: $(q "$sock" query-colo-status)"
	[ "$(run_state "$sock")" != running ] || fail "$1: the $2 side's guest runs"
	! kv $ns 3 "GET key1" >/dev/null 2>&1 || fail "$1: the $2 side's guest answers a client"
}

sets=() gets=() want=()
for i in $(seq 10); do
	sets+=("SET key$i v$i-$RANDOM")
	gets+=("GET key$i")
	want+=("${sets[-1]##* }")
done
start_witness

# ---- 1. the link is cut, the witness up --------------------------------------
net_pair cut "app=kv"
"$CTL" --qmp "$TMP/cut-sec.sock" --watch >"$TMP/cut-sec.ev" 2>"$TMP/cut-watch.log" &
WATCH_PID=$!
on_exit "kill $WATCH_PID 2>/dev/null"
sleep 0.5
[ "$(kv $NSP 20 "${sets[@]}" | sort -u)" = OK ] || fail "SETs through the pair"
cut
wait_state "$TMP/cut-pri.sock" unprotected 20 ||
	fail "the primary does not run on: $(q "$TMP/cut-pri.sock" query-colo-status)"
fenced cut sec
[ "$(run_state "$TMP/cut-pri.sock")" = running ] || fail "the primary's guest does not run"
[ "$(kv $NSP 20 "GET key10" "SET after cut")" = "$(printf '%s\nOK' "${want[9]}")" ] ||
	fail "the primary's guest does not serve on"
grep -q 'the witness at tcp:192.168.78.1:[0-9]* granted it' "$TMP/cut-pri.err" ||
	fail "the primary's log does not say it was granted: $(tail -5 "$TMP/cut-pri.err")"
q "$TMP/cut-sec.sock" query-colo-status | grep -q 'the primary holds this pair.s grant' ||
	fail "the secondary's reason: $(q "$TMP/cut-sec.sock" query-colo-status)"
grep -q 'announced' "$TMP/cut-sec.err" && fail "the fenced secondary announced its MACs"
grep '"COLO_EXIT"' "$TMP/cut-sec.ev" | grep -q '"fenced": true' ||
	fail "no COLO_EXIT with fenced from the secondary: $(cat "$TMP/cut-sec.ev" "$TMP/cut-watch.log"; ps -p $WATCH_PID)"
grep -q 'refused the secondary' "$TMP/witness.err" || fail "the witness's log: $(cat "$TMP/witness.err")"
note "secondary: $(q "$TMP/cut-sec.sock" query-colo-status | jq_ 'd["reason"]')"
quit_split "$TMP/cut-pri" "$TMP/cut-sec"
uncut

# ---- 2. the link is cut, the witness answers garbage -------------------------
kill $WIT_PID
wait_exit $WIT_PID 10 || fail "the witness does not stop on SIGTERM"
grep -q 'witness: stopping' "$TMP/witness.err" || fail "the witness's log on SIGTERM"
python3 - $wport >"$TMP/junk.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"GRANTED " * 64); c.close()
PY
on_exit "kill $! 2>/dev/null"
net_pair junk "app=kv"
[ "$(kv $NSP 20 "${sets[@]}" | sort -u)" = OK ] || fail "SETs through the pair"
cut
fenced junk pri
fenced junk sec
grep -q 'gave no verdict\|cannot reach the witness' "$TMP/junk-pri.err" ||
	fail "the primary's log: $(tail -5 "$TMP/junk-pri.err")"
note "primary: $(q "$TMP/junk-pri.sock" query-colo-status | jq_ 'd["reason"]')"
quit_split "$TMP/junk-pri" "$TMP/junk-sec"
uncut
echo PASS
