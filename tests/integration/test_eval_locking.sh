#!/usr/bin/env bash
# Operating points are locked on the validation rows: changing every test
# score leaves the thresholds unchanged; a separate --val-predictions file
# gives the same thresholds and metrics as a split column; without any
# validation rows the thresholds are flagged as not locked. Also: the
# patient-level bootstrap is deterministic for a seed and accounts for
# repeat images of a patient (an image-level resampling would not).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$FREEAIR_ROOT/tests/ref"
export SOURCE_DATE_EPOCH=1700000000
"$REF_PYTHON" "$ref/stats_synth_predictions.py" "$tmp/pred.csv" --seed 5 --n-test 200 --n-val 120
"$REF_PYTHON" "$ref/stats_synth_predictions.py" "$tmp/test_only.csv" --seed 5 --n-test 200 --n-val 120 \
  --no-split --val-out "$tmp/val_only.csv"
ev() { "$FREEAIR_BIN" eval --bootstrap 300 --quiet "$@" 2>>"$tmp/stderr"; }
ev --predictions "$tmp/pred.csv" -o "$tmp/a"
ev --predictions "$tmp/pred.csv" -o "$tmp/a2"
ev --predictions "$tmp/test_only.csv" --val-predictions "$tmp/val_only.csv" -o "$tmp/c"
ev --predictions "$tmp/test_only.csv" -o "$tmp/nolock"
# Every test score replaced by noise: thresholds must not move.
"$REF_PYTHON" - "$tmp/pred.csv" "$tmp/shuffled.csv" <<'PY'
import csv, random, sys
rng = random.Random(3)
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=rows[0].keys(), lineterminator="\n")
    w.writeheader()
    for r in rows:
        if r["split"] == "test":
            r["score"] = repr(round(rng.random(), 3))
        w.writerow(r)
PY
ev --predictions "$tmp/shuffled.csv" -o "$tmp/b"
"$REF_PYTHON" - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
load = lambda n: json.load(open(f"{d}/{n}/metrics.json"))
a, a2, b, c, nolock = load("a"), load("a2"), load("b"), load("c"), load("nolock")
thr = lambda m: {mm["name"]: [(t["rule"], t["value"]) for t in mm["thresholds"]] for mm in m["models"]}
assert a["thresholds_locked"] is True
assert thr(a) == thr(b), "test scores changed the locked thresholds"
assert a["models"][0]["overall"]["auc"]["estimate"] != b["models"][0]["overall"]["auc"]["estimate"]
assert thr(a) == thr(c), "a --val-predictions file must give the same thresholds as a split column"
for ma, mc in zip(a["models"], c["models"]):
    assert ma["overall"]["auc"] == mc["overall"]["auc"], "same rows must give the same AUC and CIs"
    assert ma["overall"]["operating_points"] == mc["overall"]["operating_points"]
assert a["models"] == a2["models"] and a["comparisons"] == a2["comparisons"], "not deterministic"
assert nolock["thresholds_locked"] is False
assert any("NOT locked" in w for w in nolock["warnings"]), nolock["warnings"]
for t in nolock["models"][0]["thresholds"]:
    if t["rule"].startswith("fixed"):
        assert t["locked"] and t["source"] == "prespecified"
    else:
        assert not t["locked"] and t["source"] == "test" and "optimistic" in t["reason"], t
print("thresholds locked on validation; not-locked mode flagged; deterministic")
PY
# Repeat images: 150 patients with 4 identical images each. The patient
# bootstrap CI must match the one-image-per-patient CI; resampling images
# (no patient_id) would pretend to have 4x the data and shrink it ~2x.
"$REF_PYTHON" - "$tmp" <<'PY'
import csv, random, sys
d = sys.argv[1]
rng = random.Random(9)
pats = [(i, int(rng.random() < 0.5)) for i in range(150)]
pats = [(i, y, round(min(max(rng.gauss(0.62 if y else 0.40, 0.17), 0), 1), 3)) for i, y in pats]
for name, copies, with_pid in (("single", 1, True), ("repeat", 4, True), ("repeat_nopid", 4, False)):
    with open(f"{d}/{name}.csv", "w", newline="") as f:
        cols = ["id", "patient_id", "label", "score"] if with_pid else ["id", "label", "score"]
        w = csv.writer(f, lineterminator="\n"); w.writerow(cols)
        for i, y, s in pats:
            for k in range(copies):
                row = [f"i{i}_{k}", f"p{i}", y, s]
                w.writerow(row if with_pid else [row[0]] + row[2:])
PY
for n in single repeat repeat_nopid; do
  "$FREEAIR_BIN" eval --predictions "$tmp/$n.csv" --bootstrap 1000 --seed 4 --quiet -o "$tmp/$n" 2>>"$tmp/stderr"
done
grep -q "no patient_id column" "$tmp/stderr"
"$REF_PYTHON" - "$tmp" <<'PY'
import json, sys
d = sys.argv[1]
w = lambda n, k: (lambda ci: ci[1] - ci[0])(json.load(open(f"{d}/{n}/metrics.json"))["models"][0]["overall"]["auc"][k])
single, repeat, nopid = w("single", "bootstrap_ci"), w("repeat", "bootstrap_ci"), w("repeat_nopid", "bootstrap_ci")
print(f"AUC bootstrap CI width: one image/patient {single:.4f}, 4 images/patient {repeat:.4f}, "
      f"same resampled by image {nopid:.4f}")
assert 0.8 < repeat / single < 1.25, "patient-level bootstrap must ignore duplicated images"
assert nopid / single < 0.65, "image-level resampling should be (wrongly) narrower"
assert json.load(open(f"{d}/repeat/metrics.json"))["options"]["bootstrap_unit"] == "patient"
assert json.load(open(f"{d}/repeat_nopid/metrics.json"))["options"]["bootstrap_unit"] == "image"
PY
