#!/usr/bin/env python3
"""gradcam_gallery.py - data and independent checks for
tests/integration/test_cam_gallery.sh.

  gradcam_gallery.py scores MANIFEST OUT.csv
      scored rows for `freeair eval` from a synthetic cohort's manifest: id =
      the manifest path, patient_id, label, split (val for the first third,
      test after), a deterministic score that mixes the label with noise (so
      every outcome occurs), unit and vendor.

  gradcam_gallery.py check-gallery RUN_DIR MANIFEST PER_CATEGORY
      checks RUN_DIR/cam against RUN_DIR/predictions.csv (freeair eval's):
      which cases were picked and in what order (recomputed here), file names,
      overlays (RGB, the radiograph's own size, pixels = 0.6 grey + 0.4 jet of
      the map, the map upsampled here with torch's F.interpolate), and the
      localisation numbers (recomputed from the .npy maps and the mask PNGs),
      and that RUN_DIR/report.json's gallery lists exactly the overlays.

  gradcam_gallery.py check-localisation CAM_DIR MANIFEST
      the localisation checks alone (single-image mode over a manifest).
"""
import csv
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

TOL = 0.02  # freeair cam's default --tolerance
ALPHA = 0.4  # default --alpha
CATS = ["TP", "FP", "FN", "TN"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def scores(manifest, out):
    rows = read_csv(manifest)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "patient_id", "label", "split", "score", "unit", "vendor"])
        for i, r in enumerate(rows):
            lab = int(r["label"])
            noise = ((i * 2654435761) % 1000) / 1000.0
            score = 0.35 * lab + 0.65 * noise
            w.writerow([r["path"], r["patient_id"], lab, "val" if i < len(rows) // 3 else "test",
                        "%.6f" % score, r["unit"], r["vendor"]])
    return 0


def stem_of(path):
    b = os.path.basename(path)
    if "." in b[1:]:
        b = b[:b.rindex(".")]
    return re.sub(r"[^A-Za-z0-9._-]", "_", b)[:120] or "x"


def jet_levels(level):
    """OpenCV-style jet, 255 * clamp(1.5 - |4x - c|) for c = 3, 2, 1 (r, g, b)
    at x = level / 255, written in level units so that it is exact, rounded
    half up."""
    return np.stack([np.floor(np.clip(382.5 - np.abs(4 * level - 255 * c), 0, 255) + 0.5) for c in (3, 2, 1)],
                    axis=-1)


def full_map(npy, h, w):
    m = torch.from_numpy(np.load(npy).astype(np.float64))[None, None]
    return F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()


def manifest_by_path(manifest):
    return {r["path"]: r for r in read_csv(manifest)}


