#!/usr/bin/env python3
"""csv_reference.py - independent reference for freeair's CSV parser.

Reads CSV files with Python's csv module (utf-8-sig, newline='') and writes,
for each, a canonical dump: every non-empty row as its fields joined by 0x1F,
rows terminated by 0x1E, as raw UTF-8 bytes.

usage: csv_reference.py IN OUT [IN OUT ...]
"""
import csv
import sys


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        raise SystemExit(__doc__)
    for src, dst in zip(args[0::2], args[1::2]):
        with open(src, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, strict=True) if r]
        with open(dst, "wb") as out:
            for r in rows:
                out.write("\x1f".join(r).encode("utf-8") + b"\x1e")


if __name__ == "__main__":
    main()
