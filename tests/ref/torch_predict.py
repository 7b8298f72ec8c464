#!/usr/bin/env python3
"""torch_predict.py make OUTDIR ARCH SIZE [--weights-dtype F32|BF16] - write a
random one-output torchvision model (weights.safetensors, BN statistics made
non-trivial as in torch_parity.py) and test images into OUTDIR:
good8_*.png (8-bit grey), good16_*.png (16-bit grey), rgb.png (colour),
wrong_size.png, not_png.png (a JPEG), truncated.png; and expected.csv with
the probability torchvision gives each good image, preprocessed
independently with PIL + numpy (value / 255 or / 65535, three channels,
ImageNet mean/std).

torch_predict.py compare EXPECTED.csv GOT.csv TOL - every row of EXPECTED must
appear in GOT (same path order) with |p - p_ref| <= TOL; exit 1 otherwise.
"""
import csv
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_parity  # noqa: E402  (same directory)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def reference_tensor(path):
    im = Image.open(path)
    arr = np.array(im)
    if im.mode in ("I;16", "I;16B", "I"):
        x = arr.astype(np.float64) / 65535.0
    elif im.mode == "L":
        x = arr.astype(np.float64) / 255.0
    else:  # colour: ITU-R 601 luma as PIL's convert("L") would give, scaled
        x = np.array(im.convert("L")).astype(np.float64) / 255.0
    x = x.astype(np.float32)
    x = np.stack([(x - MEAN[c]) / STD[c] for c in range(3)])
    return torch.from_numpy(x.astype(np.float32))


def make(outdir, arch, size, wdtype):
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.manual_seed(5)
    gen = torch.Generator().manual_seed(6)
    os.makedirs(outdir, exist_ok=True)
    aux = arch == "inception_v3" and size >= 299
    net = torch_parity.build(arch, size, aux)
    torch_parity.randomise_bn(net, gen, torch.randn(4, 3, size, size, generator=gen))
    if wdtype != "F32":
        with torch.no_grad():
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.to(torch.bfloat16).to(torch.float32))
    torch_parity.save_safetensors(os.path.join(outdir, "weights.safetensors"), net.state_dict(),
                                  {"arch": arch, "transform_input": int(arch == "inception_v3")}, wdtype)
    rng = np.random.default_rng(7)
    good = []
    # Smooth random images (a radiograph is not white noise) with full range.
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(3):
        f = np.sin(6 * xx * (i + 1) + 3 * yy) * 0.4 + 0.5 + 0.1 * rng.standard_normal((size, size))
        f = np.clip(f, 0, 1)
        p8 = os.path.join(outdir, "good8_%d.png" % i)
        Image.fromarray((f * 255).round().astype(np.uint8), "L").save(p8)
        p16 = os.path.join(outdir, "good16_%d.png" % i)
        Image.fromarray((f[::-1] * 65535).round().astype(np.uint16)).save(p16)
        good += [p8, p16]
    rgb = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(outdir, "rgb.png"))
    good.append(os.path.join(outdir, "rgb.png"))
    Image.fromarray(np.zeros((size, size + 1), np.uint8), "L").save(os.path.join(outdir, "wrong_size.png"))
    Image.fromarray(np.zeros((size, size), np.uint8), "L").save(os.path.join(outdir, "not_png.png"), "JPEG")
    raw = open(good[0], "rb").read()
    open(os.path.join(outdir, "truncated.png"), "wb").write(raw[: len(raw) // 2])
    net.eval()
    with torch.no_grad():
        logits = net(torch.stack([reference_tensor(p) for p in good])).reshape(-1).double()
    prob = torch.sigmoid(logits)
    with open(os.path.join(outdir, "expected.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "probability"])
        for p, q in zip(good, prob.tolist()):
            w.writerow([p, "%.9g" % q])
    return 0


def compare(expected, got, tol):
    exp = list(csv.DictReader(open(expected)))
    rows = list(csv.DictReader(open(got)))
    if [r["path"] for r in rows] != [r["path"] for r in exp]:
        print("paths differ:\n  expected %s\n  got      %s" % ([r["path"] for r in exp], [r["path"] for r in rows]))
        return 1
    worst = 0.0
    for e, g in zip(exp, rows):
        d = abs(float(e["probability"]) - float(g["probability"]))
        worst = max(worst, d)
        print("%s %s torch %s diff %.2g" % (os.path.basename(e["path"]), g["probability"], e["probability"], d))
    print("worst |p - p_torch| = %.3g (tol %g)" % (worst, tol))
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "make":
        wd = sys.argv[sys.argv.index("--weights-dtype") + 1] if "--weights-dtype" in sys.argv else "F32"
        sys.exit(make(sys.argv[2], sys.argv[3], int(sys.argv[4]), wd))
    if len(sys.argv) == 5 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    print(__doc__)
    sys.exit(2)