def check_localisation(camdir, mrows, mdir, bad):
    """Recompute hit / mass for every index row with a region; returns the
    per-image tuples for the summary check."""
    idx = read_csv(os.path.join(camdir, "index.csv"))
    seen = []
    for r in idx:
        m = mrows.get(r["id"])
        if m is None:
            bad.append("index id %s not in the manifest" % r["id"])
            continue
        has_mask = bool(m["free_air_mask"])
        if has_mask != (r["region"] == "mask"):
            bad.append("%s: region %r but manifest mask %r" % (r["id"], r["region"], m["free_air_mask"]))
            continue
        if not has_mask:
            continue
        mask = np.asarray(Image.open(os.path.join(mdir, m["free_air_mask"]))) > 0
        h, w = mask.shape
        fm = full_map(os.path.join(camdir, r["map_npy"]), h, w)
        k = int(np.argmax(fm))
        py, px = divmod(k, w)
        ys, xs = np.nonzero(mask)
        dist = float(np.sqrt(((ys - py) ** 2 + (xs - px) ** 2).min()))
        tol = TOL * max(w, h)
        hit = int(fm.max() > 0 and dist <= tol)
        mass = float((fm * mask).sum() / fm.sum()) if fm.sum() > 0 else float("nan")
        got_mass = float(r["mass_inside"]) if r["mass_inside"] else float("nan")
        if not (abs(got_mass - mass) <= 1e-4 or (math.isnan(mass) and math.isnan(got_mass))):
            bad.append("%s: mass_inside %r, recomputed %r" % (r["id"], got_mass, mass))
        got_d = float(r["peak_distance_px"])
        if abs(got_d - dist) > 2:
            bad.append("%s: peak distance %r, recomputed %r" % (r["id"], got_d, dist))
        if int(r["pointing_hit"]) != hit and abs(dist - tol) > 2:
            bad.append("%s: pointing hit %s, recomputed %d (distance %.2f, tolerance %.2f)"
                       % (r["id"], r["pointing_hit"], hit, dist, tol))
        seen.append((r, int(r["pointing_hit"]), got_mass))
    # The summary must be the index's numbers aggregated.
    loc = json.load(open(os.path.join(camdir, "localisation.json")))
    model = loc["models"][0]
    n = len(seen)
    hits = sum(h for _, h, _ in seen)
    ov = model["overall"]
    if ov["n"] != n or ov["hits"] != hits:
        bad.append("localisation.json overall n/hits %s/%s, index %d/%d" % (ov["n"], ov["hits"], n, hits))
    masses = sorted(m for _, _, m in seen if not math.isnan(m))
    if masses:
        if abs(ov["mass_inside_mean"] - float(np.mean(masses))) > 1e-5:
            bad.append("mass_inside_mean %r vs %r" % (ov["mass_inside_mean"], float(np.mean(masses))))
        if abs(ov["mass_inside_median"] - float(np.median(masses))) > 1e-5:
            bad.append("mass_inside_median %r vs %r" % (ov["mass_inside_median"], float(np.median(masses))))
    if n:
        z = 1.959963984540054
        p = hits / n
        c = (p + z * z / (2 * n)) / (1 + z * z / n)
        hw = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        lo, hi = ov["pointing_game_ci"]
        want_lo, want_hi = (0.0 if hits == 0 else c - hw), (1.0 if hits == n else c + hw)
        if abs(lo - want_lo) > 1e-9 or abs(hi - want_hi) > 1e-9:
            bad.append("pointing_game_ci %r, Wilson %r" % ([lo, hi], [want_lo, want_hi]))
    for sg in model["subgroups"]:
        col = sg["column"]
        key = "category" if col == "category" else col
        sub = [(r, h) for r, h, _ in seen if r[key] == sg["value"]]
        if sg["n"] != len(sub) or sg["hits"] != sum(h for _, h in sub):
            bad.append("subgroup %s=%s: n/hits %s/%s, index %d/%d" % (col, sg["value"], sg["n"], sg["hits"], len(sub),
                                                                       sum(h for _, h in sub)))
    return n


