#!/usr/bin/env python3
"""gradcam_compare.py REFDIR OUTDIR LAYER METHOD - check one `freeair cam`
output folder against gradcam_reference.py's maps (exit 1 on mismatch).

Checks, for the single image the reference made:
  - maps/<stem>.npy (layer resolution, normalised) equals the reference map
    within 1e-4 (max abs);
  - the sidecar's layer shape, logit (1e-3 relative + 1e-3 absolute) and
    scale (1e-3 relative + 1e-6 absolute) agree;
  - maps/<stem>.png (16-bit, at the image's geometry) equals the reference map
    resized with torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False) within 1e-4 + half a 16-bit step;
  - the overlay is an 8-bit RGB PNG of the input's size.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def main():
    refdir, outdir, layer, method = sys.argv[1:5]
    ref = json.load(open(os.path.join(refdir, "ref.json")))
    want = np.load(os.path.join(refdir, "ref_%s_%s.npy" % (layer, method))).astype(np.float64)
    side = json.load(open(os.path.join(outdir, "maps", "input.json")))
    got = np.load(os.path.join(outdir, side["npy"]["file"])).astype(np.float64)
    tag = "%s %s %s" % (ref["arch"], layer, method)
    bad = []
    if got.shape != want.shape:
        bad.append("map shape %s, reference %s" % (got.shape, want.shape))
    else:
        d = float(np.abs(got - want).max())
        print("%s: max |map - reference| = %.3g (layer %s)" % (tag, d, "x".join(map(str, side["layer_shape"]))))
        if d > 1e-4:
            bad.append("map differs by %.3g" % d)
    if side["layer_shape"] != ref["layers"][layer]["shape"]:
        bad.append("layer shape %s, reference %s" % (side["layer_shape"], ref["layers"][layer]["shape"]))
    if abs(side["logit"] - ref["logit"]) > 1e-3 + 1e-3 * abs(ref["logit"]):
        bad.append("logit %r, reference %r" % (side["logit"], ref["logit"]))
    rs = ref["layers"][layer]["scale"][method]
    if abs(side["scale"] - rs) > 1e-6 + 1e-3 * abs(rs):
        bad.append("scale %r, reference %r" % (side["scale"], rs))
    png = np.asarray(Image.open(os.path.join(outdir, side["png16"]["file"]))).astype(np.float64) / 65535
    size = ref["size"]
    up = F.interpolate(torch.from_numpy(want)[None, None], size=(size, size), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    if png.shape != up.shape:
        bad.append("16-bit map is %s, expected %s" % (png.shape, up.shape))
    else:
        d = float(np.abs(png - up).max())
        print("%s: max |16-bit map - interpolate(reference)| = %.3g" % (tag, d))
        if d > 1e-4 + 0.5 / 65535:
            bad.append("16-bit map differs from F.interpolate by %.3g" % d)
    ov = Image.open(os.path.join(outdir, side["overlay"]))
    if ov.mode != "RGB" or ov.size != (size, size):
        bad.append("overlay is %s %s, expected RGB %dx%d" % (ov.mode, ov.size, size, size))
    for b in bad:
        print("FAIL %s: %s" % (tag, b))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
