#!/bin/bash
# Link cut between two network namespaces: a TCP channel (heartbeats + bulk
# both ways) runs across a veth pair, the link is cut (ip link set down, then
# the veth is deleted) and both ends must report an error within the timeout.
: "${COLOVM:=unused}" "${TESTGUEST:=unused}"
. "$(dirname "$0")/lib.sh"
need_netns
CONF=$BUILD/tests/unit/transport/transport_conformance
[ -x "$CONF" ] || fail "$CONF not built"

A=ctpA$$ B=ctpB$$
ip netns add $A && on_exit ip netns del $A
ip netns add $B && on_exit ip netns del $B
ip link add tpa$$ netns $A type veth peer name tpb$$ netns $B
ip -n $A addr add 10.77.0.1/24 dev tpa$$
ip -n $B addr add 10.77.0.2/24 dev tpb$$
ip -n $A link set tpa$$ up
ip -n $B link set tpb$$ up
head -c32 /dev/urandom >$TMP/key

note "server in $A (10.77.0.1:7401), client in $B; timeout 2000 ms"
ip netns exec $A timeout 30 "$CONF" serve tcp:10.77.0.1:7401 $TMP/key >$TMP/srv.log 2>&1 &
srv=$!
sleep 0.5
ip netns exec $B timeout 30 "$CONF" connect tcp:10.77.0.1:7401 $TMP/key >$TMP/cli.log 2>&1 &
cli=$!
wait_for_line $TMP/cli.log "connected" 10 || { cat $TMP/*.log; fail "no connection"; }
sleep 1
note "cutting the link"
t0=$(date +%s%N)
ip -n $A link set tpa$$ down
ip -n $A link del tpa$$
wait $srv || true
wait $cli || true
ms=$((($(date +%s%N) - t0) / 1000000))
cat $TMP/srv.log $TMP/cli.log
grep -q "serve: error" $TMP/srv.log || fail "server saw no error"
grep -q "connect: error" $TMP/cli.log || fail "client saw no error"
[ $ms -lt 6000 ] || fail "errors took $ms ms (timeout 2000 ms)"
echo "transport-netns: both sides failed cleanly $ms ms after the cut"