def check_gallery(run, manifest, per_cat):
    per_cat = int(per_cat)
    bad = []
    camdir = os.path.join(run, "cam")
    mrows = manifest_by_path(manifest)
    mdir = os.path.dirname(os.path.abspath(manifest))
    pred = [r for r in read_csv(os.path.join(run, "predictions.csv")) if r["split"] == "test"]
    expect = []
    for k, cat in enumerate(CATS):
        rows = [r for r in pred if r["outcome_primary"] == cat]
        desc = cat in ("TP", "FP")
        rows.sort(key=lambda r: -float(r["score"]) if desc else float(r["score"]))  # stable: ties in file order
        for rank, r in enumerate(rows[:per_cat], 1):
            expect.append((r["id"], cat, rank, "%d-%s-%02d-%s.png" % (k + 1, cat, rank, stem_of(r["id"]))))
    idx = read_csv(os.path.join(camdir, "index.csv"))
    gallery = [r for r in idx if r["file"]]
    got = [(r["id"], r["category"], int(r["rank"]), r["file"]) for r in gallery]
    if got != expect:
        bad.append("gallery picks differ:\n  got    %s\n  expect %s" % (got, expect))
    # every other test positive is there for localisation, without an overlay
    extra = {r["id"] for r in idx if not r["file"]}
    want_extra = {r["id"] for r in pred if r["label"] == "1"} - {e[0] for e in expect}
    if extra != want_extra:
        bad.append("extra positives %s, expected %s" % (sorted(extra), sorted(want_extra)))
    for r in gallery:
        m = mrows[r["id"]]
        h, w = int(m["rows"]), int(m["columns"])
        ov = Image.open(os.path.join(camdir, r["file"]))
        if ov.mode != "RGB" or ov.size != (w, h):
            bad.append("%s: overlay %s %s, expected RGB %dx%d" % (r["file"], ov.mode, ov.size, w, h))
            continue
        # grey: the DICOM as freeair decodes it is not available here, so
        # take it back out of the overlay where the colour is known exactly
        fm = full_map(os.path.join(camdir, r["map_npy"]), h, w)
        level = np.floor(np.clip(fm, 0, 1) * 255 + 0.5)
        o = np.asarray(ov).astype(np.float64)
        spread = None
        # the map is quantised to 256 colours; float rounding may move a
        # pixel to the neighbouring level, so accept the best of three
        for dl in (-1, 0, 1):
            col = jet_levels(np.clip(level + dl, 0, 255))
            grey = (o - ALPHA * col) / (1 - ALPHA)
            sp = grey.max(axis=2) - grey.min(axis=2)
            spread = sp if spread is None else np.minimum(spread, sp)
        # the three channels must agree on one grey value (up to rounding:
        # 0.5 / 0.6 per channel)
        spread = float(spread.max())
        if spread > 1.7:
            bad.append("%s: overlay is not 0.6 grey + 0.4 jet(map) (channel spread %.2f)" % (r["file"], spread))
        side = json.load(open(os.path.join(camdir, r["map_json"])))
        if side["image"] != {"width": w, "height": h} or side["png16"]["width"] != w:
            bad.append("%s: sidecar geometry %s" % (r["file"], side["image"]))
        if abs(float(r["score"]) - float([p for p in pred if p["id"] == r["id"]][0]["score"])) > 1e-6:
            bad.append("%s: score differs from predictions.csv" % r["file"])
    n = check_localisation(camdir, mrows, mdir, bad)
    if n == 0:
        bad.append("no localised image: the cohort has no positive with a mask in the test split")
    rep = json.load(open(os.path.join(run, "report.json")))
    files = sorted(g["file"] for g in rep["gradcam"])
    if files != sorted(e[3] for e in expect):
        bad.append("report gallery %s, expected the overlays %s" % (files, sorted(e[3] for e in expect)))
    caps = {g["file"]: g["caption"] for g in rep["gradcam"]}
    for r in gallery:
        if caps.get(r["file"]) != r["caption"]:
            bad.append("report caption for %s: %r, index %r" % (r["file"], caps.get(r["file"]), r["caption"]))
    for b in bad:
        print("FAIL", b)
    print("gallery: %d overlays, %d localised images, %d problem(s)" % (len(gallery), n, len(bad)))
    return 1 if bad else 0


def check_loc_only(camdir, manifest):
    bad = []
    n = check_localisation(camdir, manifest_by_path(manifest), os.path.dirname(os.path.abspath(manifest)), bad)
    if n == 0:
        bad.append("no localised image")
    for b in bad:
        print("FAIL", b)
    print("localisation: %d images, %d problem(s)" % (n, len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "scores":
        sys.exit(scores(sys.argv[2], sys.argv[3]))
    if cmd == "check-gallery":
        sys.exit(check_gallery(sys.argv[2], sys.argv[3], sys.argv[4]))
    if cmd == "check-localisation":
        sys.exit(check_loc_only(sys.argv[2], sys.argv[3]))
    sys.exit("unknown command " + cmd)
