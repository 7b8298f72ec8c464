#!/usr/bin/env python3
"""Writes a synthetic predictions CSV for the eval/report tests.

Shaped like the study: validation and test splits by patient, some patients
with repeat images, two or more models whose scores are correlated (same
images), subgroup columns unit (fixed/portable) and manufacturer, and scores
rounded so that ties occur. Deterministic for a given seed.

usage: stats_synth_predictions.py OUT.csv [--seed N] [--models a,b] [--n-test N]
       [--n-val N] [--no-split] [--round DIGITS] [--val-out VAL.csv]
"""
import argparse
import csv
import math
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--models", default="densenet161,resnext101")
    ap.add_argument("--n-test", type=int, default=240)
    ap.add_argument("--n-val", type=int, default=90)
    ap.add_argument("--no-split", action="store_true",
                    help="no split column; validation rows go to --val-out if given")
    ap.add_argument("--val-out", default=None)
    ap.add_argument("--round", type=int, default=2, help="decimals (ties)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    models = a.models.split(",")
    rows = []
    pid = 0
    for split, n in (("val", a.n_val), ("test", a.n_test)):
        i = 0
        while i < n:
            pid += 1
            # About one patient in six has a repeat image.
            k = 2 if rng.random() < 0.17 else 1
            label = 1 if rng.random() < 0.5 else 0
            for _ in range(k):
                if i >= n:
                    break
                unit = "fixed" if split == "val" or rng.random() < 0.25 else "portable"
                mfr = "Philips" if split == "val" or rng.random() < 0.6 else rng.choice(
                    ["Fujifilm", "Siemens", "Kodak"])
                latent = rng.gauss(1.6 if label else 0.0, 1.0)
                rows.append(dict(id=f"img{len(rows):05d}", patient_id=f"P{pid:05d}", label=label,
                                 split=split, unit=unit, manufacturer=mfr, latent=latent))
                i += 1
    out_rows, val_rows = [], []
    for mi, m in enumerate(models):
        for r in rows:
            z = r["latent"] * (1.0 + 0.15 * mi) + rng.gauss(0, 0.6 + 0.2 * mi) - 0.8
            p = round(1.0 / (1.0 + math.exp(-z)), a.round)
            d = dict(model=m, id=r["id"], patient_id=r["patient_id"], label=r["label"], score=p,
                     split=r["split"], unit=r["unit"], manufacturer=r["manufacturer"],
                     site_note="note, with comma" if r["id"].endswith("7") else "")
            if a.no_split:
                del d["split"]
                (val_rows if r["split"] == "val" else out_rows).append(d)
            else:
                out_rows.append(d)
    cols = ["model", "id", "patient_id", "label", "score"] + ([] if a.no_split else ["split"]) + \
        ["unit", "manufacturer", "site_note"]
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(out_rows)
    if a.no_split and a.val_out:
        with open(a.val_out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows(val_rows)


if __name__ == "__main__":
    main()
