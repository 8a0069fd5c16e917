#!/usr/bin/env python3
"""A KV client that holds one connection across a pause of the VM (a
snapshot/restore, a migration): it SETs 200 keys and INCRs a counter 5
times, creates DIR/ready, waits for DIR/go, then on the same connection
asks (the first question sent while no VM may run: TCP retransmits it to
whichever guest runs next) for every key back, INCR once more (6) and a
new key. Exits non-zero with the reason on the first wrong answer or a
closed connection.

usage: kvhold.py DIR [TIMEOUT-SECONDS]   (server 10.0.0.2:7000)
"""
import os, socket, sys, time

d = sys.argv[1]
s = socket.create_connection(("10.0.0.2", 7000), timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 60)
f = s.makefile("rwb")


def ask(cmd):
    f.write((cmd + "\n").encode())
    f.flush()
    line = f.readline()
    if not line:
        sys.exit("connection closed on %r" % cmd)
    return line.decode().rstrip("\n")


for i in range(200):
    assert ask("SET key%d value-%d" % (i, i * 7)) == "OK"
for i in range(5):
    assert ask("INCR ctr") == str(i + 1)
open(d + "/ready", "w").close()
while not os.path.exists(d + "/go"):
    time.sleep(0.05)
t0 = time.time()
got = ask("GET key0")
assert got == "value-0", got
print("first answer after %.1f s" % (time.time() - t0))
for i in range(200):
    got = ask("GET key%d" % i)
    assert got == "value-%d" % (i * 7), (i, got)
got = ask("INCR ctr")
assert got == "6", got
assert ask("SET new 1") == "OK" and ask("GET new") == "1"
print("same connection: 200 keys back, INCR ctr = 6")
