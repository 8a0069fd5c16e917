#!/usr/bin/env python3
"""Out-of-order TCP segments to the guest's tcp-echo, from a raw socket.

usage: tcpreorder.py IFNAME GUEST_MAC

A hand-driven TCP client on AF_PACKET (source 10.0.0.3, a MAC of its own, so
the host's stack stays out of it): handshake, then three 300-byte segments
A, B, C sent in the order C, B, A. The guest must answer C and B each with
an immediate pure duplicate ACK for A's sequence number, then, when A fills
the hole, acknowledge all three at once and echo A+B+C in order — without
the client ever retransmitting B or C. Exit status 0 when all of that held;
otherwise a message says which step failed.
"""
import os
import socket
import struct
import sys
import time

from malformed import csum  # the Internet checksum, shared with the junk sender

ME_IP, GUEST_IP = "10.0.0.3", "10.0.0.2"
ME_MAC = bytes.fromhex("020000000003")
SPORT, DPORT = 40007, 7
SYN, RST, PSH, ACK = 0x02, 0x04, 0x08, 0x10


class Client:
    def __init__(self, ifname, guest_mac):
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        self.s.bind((ifname, 0))
        self.guest_mac = guest_mac

    def send(self, seq, ack, flags, data=b"", opts=b""):
        hl = 20 + len(opts)
        tcp = struct.pack("!HHIIBBHHH", SPORT, DPORT, seq, ack, (hl // 4) << 4, flags, 65535, 0,
                          0) + opts + data
        pseudo = socket.inet_aton(ME_IP) + socket.inet_aton(GUEST_IP) + struct.pack(
            "!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0,
                          socket.inet_aton(ME_IP), socket.inet_aton(GUEST_IP))
        iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
        self.s.send(self.guest_mac + ME_MAC + b"\x08\x00" + iph + tcp)

    def recv(self, timeout):
        """The next TCP segment from the guest to us: (seq, ack, flags, data) or None."""
        end = time.time() + timeout
        while time.time() < end:
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                f = self.s.recv(65536)
            except socket.timeout:
                return None
            if len(f) < 54 or f[0:6] != ME_MAC or f[23] != 6:
                continue
            ihl = (f[14] & 15) * 4
            tot = struct.unpack("!H", f[16:18])[0]
            t = f[14 + ihl:14 + tot]
            sp, dp, seq, ack, off, flags = struct.unpack("!HHIIBB", t[:14])
            if sp != DPORT or dp != SPORT:
                continue
            return seq, ack, flags, t[(off >> 4) * 4:]
        return None


def fail(msg):
    print("tcpreorder: FAIL: " + msg)
    sys.exit(1)


def main():
    c = Client(sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")))
    isn = 1000000
    c.send(isn, 0, SYN, opts=struct.pack("!BBH", 2, 4, 1460))
    r = c.recv(3)
    if not r or r[2] & (SYN | ACK) != SYN | ACK or r[1] != isn + 1:
        fail("no SYN-ACK for our SYN: %r" % (r,))
    g = r[0] + 1
    c.send(isn + 1, g, ACK)
    a, b, cc = os.urandom(300), os.urandom(300), os.urandom(300)
    base = isn + 1
    for name, off, data in (("C", 600, cc), ("B", 300, b)):
        c.send(base + off, g, ACK | PSH, data)
        r = c.recv(1)
        if not r:
            fail("no immediate ACK for out-of-order segment %s" % name)
        if r[1] != base or r[3]:
            fail("segment %s: want a pure duplicate ACK for %d, got ack=%d with %d bytes" %
                 (name, base, r[1], len(r[3])))
    c.send(base, g, ACK | PSH, a)
    echo, acked, deadline = b"", base, time.time() + 3
    while time.time() < deadline and (len(echo) < 900 or acked != base + 900):
        r = c.recv(max(0.01, deadline - time.time()))
        if not r:
            break
        seq, ack, flags, data = r
        if (ack - acked) & 0x80000000 == 0:
            acked = ack
        if data and seq == g + len(echo):
            echo += data
            c.send(base + 900, g + len(echo), ACK)
    if acked != base + 900:
        fail("after the hole was filled the guest acknowledged %d of 900 bytes" % (acked - base))
    if echo != a + b + cc:
        fail("echo of A+B+C differs: %d bytes back" % len(echo))
    c.send(base + 900, g + len(echo), RST | ACK)
    print("tcpreorder: C and B answered with duplicate ACKs, A filled the hole, "
          "900 bytes acknowledged at once and echoed in order")


if __name__ == "__main__":
    main()
