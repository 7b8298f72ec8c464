#!/usr/bin/env python3
"""train_tiny_data.py - a tiny, obviously learnable labelled image set for the
training tests: grey 16-bit PNGs of a noisy "chest" with a bright crescent of
"free air" under one hemidiaphragm in positives only, and a manifest CSV with
path, label and split columns (paths relative to the manifest).

usage: train_tiny_data.py OUT_DIR [--train N] [--val N] [--size PX] [--seed S]
"""
import argparse
import csv
import os

import numpy as np
from PIL import Image


def make_image(rng, size, positive):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = 0.25 + 0.15 * rng.random() * xx + 0.1 * yy
    # two dark "lungs"
    for cx in (0.3, 0.7):
        lung = ((xx - cx) / 0.17) ** 2 + ((yy - 0.45) / 0.3) ** 2 < 1
        img[lung] -= 0.12
    # diaphragm domes: bright below
    dome = yy > 0.72 + 0.05 * np.cos((xx - 0.5) * 6)
    img[dome] += 0.3
    if positive:
        cx = 0.3 if rng.random() < 0.5 else 0.7
        cx += rng.uniform(-0.05, 0.05)
        cy = 0.66 + rng.uniform(-0.03, 0.03)
        crescent = (((xx - cx) / 0.16) ** 2 + ((yy - cy) / 0.05) ** 2 < 1) & ~dome
        img[crescent] += 0.2
    img += rng.normal(0, 0.06, img.shape)
    return np.clip(img * 65535, 0, 65535).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=64)
    ap.add_argument("--val", type=int, default=32)
    ap.add_argument("--size", type=int, default=72)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(os.path.join(a.out, "img"), exist_ok=True)
    rows = []
    for split, n in (("train", a.train), ("val", a.val)):
        for i in range(n):
            label = i % 2
            name = f"img/{split}_{i:04d}.png"
            Image.fromarray(make_image(rng, a.size, label)).save(os.path.join(a.out, name))
            rows.append((name, label, split))
    with open(os.path.join(a.out, "manifest.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "label", "split"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
