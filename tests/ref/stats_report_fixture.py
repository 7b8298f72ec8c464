#!/usr/bin/env python3
"""Adds the optional report inputs to an evaluation run directory.

usage: stats_report_fixture.py PREDICTIONS.csv RUN_DIR [--cams N] [--not-synthetic]

Writes RUN_DIR/manifest.csv (every image of PREDICTIONS.csv, a train split
and some excluded files with reasons), RUN_DIR/cohort.json (synthetic, with
its generator), RUN_DIR/config.json and N small Grad-CAM-like PNGs in
RUN_DIR/cam with cam/index.csv captions. Also prints the expected flow and
split counts as JSON on stdout, for the test to compare with report.json.
"""
import argparse
import csv
import json
import math
import os
import random

from PIL import Image


def cam_png(path, seed, size=160):
    """A radiograph-like grey gradient with a red-yellow blob, as a CAM overlay."""
    rng = random.Random(seed)
    cx, cy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.25, 0.45) * size
    img = Image.new("RGB", (size, size))
    px = img.load()
    for y in range(size):
        for x in range(size):
            # Chest-like background: darker lungs either side of a bright mediastinum.
            g = 60 + 90 * math.exp(-((x - size / 2) / (size * 0.12)) ** 2) + 40 * (y / size)
            heat = math.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * (size * 0.09) ** 2)))
            r = min(255, int(g * (1 - heat) + 255 * heat))
            gg = min(255, int(g * (1 - heat) + 200 * heat * heat))
            b = min(255, int(g * (1 - heat)))
            px[x, y] = (r, gg, b)
    img.save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("predictions")
    ap.add_argument("run_dir")
    ap.add_argument("--cams", type=int, default=6)
    ap.add_argument("--not-synthetic", action="store_true")
    a = ap.parse_args()
    rng = random.Random(1)
    rows = list(csv.DictReader(open(a.predictions)))
    first_model = rows[0].get("model")
    images = [r for r in rows if r.get("model") == first_model]
    out = []
    for r in images:
        out.append(dict(path=f"dicom/{r['id']}.dcm", patient_id=r["patient_id"], label=r["label"],
                        split=r.get("split", "test"), unit=r.get("unit", ""),
                        manufacturer=r.get("manufacturer", ""), status="ok", reason=""))
    n_train = 40
    for i in range(n_train):
        out.append(dict(path=f"dicom/train{i}.dcm", patient_id=f"T{i:04d}", label=str(i % 2), split="train",
                        unit="fixed", manufacturer="Philips", status="ok", reason=""))
    # status/reason as `freeair scan` writes them: reason = "code: detail; ...".
    # The report groups by status and the first code.
    excl = [("excluded", "lateral_view: ViewPosition {}", 5), ("excluded", "for_processing: {}", 2),
            ("error", "unreadable: dicom/x{}.dcm: truncated pixel data", 1),
            ("excluded", "not_chest: BodyPartExamined ABDOMEN{}; lateral_view: LL", 3)]
    reasons, counts = [], []
    for status, reason, k in excl:
        reasons.append(f"{status}: {reason.split(':')[0]}")
        counts.append(k)
        for i in range(k):
            out.append(dict(path=f"dicom/x{len(out)}.dcm", patient_id=f"X{rng.randrange(10**6)}", label="",
                            split="", unit="", manufacturer="", status=status, reason=reason.format(i)))
    rng.shuffle(out)
    with open(os.path.join(a.run_dir, "manifest.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    with open(os.path.join(a.run_dir, "cohort.json"), "w") as f:
        json.dump({"synthetic": not a.not_synthetic, "generator": "freeair synth --preset tiny --seed 1",
                   "name": "Synthetic pneumoperitoneum cohort",
                   "description": "Test fixture: scores from a simulated two-site study."}, f, indent=2)
    with open(os.path.join(a.run_dir, "config.json"), "w") as f:
        json.dump({"architecture": "densenet161", "input_size": 224, "epochs": 3, "lr": 0.01,
                   "note": "<script>alert(1)</script> must be shown as text"}, f, indent=2)
    if a.cams:
        os.makedirs(os.path.join(a.run_dir, "cam"), exist_ok=True)
        with open(os.path.join(a.run_dir, "cam", "index.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["file", "caption"])
            for i in range(a.cams):
                name = f"cam_{i:02d}.png"
                cam_png(os.path.join(a.run_dir, "cam", name), i)
                kind = ["true positive", "false positive"][i % 2]
                w.writerow([name, f"{images[i]['id']}: {kind}"])
        # Not a PNG: must be left out, not break the page.
        with open(os.path.join(a.run_dir, "cam", "broken.png"), "wb") as f:
            f.write(b"not a png")
    splits = {}
    for r in out:
        if r["status"] != "ok":
            continue
        s = splits.setdefault(r["split"], {"images": 0, "patients": set(), "n_pos": 0, "n_neg": 0})
        s["images"] += 1
        s["patients"].add(r["patient_id"])
        s["n_pos" if r["label"] == "1" else "n_neg"] += 1
    expected = {
        "n_images": len(out), "n_included": sum(1 for r in out if r["status"] == "ok"),
        "excluded": dict(zip(reasons, counts)),
        "splits": {k: dict(v, patients=len(v["patients"])) for k, v in splits.items()},
        "cams": a.cams,
    }
    print(json.dumps(expected))


if __name__ == "__main__":
    main()
