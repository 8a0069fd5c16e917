#!/bin/bash
# The agent of e2e.colo-hostkill inside one host VM (tests/hostvm start ...
# -- bash hostkill-agent.bash DIR IP [CLIENT_IP]): not a test itself. DIR is
# in the host VM's control share (uncached: the test sees writes at once).
# Sets up this host's network: br0 holds eth0 (the link to the other host
# VM) and tap0 (its guest's NIC), with IP (the replication channel's
# address) and CLIENT_IP (the client's, on the host that runs it) on br0.
# Then it runs what the test asks, one shell command file at a time:
# DIR/cmd.N (written by the test) -> DIR/out.N (its output) and DIR/rc.N
# (its status, written last). QMP sockets stay in this VM's /run/hk.
set -u
DIR=$1 IP=$2 CLIENT_IP=${3:-}
mkdir -p "$DIR"
fail() { echo "agent: $*" >"$DIR/ready.err"; exit 1; }
ip addr flush dev eth0
ip link add br0 type bridge || fail "no bridge"
# (no STP delay: frames flow at once)
echo 0 >/sys/class/net/br0/bridge/forward_delay 2>/dev/null || true
ip link set eth0 master br0 || fail "eth0 into br0"
ip tuntap add tap0 mode tap || fail "no tap"
ip link set tap0 master br0 || fail "tap0 into br0"
# br0's MAC from its address, not from its ports' (a bridge takes the
# lowest, and a tap's is random): a host that replaces a dead one with the
# same address answers at the same MAC, whatever the peer's ARP cache holds.
ip link set br0 address "$(printf '02:00:%02x:%02x:%02x:%02x' $(echo "${IP%/*}" | tr . ' '))" ||
	fail "br0's MAC"
ip link set eth0 up && ip link set tap0 up && ip link set br0 up || fail "links up"
ip addr add "$IP" dev br0 || fail "address $IP"
[ -z "$CLIENT_IP" ] || ip addr add "$CLIENT_IP" dev br0 || fail "address $CLIENT_IP"
ip link set lo up
# CHAN=rdma (the environment): Soft-RoCE on br0, so the channel's pages go
# as RDMA WRITEs in UDP over the link
if [ "${CHAN:-tcp}" = rdma ]; then
	modprobe rdma_rxe || fail "no rdma_rxe kernel module"
	rdma link add rxe0 type rxe netdev br0 || fail "cannot add rxe0 on br0"
fi
mkdir -p /run/hk
echo ready >"$DIR/ready"
for ((n = 1; ; n++)); do
	while [ ! -e "$DIR/cmd.$n" ]; do sleep 0.05; done
	bash "$DIR/cmd.$n" >"$DIR/out.$n" 2>&1
	echo $? >"$DIR/rc.$n.tmp"
	mv "$DIR/rc.$n.tmp" "$DIR/rc.$n"
done
