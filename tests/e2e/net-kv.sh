#!/bin/bash
# app=kv on colovm: 10,000 mixed SET/GET/INCR over 4 connections, every
# answer checked against a model (tests/guest/tools/kvclient.py); then 64
# clients at once sharing counters (INCR totals must add up) and protocol
# errors answered without dropping the connection.
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/tools/netenv.sh"

need_kvm
need_netns
net_setup

vm_start kv colovm "app=kv"
nsx python3 "$TOOLS/kvclient.py" --ops 10000 --conns 4 || fail "kv model check"
nsx python3 - <<'PY' || fail "kv with 64 clients"
import socket
conns = [socket.create_connection(("10.0.0.2", 7000), timeout=10) for _ in range(64)]
files = [s.makefile("rwb") for s in conns]
for rnd in range(20):
    for f in files:
        f.write(b"INCR shared\n")
        f.flush()
    for f in files:
        int(f.readline())
f = files[0]
f.write(b"GET shared\nBOGUS\nGET\nSET onlykey\nGET missing\nSET a b c\nGET a\nINCR a\n")
f.flush()
got = [f.readline().decode().rstrip("\n") for _ in range(8)]
want = [str(64 * 20), "ERR unknown command", "ERR unknown command", "ERR syntax", "NIL", "OK",
        "b c", "ERR not an integer"]
assert got == want, got
for s in conns:
    s.close()
print("64 clients: shared counter", want[0])
PY
vm_alive kv || fail "colovm died"
echo "PASS"
