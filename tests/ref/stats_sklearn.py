#!/usr/bin/env python3
"""Checks freeair eval's outputs against scikit-learn and numpy.

usage: stats_sklearn.py PREDICTIONS.csv RUN_DIR [--group-by COL ...]

PREDICTIONS.csv must have model, id, patient_id, label, score and split
(val/test). Checked, for every model:
- thresholds: recomputed from the validation rows only with sklearn's
  roc_curve and the rules of docs/metrics.md (Youden, minimum sensitivity,
  minimum specificity, midpoint between adjacent distinct scores);
- at every threshold, on the test rows overall and per subgroup: confusion
  matrix, sensitivity, specificity, accuracy, PPV, NPV and F1 (sklearn);
- ROC points (roc_curve, drop_intermediate=False) and AUC (roc_auc_score);
- Brier score (brier_score_loss), ECE, reliability bins, net benefit, score
  histogram and sensitivity at fixed specificity (numpy, documented rules);
- predictions.csv decisions and misclassified.csv (content and order).
Exits 1 on the first group of mismatches, printing them.
"""
import argparse
import csv
import json
import math
import sys

import numpy as np
from sklearn.metrics import (accuracy_score, brier_score_loss, confusion_matrix, f1_score,
                             precision_score, recall_score, roc_auc_score, roc_curve)

TOL = 1e-12
errors = []


def close(what, have, want, tol=TOL):
    if have is None or want is None:
        if not (have is None and want is None):
            errors.append(f"{what}: got {have!r}, want {want!r}")
        return
    if not abs(have - want) <= tol * max(1.0, abs(want)):
        errors.append(f"{what}: got {have!r}, want {want!r}")


def equal(what, have, want):
    if have != want:
        errors.append(f"{what}: got {have!r}, want {want!r}")


def cut_threshold(thr, k):
    """Threshold reproducing sklearn ROC cut k (docs/metrics.md)."""
    if k == 0:
        return float(np.nextafter(thr[1], np.inf))
    if k == len(thr) - 1:
        return float(thr[k])
    a, b = float(thr[k]), float(thr[k + 1])
    mid = 0.5 * a + 0.5 * b
    return mid if (mid > b and mid <= a) else a


def rule_thresholds(y, s, rules):
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    P, N = int(y.sum()), int((1 - y).sum())
    tp = np.rint(tpr * P).astype(int)
    fp = np.rint(fpr * N).astype(int)
    out = {}
    for r in rules:
        kind, t = r["kind"], r["target"]
        if kind == "fixed":
            out[r["name"]] = t
            continue
        if kind == "youden":
            j = tp * N - fp * P  # exact integers: ties are ties
            k = int(np.argmax(j))  # first maximum = highest threshold
        elif kind == "min_sensitivity":
            k = int(np.nonzero(tp >= t * P - 1e-9)[0][0])
        else:
            ok = (N - fp) >= t * N - 1e-9
            k = int(np.nonzero(ok)[0][-1])
            assert ok[:k + 1].all()
        out[r["name"]] = cut_threshold(thr, k)
    return out


