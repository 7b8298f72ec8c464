#!/usr/bin/env python3
"""safetensors_diff.py - compare the tensors of two safetensors files exactly
(same names, dtypes, shapes and bytes), independently of freeair's reader.
Optionally also require equal __metadata__ values for the given keys.

usage: safetensors_diff.py A B [--meta key1,key2] [--prefix-ignore optim.]
Exit 0 when equal, 1 with one line per difference otherwise.
"""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        tensors[name] = (t["dtype"], tuple(t["shape"]), body[b:e])
    return tensors, meta


def main():
    args = sys.argv[1:]
    meta_keys = []
    if "--meta" in args:
        i = args.index("--meta")
        meta_keys = [k for k in args[i + 1].split(",") if k]
        del args[i:i + 2]
    a_t, a_m = read(args[0])
    b_t, b_m = read(args[1])
    bad = []
    for name in sorted(set(a_t) | set(b_t)):
        if name not in a_t or name not in b_t:
            bad.append(f"{name}: only in {'A' if name in a_t else 'B'}")
        elif a_t[name] != b_t[name]:
            da, sa, xa = a_t[name]
            db, sb, xb = b_t[name]
            if (da, sa) != (db, sb):
                bad.append(f"{name}: {da}{list(sa)} vs {db}{list(sb)}")
            else:
                nd = sum(1 for i in range(0, len(xa), 4) if xa[i:i + 4] != xb[i:i + 4])
                bad.append(f"{name}: {nd} of {len(xa) // 4} values differ")
    for k in meta_keys:
        if a_m.get(k) != b_m.get(k):
            bad.append(f"metadata {k}: {a_m.get(k)!r} vs {b_m.get(k)!r}")
    for line in bad[:50]:
        print(line)
    if bad:
        print(f"{len(bad)} difference(s); {len(a_t)} tensors in A")
        return 1
    print(f"identical: {len(a_t)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
