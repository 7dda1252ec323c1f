#!/usr/bin/env python3
"""Convert an IDX image file (gzip, magic 2051) into .fvecs rows of raw pixel values: idx-to-fvecs.py IN OUT LIMIT"""
import gzip
import struct
import sys


def main():
    src, dst, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with gzip.open(src, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            sys.exit(f"{src}: not an IDX image file")
        dim = rows * cols
        count = min(count, limit)
        head = struct.pack("<i", dim)
        with open(dst, "wb") as out:
            for _ in range(count):
                pixels = f.read(dim)
                out.write(head + struct.pack(f"<{dim}f", *pixels))
    print(f"{dst}: {count} x {dim}")


if __name__ == "__main__":
    main()
