#!/bin/bash
# The test guest's network stack on colovm over a tap in a network namespace
# (host 10.0.0.1, guest 10.0.0.2): ping, UDP echo with nc -u, TCP echo with
# nc (a line, then 1 MB checked by checksum, then 64 connections at once),
# and TCP retransmission: the tap goes down for 1.5 s in the middle of a
# 4 MB echo, which must still come back intact.
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/tools/netenv.sh"

need_kvm
need_netns
net_setup

note "udp-echo: ping -c 5 and nc -u"
vm_start udp colovm "app=udp-echo"
nsx ping -c 5 -i 0.2 -W 2 10.0.0.2 >"$TMP/ping.out" || { cat "$TMP/ping.out" >&2; fail "ping"; }
grep -q ' 0% packet loss' "$TMP/ping.out" || { cat "$TMP/ping.out" >&2; fail "ping lost packets"; }
got=$(echo "hello over udp" | nsx timeout 5 nc -u -w1 10.0.0.2 7 || true)
[ "$got" = "hello over udp" ] || fail "udp echo returned '$got'"
vm_stop udp

note "tcp-echo: a line, 1 MB, 64 connections at once"
vm_start tcp colovm "app=tcp-echo stats=1"
got=$(echo "hello over tcp" | nsx timeout 10 nc -N 10.0.0.2 7 || true)
[ "$got" = "hello over tcp" ] || fail "tcp echo returned '$got'"
tcp_echo_check 1000000
nsx python3 - <<'PY' || fail "64 concurrent connections"
import socket
conns = [socket.create_connection(("10.0.0.2", 7), timeout=10) for _ in range(64)]
for i, s in enumerate(conns):
    s.sendall(b"connection %d\n" % i * 100)
for i, s in enumerate(conns):
    want = b"connection %d\n" % i * 100
    got = b""
    while len(got) < len(want):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    assert got == want, "connection %d: %r" % (i, got[:40])
for s in conns:
    s.close()
print("64 connections echoed")
PY

note "tcp-echo: 4 MB with the tap down for 1.5 s in the middle (retransmission)"
head -c 4000000 /dev/urandom >"$TMP/big.in"
# The client paces its sending (64 KiB every 10 ms, about 0.7 s for 4 MB) and
# says when 512 KiB are out; the link goes down then, so the outage always
# falls in the middle of the transfer, with the guest's echo data in flight.
nsx timeout 60 python3 - "$TMP/big.in" "$TMP/big.out" "$TMP/big.started" <<'PY' &
import socket, sys, threading, time
data = open(sys.argv[1], 'rb').read()
s = socket.create_connection(('10.0.0.2', 7))
got = bytearray()
def reader():
    while len(got) < len(data):
        b = s.recv(65536)
        if not b:
            break
        got.extend(b)
t = threading.Thread(target=reader)
t.start()
for off in range(0, len(data), 65536):
    s.sendall(data[off:off + 65536])
    if off == 8 * 65536:
        open(sys.argv[3], 'w').close()
    time.sleep(0.01)
t.join(50)
s.close()
open(sys.argv[2], 'wb').write(got)
PY
nc_pid=$!
for _ in $(seq 100); do [ -e "$TMP/big.started" ] && break; sleep 0.05; done
[ -e "$TMP/big.started" ] || fail "echo client did not start"
nsx ip link set tap0 down
sleep 1.5
nsx ip link set tap0 up
wait $nc_pid || true
[ "$(sha256sum <"$TMP/big.in")" = "$(sha256sum <"$TMP/big.out")" ] ||
	fail "4 MB echo across a link outage: got $(stat -c %s "$TMP/big.out") bytes, checksum differs"
vm_alive tcp || fail "colovm died"
sleep 1.2
retrans=$(grep -o 'tcp_retrans=[0-9]*' "$TMP/tcp.out" | tail -1 | cut -d= -f2)
note "guest TCP retransmissions: ${retrans:-none}"
[ "${retrans:-0}" -gt 0 ] || fail "the outage caused no retransmission (transfer too fast?)"
vm_stop tcp
echo "PASS"
