#!/usr/bin/env python3
"""Client for the test guest's app=kv (SET/GET/INCR line protocol).

check mode (default): OPS mixed SET/GET/INCR over CONNS connections, each
answer compared with a local model; exits 1 on the first mismatch. With
--until FILE it goes on (the same connections) past OPS until FILE exists;
--progress FILE gets the number of ops answered so far; --rate caps the ops
per second (0: as fast as answers come); --prefix keeps the
keys of clients that run side by side apart (each models only its own).
bench mode (--bench SECONDS): pipelined GET/SET/INCR, DEPTH requests per
write per connection; prints "kv: ops=N seconds=S ops_per_s=R".
"""
import argparse
import os
import random
import selectors
import socket
import sys
import time


def readline(sock, buf):
    while b"\n" not in buf[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the guest")
        buf[0] += chunk
    line, _, rest = buf[0].partition(b"\n")
    buf[0] = rest
    return line.decode()


def check(args):
    rng = random.Random(args.seed)
    model = {}
    conns = [socket.create_connection((args.host, args.port), timeout=args.timeout)
             for _ in range(args.conns)]
    bufs = [[b""] for _ in conns]
    keys = ["%s%d" % (args.prefix, i) for i in range(args.keys)]
    op, longest, last = 0, 0.0, time.monotonic()
    while op < args.ops or (args.until and not os.path.exists(args.until)):
        i = op % len(conns)
        s, b = conns[i], bufs[i]
        k = rng.choice(keys)
        r = rng.random()
        if r < 0.35:
            v = "v%d %s" % (rng.randrange(1 << 30), "x" * rng.randrange(0, 40))
            cmd, want = "SET %s %s" % (k, v), "OK"
            model[k] = v
        elif r < 0.7:
            cmd, want = "GET %s" % k, model.get(k, "NIL")
        else:
            cur = model.get(k, "0")
            try:
                want = str(int(cur) + 1)
                model[k] = want
            except ValueError:
                want = "ERR not an integer"
            cmd = "INCR %s" % k
        sent = time.monotonic()
        try:
            s.sendall((cmd + "\n").encode())
            got = readline(s, b)
        except (OSError, EOFError) as e:
            try:
                where = "local port %d" % s.getsockname()[1]
            except OSError:
                where = "closed"
            print("kv: op %d on connection %d (%s): %r: %s after %.1f s"
                  % (op, i, where, cmd, e, time.monotonic() - sent))
            return 1
        if got != want:
            print("kv: op %d on connection %d: %r answered %r, expected %r" % (op, i, cmd, got, want))
            return 1
        op += 1
        now = time.monotonic()
        longest, last = max(longest, now - last), now
        if args.rate > 0:
            time.sleep(max(0.0, 1.0 / args.rate - (time.monotonic() - now)))
        if args.progress and op % 20 == 0:
            with open(args.progress + ".tmp", "w") as f:
                f.write("%d\n" % op)
            os.replace(args.progress + ".tmp", args.progress)
    for s in conns:
        s.close()
    print("kv: %d ops over %d connections checked, %d keys, longest wait %.2f s"
          % (op, args.conns, len(model), longest))
    return 0


def bench(args):
    rng = random.Random(args.seed)
    conns = []
    for _ in range(args.conns):
        s = socket.create_connection((args.host, args.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(s)
    batch = []
    for _ in range(args.depth):
        k = "k%d" % rng.randrange(args.keys)
        batch.append(rng.choice(["GET %s" % k, "SET %s %d" % (k, rng.randrange(1000)), "INCR c%s" % k]))
    payload = ("\n".join(batch) + "\n").encode()
    sel = selectors.DefaultSelector()
    pending = {}
    for s in conns:
        s.sendall(payload)
        pending[s] = args.depth
        sel.register(s, selectors.EVENT_READ)
    ops, t0 = 0, time.monotonic()
    deadline = t0 + args.bench
    while True:
        for key, _ in sel.select(timeout=5):
            s = key.fileobj
            data = s.recv(1 << 20)
            if not data:
                raise EOFError("connection closed by the guest")
            n = data.count(b"\n")
            pending[s] -= n
            ops += n
            if pending[s] <= 0 and time.monotonic() < deadline:
                s.sendall(payload)
                pending[s] += args.depth
        if all(p <= 0 for p in pending.values()):
            break
    t = time.monotonic() - t0
    print("kv: ops=%d seconds=%.2f ops_per_s=%d" % (ops, t, ops / t))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="10.0.0.2")
    p.add_argument("--port", type=int, default=7000)
    p.add_argument("--ops", type=int, default=10000)
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--keys", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bench", type=float, default=0)
    p.add_argument("--depth", type=int, default=64)
    p.add_argument("--until", help="check mode: go on until this file exists")
    p.add_argument("--progress", help="check mode: write the ops answered here")
    p.add_argument("--prefix", default="k", help="key names (clients side by side)")
    p.add_argument("--timeout", type=float, default=10, help="socket timeout (s)")
    p.add_argument("--rate", type=float, default=0, help="check mode: at most this many ops/s")
    args = p.parse_args()
    try:
        return bench(args) if args.bench else check(args)
    except (OSError, EOFError) as e:
        print("kv: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
