#!/usr/bin/env python3
"""Check an image written by app=blk: word i of sector s is mix64(s << 6 | i).

usage: blkcheck.py IMAGE MIB  -- also checks that the byte after MIB MiB is
untouched (zero).
"""
import struct
import sys

M = (1 << 64) - 1


def mix64(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M
    x ^= x >> 31
    return x


def main():
    path, mib = sys.argv[1], int(sys.argv[2])
    sectors = mib * 2048
    with open(path, "rb") as f:
        for s in range(sectors):
            words = struct.unpack("<64Q", f.read(512))
            for i, w in enumerate(words):
                if w != mix64(s << 6 | i):
                    print("blkcheck: sector %d word %d is %#x, expected %#x" % (s, i, w, mix64(s << 6 | i)))
                    return 1
        rest = f.read(512)
        if rest and any(rest):
            print("blkcheck: sector %d (past the test area) was written" % sectors)
            return 1
    print("blkcheck: %d sectors hold the pattern" % sectors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
