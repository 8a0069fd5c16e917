#!/usr/bin/env python3
"""UDP echo rate against app=udp-echo: WINDOW datagrams in flight, SIZE bytes
each, for SECONDS; prints "udp: pps=N" (echoes received per second).

usage: udpbench.py [SECONDS] [WINDOW] [SIZE]  (host 10.0.0.2, port 7)
"""
import select
import socket
import sys
import time


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3
    window = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.connect(("10.0.0.2", 7))
    s.setblocking(False)
    msg = b"x" * size
    got, inflight = 0, 0
    t0 = time.monotonic()
    end = t0 + secs
    while True:
        now = time.monotonic()
        if now >= end:
            break
        while inflight < window:
            try:
                s.send(msg)
                inflight += 1
            except BlockingIOError:
                break
        r, _, _ = select.select([s], [], [], 0.05)
        if not r:
            inflight = 0  # lost: refill the window
            continue
        while True:
            try:
                s.recv(2048)
            except BlockingIOError:
                break
            got += 1
            inflight = max(0, inflight - 1)
    print("udp: pps=%d" % (got / (time.monotonic() - t0)))


if __name__ == "__main__":
    main()
