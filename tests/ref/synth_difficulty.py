#!/usr/bin/env python3
"""synth_difficulty.py - is the synthetic task learnable but not trivial?

Measures a cohort written by `freeair synth` with two naive readers that use
no freeair code (pydicom + GDCM decode, numpy, scikit-learn):

1. A "lucency under the dome" reader: for each hemidiaphragm (its curve taken
   from the manifest's truth polylines) the darkest 3 mm strip within 2-14 mm
   below the dome, relative to the tissue 18-30 mm below. Its AUC is reported
   for large vs subtle free air and against clean vs mimic negatives (stomach
   bubble, basal lucency, Chilaiditi): subtle free air and mimics should be
   measurably harder.
2. Domain shift: reader 1's threshold set at 90% specificity on the fixed
   Philips academic pool (the study's train/val source) and applied to other
   vendors and portable units; and how well a logistic regression on the
   display histogram alone separates Philips from other vendors.

  synth_difficulty.py DIR [--json OUT] [--check]
--check exits 1 unless, for reader 1, subtle < large and mimic < clean (each by
at least 0.03 AUC) and the overall AUC is between 0.6 and 0.995 (learnable,
not trivial); and unless there is a vendor shift (histogram AUC >= 0.7 and the
pool's 90%-specificity threshold keeps at most 85% on other vendors).
"""
import csv
import json
import os
import sys

import numpy as np


def auc(pos, neg):
    pos = np.asarray(pos, float)
    neg = np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    i = 0
    while i < len(sv):  # average ranks of ties
        j = i
        while j + 1 < len(sv) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    rp = ranks[:len(pos)].sum()
    return (rp - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg))


