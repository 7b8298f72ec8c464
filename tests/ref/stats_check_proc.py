#!/usr/bin/env python3
"""Compares freeair's metrics.json with pROC reference values.

usage: stats_check_proc.py EXPECTED.csv METRICS.json [--tol 1e-9]

EXPECTED.csv comes from proc_reference.R (keys documented there). Every key
must be found and agree within the tolerance; exits 1 listing mismatches.
"""
import argparse
import csv
import json
import math
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("expected")
    ap.add_argument("metrics")
    ap.add_argument("--tol", type=float, default=1e-9)
    a = ap.parse_args()
    with open(a.expected) as f:
        exp = {r["key"]: float(r["value"]) for r in csv.DictReader(f)}
    with open(a.metrics) as f:
        m = json.load(f)
    models = {x["name"]: x for x in m["models"]}

    def op(cell, rule):
        return next(o for o in cell["operating_points"] if o["rule"] == rule)

    def sub(model, value):
        return next(s for s in models[model]["subgroups"] if s["column"] == "grp" and s["value"] == value)

    def got(key):
        parts = key.split(".")
        if parts[0] == "pair":
            cmp = next(c for c in m["comparisons"] if c["subgroup"] is None)
            d = cmp["delong"]
            return {"z": d["z"], "p": d["p_value"], "ci_lo": d["difference_ci"][0],
                    "ci_hi": d["difference_ci"][1]}[parts[1]]
        if parts[0] == "mcnemar":
            cmp = next(c for c in m["comparisons"] if c["subgroup"] is None)
            mc = next(x for x in cmp["mcnemar"] if x["rule"] == "fixed_0.50")
            t = mc["sensitivity" if parts[1] == "sens" else "specificity"]
            return {"b": t["b"], "c": t["c"], "p": t["p_value"]}[parts[2]]
        model = parts[0]
        if parts[1] == "grp":
            cell = sub(model, parts[2])
            what = parts[3]
        elif parts[1] == "fixed":
            cell = models[model]["overall"]
            metric, end = parts[2].rsplit("_", 1)
            ci = op(cell, "fixed_0.50")[metric]["ci"]
            return ci[0 if end == "lo" else 1]
        else:
            cell = models[model]["overall"]
            what = parts[1]
        auc = cell["auc"]
        if what == "single_class":
            ok = auc["estimate"] is None and auc["delong_ci"] is None and auc["reason"]
            return 1.0 if ok else 0.0
        if what == "auc":
            return auc["estimate"]
        if what == "delong_lo":
            return auc["delong_ci"][0]
        if what == "delong_hi":
            return auc["delong_ci"][1]
        if what == "delong_var":
            return auc["delong_se"] ** 2
        raise KeyError(key)

    bad = 0
    worst = 0.0
    for key, want in exp.items():
        try:
            have = got(key)
        except (KeyError, StopIteration, TypeError, IndexError) as e:
            print(f"{a.metrics}: {key}: missing in metrics.json ({e!r})")
            bad += 1
            continue
        if have is None or not math.isfinite(have):
            print(f"{a.metrics}: {key}: got {have}, want {want}")
            bad += 1
            continue
        # The DeLong variance is compared relatively (it is ~1e-4 in size).
        tol = a.tol * max(1.0, abs(want)) if not key.endswith("var") else a.tol * abs(want)
        diff = abs(have - want)
        worst = max(worst, diff if not key.endswith("var") else diff / max(abs(want), 1e-300))
        if diff > tol:
            print(f"{a.metrics}: {key}: got {have!r}, pROC/R {want!r} (diff {diff:.3g})")
            bad += 1
    print(f"{a.expected}: {len(exp)} values compared, {bad} mismatches, worst difference {worst:.3g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
