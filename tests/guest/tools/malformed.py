#!/usr/bin/env python3
"""Send misbehaving frames to the guest through a tap (AF_PACKET, raw).

usage: malformed.py IFNAME GUEST_MAC [COUNT]
Truncated frames, IPv4 headers with bad versions/lengths/checksums,
fragments, UDP/TCP/ICMP with lying length fields, TCP with bad data
offsets and odd flag sets, ARP with wrong sizes, jumbo-sized and random
bytes. Deterministic (seeded).
"""
import random
import socket
import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip(payload, proto=6, tot=None, ihl=5, ver=4, frag=0, good_csum=True, src="10.0.0.1"):
    tot = 20 + len(payload) if tot is None else tot
    h = struct.pack("!BBHHHBBH4s4s", ver << 4 | ihl, 0, tot & 0xFFFF, 1, frag, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton("10.0.0.2"))
    if good_csum:
        h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + b"\0" * max(0, ihl * 4 - 20) + payload


def main():
    ifname, mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    rng = random.Random(7)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    src = bytes.fromhex("020000000001")
    eth_ip = mac + src + b"\x08\x00"
    eth_arp = mac + src + b"\x08\x06"
    frames = [
        b"", b"\x00", mac, mac + src, mac + src + b"\x08",            # truncated Ethernet
        eth_ip, eth_ip + b"\x45", eth_ip + b"\x45" + b"\0" * 10,      # truncated IP header
        eth_ip + ip(b"", tot=0), eth_ip + ip(b"", tot=19), eth_ip + ip(b"x" * 10, tot=1500),
        eth_ip + ip(b"", ihl=4), eth_ip + ip(b"", ihl=15), eth_ip + ip(b"x" * 40, ihl=15),
        eth_ip + ip(b"", ver=6), eth_ip + ip(b"abcd", good_csum=False),
        eth_ip + ip(b"\x08\0\0\0" * 4, proto=1, frag=0x2000),       # fragment
        eth_ip + ip(b"\x08\0\0\0" * 4, proto=1, frag=0x0010),
        eth_ip + ip(b"\x08", proto=1), eth_ip + ip(b"\x08\0\xff\xff\0\0\0\0", proto=1),
        eth_ip + ip(struct.pack("!HHHH", 1, 7, 0, 0), proto=17),      # UDP length 0
        eth_ip + ip(struct.pack("!HHHH", 1, 7, 60000, 0), proto=17),  # UDP length too big
        eth_ip + ip(struct.pack("!HHHH", 1, 7, 9, 0) + b"x", proto=17),
        eth_ip + ip(b"\0" * 7, proto=17),
        eth_ip + ip(b"\0" * 19, proto=6),                             # short TCP
        eth_ip + ip(struct.pack("!HHIIBBHHH", 1, 7, 1, 0, 0xF0, 2, 100, 0, 0), proto=6),
        eth_ip + ip(struct.pack("!HHIIBBHHH", 1, 7, 1, 0, 0x10, 0xFF, 100, 0, 0), proto=6),
        eth_ip + ip(b"\0" * 40, proto=99),
        eth_arp, eth_arp + b"\0" * 10, eth_arp + struct.pack("!HHBBH", 1, 0x800, 6, 4, 1),
        eth_arp + struct.pack("!HHBBH", 1, 0x800, 255, 255, 1) + b"\0" * 20,
        b"\xff" * 6 + src + b"\x08\x06" + b"\xff" * 28,
        eth_ip + b"\xff" * 1500, eth_ip + bytes(1500),
    ]
    sent = 0
    for f in frames:
        try:
            s.send(f)
            sent += 1
        except OSError:
            pass
    for i in range(count):
        kind = i % 4
        n = rng.randrange(0, 1514)
        # (one call, not a Python call per byte: TCG in a host VM
        # makes every interpreted step slow)
        body = rng.randbytes(n)
        if kind == 0:
            f = body
        elif kind == 1:
            f = eth_ip + body
        elif kind == 2:
            proto = rng.choice([1, 6, 17])
            f = eth_ip + ip(body[:1400], proto=proto, tot=rng.choice([None, rng.randrange(65536)]))
        else:
            f = eth_arp + body[:60]
        try:
            s.send(f[:1514])
            sent += 1
        except OSError:
            pass
    print("malformed: sent %d frames" % sent)


if __name__ == "__main__":
    main()