def display(ds):
    """Stored values -> window -> bone bright, 0..1 (the DICOM grey pipeline)."""
    a = ds.pixel_array.astype(np.float64)
    wc = float(ds.WindowCenter if not hasattr(ds.WindowCenter, "__len__") else ds.WindowCenter[0])
    ww = float(ds.WindowWidth if not hasattr(ds.WindowWidth, "__len__") else ds.WindowWidth[0])
    v = np.clip((a - (wc - 0.5 - (ww - 1) / 2)) / (ww - 1), 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        v = 1 - v
    return v


def polyline(s):
    return np.array([[float(v) for v in p.split(":")] for p in s.split(";") if p])


def lucency_score(img, spacing, domes):
    """Largest drop of a 3 mm strip 2-14 mm under a dome below the tissue
    18-30 mm under it (display units)."""
    h, w = img.shape
    best = -1.0
    for pts in domes:
        xs = np.arange(int(np.ceil(pts[:, 0].min())), int(np.floor(pts[:, 0].max())))
        xs = xs[(xs >= 0) & (xs < w)]
        if len(xs) < 3:
            continue
        order = np.argsort(pts[:, 0])
        ys = np.interp(xs + 0.5, pts[order, 0], pts[order, 1])
        ref = []
        for x, y in zip(xs, ys):
            y0, y1 = int(y + 18 / spacing), int(y + 30 / spacing) + 1
            if 0 <= y0 < y1 <= h:
                ref.append(img[y0:y1, x].mean())
        if not ref:
            continue
        ref = np.median(ref)
        for off in np.arange(2.0, 14.0, 1.0):
            vals = []
            for x, y in zip(xs, ys):
                y0 = int(y + off / spacing)
                y1 = max(y0 + 1, int(y + (off + 3) / spacing))
                if 0 <= y0 and y1 <= h:
                    vals.append(img[y0:y1, x].mean())
            if len(vals) < 3:
                continue
            # darkest run of a third of the dome's width
            k = max(1, len(vals) // 3)
            run = np.convolve(vals, np.ones(k) / k, mode="valid").min()
            best = max(best, ref - run)
    return best


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    check = "--check" in sys.argv
    out_json = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    import pydicom
    from pydicom.pixel_data_handlers import gdcm_handler, numpy_handler, rle_handler
    pydicom.config.pixel_data_handlers = [numpy_handler, rle_handler, gdcm_handler]
    rows = list(csv.DictReader(open(os.path.join(d, "manifest.csv"), newline="")))
    score, hists = [], []
    for r in rows:
        ds = pydicom.dcmread(os.path.join(d, r["path"]))
        img = display(ds)
        sp = float(r["pixel_spacing"].split("\\")[0])
        score.append(lucency_score(img, sp, [polyline(r["dome_right"]), polyline(r["dome_left"])]))
        hists.append(np.histogram(img, bins=32, range=(0, 1))[0] / img.size)
    score = np.array(score)
    label = np.array([int(r["label"]) for r in rows])
    size = np.array([float(r["free_air_size_mm"]) for r in rows])
    diff = np.array([r["difficulty"] for r in rows])
    res = {}
    neg = score[label == 0]
    res["reader1_auc_all"] = auc(score[label == 1], neg)
    res["reader1_auc_large_vs_neg"] = auc(score[(label == 1) & (size >= 15)], neg)
    res["reader1_auc_moderate_vs_neg"] = auc(score[(label == 1) & (size >= 5) & (size < 15)], neg)
    res["reader1_auc_subtle_vs_neg"] = auc(score[(label == 1) & (size < 5)], neg)
    res["reader1_auc_pos_vs_clean"] = auc(score[label == 1], score[(label == 0) & (diff == "clean")])
    res["reader1_auc_pos_vs_mimic"] = auc(score[label == 1], score[(label == 0) & (diff == "mimic")])
    res["n"] = {"pos": int(label.sum()), "neg": int((label == 0).sum()),
                "subtle": int(((label == 1) & (size < 5)).sum()), "large": int(((label == 1) & (size >= 15)).sum()),
                "mimic": int(((label == 0) & (diff == "mimic")).sum()),
                "clean": int(((label == 0) & (diff == "clean")).sum())}

    # domain shift 1: reader 1's threshold fixed at 90% specificity on the
    # pool (fixed Philips academic units, the study's train/val source)
    philips = np.array(["philips" in r["manufacturer"].lower() for r in rows])
    fixed = np.array([r["unit"] == "fixed" for r in rows])
    academic = np.array([r["hospital_type"] == "academic" for r in rows])
    pool = philips & fixed & academic
    thr = np.quantile(score[pool & (label == 0)], 0.9)
    for name, m in (("pool", pool), ("other_vendors", ~philips), ("portable", ~fixed)):
        res["reader1_spec_at_pool90_" + name] = float((score[m & (label == 0)] <= thr).mean())
        res["reader1_sens_at_pool90_" + name] = float((score[m & (label == 1)] > thr).mean())
    # domain shift 2: how well the display histogram alone tells a Philips
    # image from another vendor's (cross-validated logistic regression)
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict
        H = np.array(hists)
        prob = cross_val_predict(LogisticRegression(max_iter=5000), H, philips.astype(int), cv=5,
                                 method="decision_function")
        res["vendor_from_histogram_auc"] = auc(prob[philips], prob[~philips])
    except ImportError:
        res["vendor_from_histogram_auc"] = "scikit-learn not available"
    print(json.dumps(res, indent=1))
    if out_json:
        with open(out_json, "w") as f:
            json.dump(res, f, indent=1)
    if check:
        bad = []
        if not (0.6 <= res["reader1_auc_all"] <= 0.995):
            bad.append("overall AUC %.3f outside 0.6..0.995" % res["reader1_auc_all"])
        if not res["reader1_auc_subtle_vs_neg"] + 0.03 <= res["reader1_auc_large_vs_neg"]:
            bad.append("subtle free air not harder than large")
        if not res["reader1_auc_pos_vs_mimic"] + 0.03 <= res["reader1_auc_pos_vs_clean"]:
            bad.append("mimics not harder than clean negatives")
        if isinstance(res["vendor_from_histogram_auc"], float) and res["vendor_from_histogram_auc"] < 0.7:
            bad.append("vendors hard to tell apart (AUC %.2f): no domain shift" % res["vendor_from_histogram_auc"])
        if res["reader1_spec_at_pool90_other_vendors"] > 0.85:
            bad.append("pool threshold keeps its specificity on other vendors: no domain shift")
        for b in bad:
            print("FAIL:", b, file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
