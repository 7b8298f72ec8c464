"""safetensors_load.py - read a freeair checkpoint (F32/I64 safetensors)
into {name: tuple of values} and its metadata, with the standard library
only (the safetensors package is not in Debian). Used by the MPI tests."""
import json
import struct


def load(path):
    d = open(path, "rb").read()
    n = struct.unpack("<Q", d[:8])[0]
    h = json.loads(d[8:8 + n])
    m = h.pop("__metadata__")
    out = {}
    for k, t in h.items():
        b = d[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]
        fmt = {"F32": "f", "I64": "q"}[t["dtype"]]
        out[k] = struct.unpack("<%d%s" % (len(b) // struct.calcsize(fmt), fmt), b)
    return out, m
