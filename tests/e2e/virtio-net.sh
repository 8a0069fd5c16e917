# virtio-net over a tap, inside a network namespace: the test guest's
# app=udp-echo and app=tcp-echo answer from 10.0.0.2; a 1 MiB TCP echo
# comes back intact; the MAC given with ,mac= is the guest's.
source "$(dirname "$0")/lib.sh"
need_kvm
need_netns
command -v python3 >/dev/null || skip "needs python3"

NS=colovm-vnet-$$
ip netns add $NS
on_exit "ip netns del $NS"
ip -n $NS link set lo up
ip -n $NS tuntap add dev vtap0 mode tap
ip -n $NS addr add 10.0.0.1/24 dev vtap0
ip -n $NS link set vtap0 up

start_guest() { # APP
	ip netns exec $NS timeout 60 "$COLOVM" run --kernel "$TESTGUEST" --cmdline "app=$1" \
		--serial "file:$TMP/console-$1" --net tap=vtap0,mac=52:54:00:00:be:ef 2>"$TMP/err-$1" &
	pid=$!
	on_exit "kill $pid 2>/dev/null"
	wait_for_line "$TMP/console-$1" "^net: up" 20 || { cat "$TMP/console-$1" "$TMP/err-$1"; fail "$1: guest network did not come up"; }
	grep -q "mac=52:54:00:00:be:ef" "$TMP/console-$1" || fail "$1: guest does not see the MAC from --net"
}
stop_guest() {
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	! grep -qE 'AddressSanitizer|runtime error|device needs reset' "$TMP/err-$1" || { cat "$TMP/err-$1"; fail "$1: device error"; }
}

start_guest udp-echo
ip netns exec $NS python3 - <<'PY' || fail "udp echo"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
for i in range(100):
    m = b"ping %d " % i + bytes(range(256)) * 5
    s.sendto(m, ("10.0.0.2", 7))
    d, a = s.recvfrom(4096)
    assert d == m, "datagram %d differs" % i
PY
stop_guest udp-echo
echo "ok: 100 UDP datagrams echoed"

start_guest tcp-echo
ip netns exec $NS python3 - <<'PY' || fail "tcp echo"
import os, socket, threading
s = socket.create_connection(("10.0.0.2", 7), timeout=10)
data = os.urandom(1 << 20); got = bytearray()
def rd():
    while len(got) < len(data):
        b = s.recv(65536)
        if not b: break
        got.extend(b)
t = threading.Thread(target=rd); t.start(); s.sendall(data); t.join(30)
assert bytes(got) == data, "echo differs (%d bytes back)" % len(got)
PY
stop_guest tcp-echo
echo "ok: 1 MiB TCP echo intact"
