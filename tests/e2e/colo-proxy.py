#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A TCP proxy between a COLO primary and its secondary that breaks the
channel once, on demand, in the middle of a checkpoint (for
tests/e2e/colo-faults.sh and colo-disk-drills.sh; not a test itself).

    colo-proxy.py LISTEN_PORT TARGET_PORT ARMFILE

Every connection the primary opens to LISTEN_PORT (the control connection
first, then the bulk streams: transport/transport.h) is forwarded to
127.0.0.1:TARGET_PORT. Once ARMFILE exists, its one word says what to do:

  corrupt  flip one bit in the middle of the next bulk data the primary
           sends (a checkpoint's pages: the bulk MAC must catch it)
  cut      forward half of the next bulk data, then close every connection
           (a stream truncated mid-checkpoint, a peer gone)
  replay   after the next CheckpointRequest frame, send an earlier
           CheckpointRequest frame again, unchanged (its MAC is valid, its
           sequence number old)
  kill PID forward the next CheckpointRequest frame, then SIGKILL PID (the
           primary's colovm) and forward nothing more it sent: the
           secondary is inside a checkpoint that will never end, as when
           the primary's host dies with the rest of it in flight
  killack PID
           forward the secondary's next (first, not "applied") ack of a
           checkpoint to the primary, SIGKILL PID 20 ms later (the
           primary resumed and released what the checkpoint covers) and
           forward nothing more either way: the secondary is applying a
           checkpoint the primary heard of, and hears no more of it

and prints one line saying what it did (after "listening on PORT").
"""
import os
import signal
import socket
import struct
import sys
import threading
import time

HDR = 24  # magic, version, type, length, flags, seq (transport.h)
MAC = 16  # Poly1305 tag (wire version 2)
CHECKPOINT_REQUEST = 8
CHECKPOINT_ACK = 10

listen_port, target_port, armfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
socks = []
state = {"mode": None, "done": False, "old": None, "killed": False}


def mode():
    """The armed mode, or None (not yet armed, or already done)."""
    with lock:
        if state["done"]:
            return None
        if state["mode"] is None and os.path.exists(armfile):
            with open(armfile) as f:
                state["mode"] = f.read().strip()
        return state["mode"]


def done(what):
    with lock:
        state["done"] = True
    print(what, flush=True)


def close_all():
    with lock:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def read(src):
    """The next bytes from src; b"" at its end or on an error."""
    try:
        return src.recv(65536)
    except OSError:
        return b""


def frames(buf):
    """The whole frames at the start of buf (type, length, bytes each), and
    what is left after them."""
    out = []
    while len(buf) >= HDR:
        ftype, length = struct.unpack_from("<HI", buf, 6)
        n = HDR + length + MAC
        if len(buf) < n:
            break
        out.append((ftype, length, buf[:n]))
        buf = buf[n:]
    return out, buf


def batches(src):
    """The whole frames each read of a control connection completes, until
    its end; nothing once the primary was killed (what it had sent, or what
    it would have heard, is lost with its host)."""
    buf = b""
    while True:
        b = read(src)
        if not b:
            return
        if state["killed"]:
            continue
        whole, buf = frames(buf + b)
        yield whole


def forward_then_kill(dst, out, pid, what, wait=0.0):
    """Forward out, wait, then SIGKILL the primary (pid): from then on the
    proxy forwards nothing it sent or would have heard."""
    try:
        dst.sendall(out)
    except OSError:
        pass
    time.sleep(wait)
    state["killed"] = True
    os.kill(pid, signal.SIGKILL)
    done(what)


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def ack_fields(payload):
    """id, status (raw varint), applied of a CheckpointAck frame's Msg."""
    tag, i = varint(payload, 0)
    if tag != (CHECKPOINT_ACK << 3 | 2):
        return None
    n, i = varint(payload, i)
    body, i, f = payload[i:i + n], 0, {1: 0, 2: 0, 4: 0}
    while i < len(body):
        tag, i = varint(body, i)
        if tag & 7 == 0:
            f[tag >> 3], i = varint(body, i)
        elif tag & 7 == 2:
            n, i = varint(body, i)
            i += n
        else:
            return None
    return f[1], f[2], f[4]


def control_s2c(src, dst):
    """Secondary -> primary on the control connection, frame by frame."""
    for whole in batches(src):
        out = b""
        for ftype, length, frame in whole:
            out += frame
            m = mode() or ""
            if ftype != CHECKPOINT_ACK or not m.startswith("killack "):
                continue
            f = ack_fields(frame[HDR:HDR + length])
            if f is None or f[0] < 2 or f[1] or f[2]:
                continue
            forward_then_kill(dst, out, int(m.split()[1]),
                              "killack: CheckpointAck id %d forwarded, then the primary killed"
                              % f[0], wait=0.02)
            # (the secondary hears nothing more: no close until it has
            # had time to apply, then the end of the stream)
            time.sleep(0.3)
            close_all()
            while read(src):
                pass
            return
        try:
            dst.sendall(out)
        except OSError:
            break
    if not state["killed"]:
        close_all()


def plain(src, dst):
    while True:
        b = read(src)
        if not b:
            break
        try:
            dst.sendall(b)
        except OSError:
            break
    if not state["killed"]:
        close_all()  # (after a kill, the control thread closes: below)


def bulk_c2s(src, dst):
    """Primary -> secondary on a bulk stream."""
    while True:
        b = bytearray(read(src))
        if not b:
            break
        m = mode() if len(b) >= 1024 else None
        if state["killed"]:
            continue  # what a dead primary had sent: lost with its host
        try:
            if m == "corrupt":
                b[len(b) // 2] ^= 0x20
                dst.sendall(b)
                done("corrupt: flipped a bit in %d bytes of bulk data" % len(b))
                continue
            if m == "cut":
                dst.sendall(b[: len(b) // 2])
                # The checkpoint's request went out on the control
                # connection before these pages: let it through and be read
                # (a close with unread bytes is a reset, which drops them),
                # so the secondary is inside the checkpoint when all goes.
                time.sleep(0.3)
                done("cut: %d of %d bytes of bulk data forwarded, then every "
                     "connection closed" % (len(b) // 2, len(b)))
                break
            dst.sendall(b)
        except OSError:
            break
    if not state["killed"]:
        close_all()


def control_c2s(src, dst):
    """Primary -> secondary on the control connection, frame by frame."""
    for whole in batches(src):
        out = b""
        for ftype, length, frame in whole:
            out += frame
            if ftype != CHECKPOINT_REQUEST:
                continue
            m = mode() or ""
            if m.startswith("kill "):
                forward_then_kill(dst, out, int(m.split()[1]),
                                  "kill: CheckpointRequest seq %d forwarded, then the primary "
                                  "killed" % struct.unpack_from("<Q", frame, 16)[0])
                # the secondary reads the request before the end of the
                # stream reaches it: nothing is closed towards it until
                # then (the other threads leave the closing to this one,
                # whatever the dead primary's sockets do)
                while read(src):
                    pass
                time.sleep(0.3)
                close_all()
                return
            if m == "replay" and state["old"] is not None:
                out += state["old"]
                seq = struct.unpack_from("<Q", state["old"], 16)[0]
                now = struct.unpack_from("<Q", frame, 16)[0]
                done("replay: CheckpointRequest frame seq %d sent again after seq %d"
                     % (seq, now))
            elif state["old"] is None:
                state["old"] = frame
        try:
            dst.sendall(out)
        except OSError:
            break
    if not state["killed"]:
        close_all()  # (after a killack, its thread closes)


def main():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", listen_port))
    ls.listen(8)
    print("listening on %d" % listen_port, flush=True)
    first = True
    while True:
        c, _ = ls.accept()
        t = socket.create_connection(("127.0.0.1", target_port))
        for s in (c, t):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with lock:
            socks.extend((c, t))
        up, down = (control_c2s, control_s2c) if first else (bulk_c2s, plain)
        first = False
        threading.Thread(target=up, args=(c, t), daemon=True).start()
        threading.Thread(target=down, args=(t, c), daemon=True).start()


main()
