#!/usr/bin/env bash
# `freeair eval` against scikit-learn/numpy on a synthetic three-model
# cohort with repeat images, ties and two subgroup columns: thresholds locked
# on validation rows, every operating-point metric, ROC points, AUC,
# calibration, decision curve, histograms, predictions.csv decisions and the
# order of misclassified.csv (tests/ref/stats_sklearn.py says what is checked).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$FREEAIR_ROOT/tests/ref"
"$REF_PYTHON" "$ref/stats_synth_predictions.py" "$tmp/pred.csv" --seed 11 \
  --models densenet161,resnext101,resnet50 --n-test 260 --n-val 100
"$FREEAIR_BIN" eval --predictions "$tmp/pred.csv" --group-by unit --group-by manufacturer \
  --bootstrap 200 -o "$tmp/run" >"$tmp/summary.txt"
"$REF_PYTHON" "$ref/stats_sklearn.py" "$tmp/pred.csv" "$tmp/run" --group-by unit --group-by manufacturer
# The summary reproduces the study's tables.
for want in "Table 2 form" "Table 3 form: test split by 'unit'" "Table 4 form: by 'manufacturer'" \
            "densenet161 vs resnext101" "locked on the validation split"; do
  grep -q "$want" "$tmp/summary.txt" || { echo "summary lacks: $want"; cat "$tmp/summary.txt"; exit 1; }
done
# A second score scale (logits, not probabilities): metrics still agree;
# calibration and decision curve are null with a reason.
"$REF_PYTHON" - "$tmp/pred.csv" "$tmp/logit.csv" <<'PY'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=rows[0].keys(), lineterminator="\n")
    w.writeheader()
    for r in rows:
        p = min(max(float(r["score"]), 1e-4), 1 - 1e-4)
        r["score"] = repr(round(math.log(p / (1 - p)), 3))
        w.writerow(r)
PY
"$FREEAIR_BIN" eval --predictions "$tmp/logit.csv" --group-by unit --bootstrap 0 --fixed 0 \
  --quiet -o "$tmp/run_logit"
"$REF_PYTHON" - "$tmp/run_logit/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
c = m["models"][0]["overall"]
assert c["calibration"]["brier"] is None and "not probabilities" in c["calibration"]["reason"], c["calibration"]
assert c["decision_curve"]["reason"] and c["decision_curve"]["net_benefit"] == []
assert c["auc"]["estimate"] > 0.5
PY
# AUC on the logit scale equals scikit-learn's too (it is rank-based).
"$REF_PYTHON" - "$tmp/logit.csv" "$tmp/run_logit/metrics.json" <<'PY'
import csv, json, sys
import numpy as np
from sklearn.metrics import roc_auc_score
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "test"]
m = json.load(open(sys.argv[2]))
for mm in m["models"]:
    sel = [r for r in rows if r["model"] == mm["name"]]
    y = np.array([int(r["label"]) for r in sel]); s = np.array([float(r["score"]) for r in sel])
    want = roc_auc_score(y, s)
    assert abs(mm["overall"]["auc"]["estimate"] - want) < 1e-12, (mm["name"], want)
print("logit scores: AUC agrees; calibration reported as not applicable")
PY