def check_cell(tag, cell, y, s, pid, thresholds, rules, level_bins, hist_bins):
    equal(f"{tag} n", cell["n"], len(y))
    equal(f"{tag} n_pos", cell["n_pos"], int(y.sum()))
    equal(f"{tag} n_neg", cell["n_neg"], int((1 - y).sum()))
    equal(f"{tag} n_patients", cell["n_patients"], len(set(pid)))
    both = 0 < y.sum() < len(y)
    if both:
        close(f"{tag} auc", cell["auc"]["estimate"], roc_auc_score(y, s))
        fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
        roc = cell["roc"]
        equal(f"{tag} roc length", len(roc["fpr"]), len(fpr))
        if len(roc["fpr"]) == len(fpr):
            equal(f"{tag} roc threshold[0]", roc["thresholds"][0], None)  # +inf
            for i in range(len(fpr)):
                close(f"{tag} roc fpr[{i}]", roc["fpr"][i], float(fpr[i]))
                close(f"{tag} roc tpr[{i}]", roc["tpr"][i], float(tpr[i]))
                if i:
                    close(f"{tag} roc threshold[{i}]", roc["thresholds"][i], float(thr[i]))
        P, N = int(y.sum()), int((1 - y).sum())
        for sas in cell["sens_at_spec"]:
            ok = (1 - fpr) >= sas["target_specificity"] - 1e-9 / N
            k = int(np.nonzero(ok)[0][-1])
            close(f"{tag} sens@spec{sas['target_specificity']}", sas["sensitivity"], float(tpr[k]))
    else:
        equal(f"{tag} auc estimate", cell["auc"]["estimate"], None)
        if not cell["auc"]["reason"]:
            errors.append(f"{tag}: single-class cell without a reason")
    for op in cell["operating_points"]:
        t = thresholds[op["rule"]]
        close(f"{tag} {op['rule']} threshold", op["threshold"], t)
        pred = (s >= t).astype(int)
        tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
        c = op["confusion"]
        equal(f"{tag} {op['rule']} confusion", (c["tp"], c["fp"], c["tn"], c["fn"]),
              (int(tp), int(fp), int(tn), int(fn)))
        if tp + fn:
            close(f"{tag} {op['rule']} sensitivity", op["sensitivity"]["estimate"],
                  recall_score(y, pred, zero_division=0))
        if tn + fp:
            close(f"{tag} {op['rule']} specificity", op["specificity"]["estimate"],
                  recall_score(y, pred, pos_label=0, zero_division=0))
        close(f"{tag} {op['rule']} accuracy", op["accuracy"]["estimate"], accuracy_score(y, pred))
        if tp + fp:
            close(f"{tag} {op['rule']} ppv", op["ppv"]["estimate"], precision_score(y, pred))
        else:
            equal(f"{tag} {op['rule']} ppv", op["ppv"]["estimate"], None)
        if tn + fn:
            close(f"{tag} {op['rule']} npv", op["npv"]["estimate"], tn / (tn + fn))
        if 2 * tp + fp + fn:
            close(f"{tag} {op['rule']} f1", op["f1"]["estimate"], f1_score(y, pred))
            lo, hi = op["f1"]["ci"] or (None, None)
            if lo is not None and not (lo <= op["f1"]["estimate"] + 1e-12 or hi >= op["f1"]["estimate"]):
                errors.append(f"{tag} {op['rule']} f1 CI {lo}-{hi} is odd")
    cal = cell["calibration"]
    if len(y):
        close(f"{tag} brier", cal["brier"], brier_score_loss(y, s))
        b = np.minimum(np.floor(s * level_bins).astype(int), level_bins - 1)
        ece = 0.0
        for k in range(level_bins):
            sel = b == k
            bin_ = cal["bins"][k]
            equal(f"{tag} calib bin {k} n", bin_["n"], int(sel.sum()))
            if sel.any():
                close(f"{tag} calib bin {k} mean", bin_["mean_score"], float(s[sel].mean()), 1e-12)
                close(f"{tag} calib bin {k} observed", bin_["observed"], float(y[sel].mean()))
                ece += sel.mean() * abs(y[sel].mean() - s[sel].mean())
        close(f"{tag} ece", cal["ece"], float(ece), 1e-12)
        dca = cell["decision_curve"]
        n = len(y)
        for i in range(0, len(dca["thresholds"]), 7):
            pt = dca["thresholds"][i]
            pred = s >= pt
            nb = (pred & (y == 1)).sum() / n - (pred & (y == 0)).sum() / n * pt / (1 - pt)
            close(f"{tag} net benefit at {pt}", dca["net_benefit"][i], float(nb), 1e-12)
            prev = y.mean()
            close(f"{tag} treat-all at {pt}", dca["treat_all"][i], float(prev - (1 - prev) * pt / (1 - pt)),
                  1e-12)
        h = cell["score_histogram"]
        hb = np.clip(np.floor((s - h["lo"]) / (h["hi"] - h["lo"]) * hist_bins).astype(int), 0, hist_bins - 1)
        equal(f"{tag} histogram pos", h["pos"], [int(((hb == k) & (y == 1)).sum()) for k in range(hist_bins)])
        equal(f"{tag} histogram neg", h["neg"], [int(((hb == k) & (y == 0)).sum()) for k in range(hist_bins)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("predictions")
    ap.add_argument("run_dir")
    ap.add_argument("--group-by", action="append", default=[])
    a = ap.parse_args()
    with open(a.predictions) as f:
        rows = list(csv.DictReader(f))
    with open(f"{a.run_dir}/metrics.json") as f:
        m = json.load(f)
    rules = m["rules"]
    opts = m["options"]
    primary = opts["primary_rule"]
    with open(f"{a.run_dir}/predictions.csv") as f:
        out_pred = {(r["model"], r["id"]): r for r in csv.DictReader(f)}
    with open(f"{a.run_dir}/misclassified.csv") as f:
        missed = list(csv.DictReader(f))

    for mm in m["models"]:
        name = mm["name"]
        mine = [r for r in rows if r.get("model", "model") == name]
        val = [r for r in mine if r["split"] == opts["val_split"]]
        test = [r for r in mine if r["split"] == opts["test_split"]]
        yv = np.array([int(r["label"]) for r in val])
        sv = np.array([float(r["score"]) for r in val])
        thresholds = rule_thresholds(yv, sv, rules)
        for t in mm["thresholds"]:
            close(f"{name} threshold {t['rule']}", t["value"], thresholds[t["rule"]])
            if t["rule"] != "fixed_0.50":
                equal(f"{name} threshold {t['rule']} source", t["source"], "validation")
            equal(f"{name} threshold {t['rule']} locked", t["locked"], True)
        equal(f"{name} validation n", mm["validation"]["n"], len(val))

        def arrays(sel):
            return (np.array([int(r["label"]) for r in sel], dtype=int),
                    np.array([float(r["score"]) for r in sel]), [r["patient_id"] for r in sel])

        y, s, pid = arrays(test)
        check_cell(f"{name} overall", mm["overall"], y, s, pid, thresholds, rules, opts["ece_bins"],
                   opts["histogram_bins"])
        for sub in mm["subgroups"]:
            sel = [r for r in test if r[sub["column"]] == sub["value"]]
            y2, s2, p2 = arrays(sel)
            check_cell(f"{name} {sub['column']}={sub['value']}", sub, y2, s2, p2, thresholds, rules,
                       opts["ece_bins"], opts["histogram_bins"])
        want_sub = sum(len({r[g] for r in test}) for g in a.group_by)
        equal(f"{name} number of subgroups", len(mm["subgroups"]), want_sub)

        # Decisions in predictions.csv and errors in misclassified.csv.
        for r in val + test:
            o = out_pred.get((name, r["id"]))
            if o is None:
                errors.append(f"predictions.csv lacks {name}/{r['id']}")
                continue
            for rule, t in thresholds.items():
                equal(f"predictions.csv {name}/{r['id']} pred_{rule}", o[f"pred_{rule}"],
                      "1" if float(r["score"]) >= t else "0")
        tp = thresholds[primary]
        want_err = []
        for r in test:
            sc, lab = float(r["score"]), int(r["label"])
            if (sc >= tp) != (lab == 1):
                want_err.append((-(sc - tp if sc >= tp else tp - sc), r["id"]))
        want_err.sort()
        have_err = [x["id"] for x in missed if x["model"] == name]
        equal(f"misclassified.csv {name} ids in order", have_err, [i for _, i in want_err])

    if errors:
        for e in errors[:40]:
            print(e)
        print(f"{len(errors)} mismatches against scikit-learn/numpy")
        return 1
    print(f"{a.run_dir}: agrees with scikit-learn/numpy ({len(m['models'])} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
