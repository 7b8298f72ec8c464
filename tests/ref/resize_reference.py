#!/usr/bin/env python3
"""resize_reference.py - independent reference for freeair's resize (PIL).

Resizes raw little-endian uint16 images with PIL's Image.resize (mode "I",
reducing_gap=None, box=None), clamps to 0..65535 and writes raw uint16.

usage: resize_reference.py JOBS
  JOBS: text file, one job per line: IN W H OUT_W OUT_H FILTER OUT
  FILTER: box | bilinear | lanczos
Exit status 0 when every job was written.
"""
import sys

import numpy as np
from PIL import Image

FILTERS = {"box": Image.BOX, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}


def run(line):
    src, w, h, ow, oh, flt, dst = line.split()
    w, h, ow, oh = int(w), int(h), int(ow), int(oh)
    a = np.fromfile(src, dtype="<u2")
    if a.size != w * h:
        raise SystemExit(f"{src}: {a.size} values, expected {w}x{h}")
    im = Image.fromarray(a.reshape(h, w).astype(np.int32), mode="I")
    out = im.resize((ow, oh), resample=FILTERS[flt], reducing_gap=None)
    r = np.asarray(out, dtype=np.int64)
    if r.shape != (oh, ow):
        raise SystemExit(f"{src}: PIL gave shape {r.shape}, expected {(oh, ow)}")
    np.clip(r, 0, 65535).astype("<u2").tofile(dst)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        for line in f:
            if line.strip():
                run(line)


if __name__ == "__main__":
    main()
