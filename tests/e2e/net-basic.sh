#!/bin/bash
# The test guest's network stack on colovm over a tap in a network namespace
# (host 10.0.0.1, guest 10.0.0.2): ping, UDP echo with nc -u, TCP echo with
# nc (a line, then 1 MB checked by checksum, then 64 connections at once),
# out-of-order segments from a raw client (kept, duplicate-ACKed, reassembled),
# and TCP retransmission: the tap goes down for 1.5 s in the middle of a
# continuous echo stream, which must still come back intact.
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

note "tcp-echo: segments out of order (raw client: C, B, then A)"
mac=$(grep -o 'mac=[0-9a-f:]*' "$TMP/tcp.out" | head -1 | cut -d= -f2)
nsx timeout 30 python3 "$TOOLS/tcpreorder.py" tap0 "$mac" || fail "out-of-order reassembly"

note "tcp-echo: a continuous stream with the tap down for 1.5 s in the middle (retransmission)"
# The client streams random data without pause until told to stop, so the
# guest is echoing (and has unacknowledged data in flight) whenever the link
# drops; the echo it sent into the dead link must be retransmitted, and the
# stream must come back byte for byte. Up to three outages are tried: one that
# happens to fall between two of the guest's sends proves nothing.
nsx timeout 90 python3 - "$TMP/stream" <<'PY' &
import hashlib, os, socket, sys, threading
base = sys.argv[1]
block = os.urandom(1 << 20)
s = socket.create_connection(('10.0.0.2', 7))
sent, got = hashlib.sha256(), hashlib.sha256()
nsent = ngot = 0
def reader():
    global ngot
    while True:
        b = s.recv(65536)
        if not b:
            break
        got.update(b)
        ngot += len(b)
t = threading.Thread(target=reader)
t.start()
open(base + '.started', 'w').close()
off = 0
while not os.path.exists(base + '.stop'):
    chunk = block[off:off + 65536] + block[:max(0, off + 65536 - len(block))]
    s.sendall(chunk)
    sent.update(chunk)
    nsent += len(chunk)
    off = (off + 65536 + 4099) % len(block)
s.shutdown(socket.SHUT_WR)
t.join(60)
with open(base + '.result', 'w') as f:
    f.write('%d %s %d %s\n' % (nsent, sent.hexdigest(), ngot, got.hexdigest()))
PY
nc_pid=$!
for _ in $(seq 100); do [ -e "$TMP/stream.started" ] && break; sleep 0.05; done
[ -e "$TMP/stream.started" ] || fail "echo client did not start"
retrans=0
for outage in 1 2 3; do
	sleep 0.5
	nsx ip link set tap0 down
	sleep 1.5
	nsx ip link set tap0 up
	# the guest prints its counters once a second
	sleep 1.2
	retrans=$(grep -o 'tcp_retrans=[0-9]*' "$TMP/tcp.out" | tail -1 | cut -d= -f2)
	note "outage $outage: guest TCP retransmissions so far: ${retrans:-none}"
	[ "${retrans:-0}" -gt 0 ] && break
done
note "stopping the stream"; touch "$TMP/stream.stop"
wait $nc_pid || true
[ -s "$TMP/stream.result" ] || fail "echo client did not finish"
read -r nsent hsent ngot hgot <"$TMP/stream.result"
note "streamed $nsent bytes, $ngot came back"
[ "$nsent" -gt 0 ] && [ "$nsent" = "$ngot" ] && [ "$hsent" = "$hgot" ] ||
	fail "echo across link outages: sent $nsent bytes, got $ngot back, checksums ${hsent:0:12} vs ${hgot:0:12}"
vm_alive tcp || fail "colovm died"
[ "${retrans:-0}" -gt 0 ] || fail "three link outages caused no guest retransmission"
vm_stop tcp
echo "PASS"
