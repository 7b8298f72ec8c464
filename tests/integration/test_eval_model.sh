#!/usr/bin/env bash
# test_eval_model.sh - `freeair eval --model CKPT... --manifest M` scores the
# manifest's val and test images itself and must give exactly what scoring
# with `freeair predict --model` and evaluating that CSV with
# `eval --predictions` gives: the same AUCs, DeLong CIs, locked thresholds,
# operating points and paired DeLong p-value (to 1e-9), the same ids and
# scores in predictions.csv, plus every manifest column. Two tiny resnet18
# runs on `freeair synth --preset tiny` share an architecture, so the models
# are named after their run folders.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$FREEAIR_BIN" synth --out "$tmp/syn" --preset tiny --limit 48 --seed 4 --quiet
"$FREEAIR_BIN" split --manifest "$tmp/syn/manifest.csv" -o "$tmp/syn/split.csv" --fractions 0.4,0.3,0.3 >/dev/null
"$FREEAIR_BIN" cache --manifest "$tmp/syn/split.csv" --out "$tmp/cache" --short-side 40 --quiet >/dev/null
cat >"$tmp/run.conf" <<CONF
arch = resnet18
image_size = 32
epochs = 1
lr = 0.01
batch_size = 8
micro_batch = 8
manifest = $tmp/syn/split.csv
cache = $tmp/cache
threads = 2
operating_point = youden
CONF
"$FREEAIR_BIN" train --config "$tmp/run.conf" --seed 1 --out "$tmp/runA" --quiet >/dev/null
"$FREEAIR_BIN" train --config "$tmp/run.conf" --seed 2 --out "$tmp/runB" --quiet >/dev/null

# the scorer under test
"$FREEAIR_BIN" eval --model "$tmp/runA" --model "$tmp/runB/best.safetensors" --manifest "$tmp/syn/split.csv" \
  --group-by unit --bootstrap 50 -o "$tmp/ev" --quiet 2>"$tmp/ev.err"

# the reference path: predict, then eval --predictions on the same rows
for r in runA runB; do
  "$FREEAIR_BIN" predict --model "$tmp/$r" --quiet "$tmp/syn/split.csv" >"$tmp/$r.csv"
done
"$REF_PYTHON" - "$tmp" <<'PY'
import csv, sys
tmp = sys.argv[1]
man = {r["path"]: r for r in csv.DictReader(open(f"{tmp}/syn/split.csv"))}
out = []
for run in ("runA", "runB"):
    for r in csv.DictReader(open(f"{tmp}/{run}.csv")):
        m = man[r["path"]]
        out.append({"model": run, "path": r["path"], "probability": r["probability"], "status": r["status"],
                    "label": r["label"], "patient_id": r["patient_id"], "split": r["split"], "unit": m["unit"]})
w = csv.DictWriter(open(f"{tmp}/pred.csv", "w", newline=""), fieldnames=list(out[0]))
w.writeheader(); w.writerows(out)
PY
"$FREEAIR_BIN" eval --predictions "$tmp/pred.csv" --group-by unit --bootstrap 50 -o "$tmp/ref" --quiet 2>/dev/null

"$REF_PYTHON" - "$tmp" <<'PY'
import csv, json, math, sys
tmp = sys.argv[1]
a = json.load(open(f"{tmp}/ev/metrics.json")); b = json.load(open(f"{tmp}/ref/metrics.json"))
assert [m["name"] for m in a["models"]] == ["runA", "runB"], [m["name"] for m in a["models"]]
assert a["thresholds_locked"] is True

def same(x, y, path):
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), (path, sorted(x), sorted(y) if isinstance(y, dict) else y)
        for k in x: same(x[k], y[k], path + "." + k)
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), (path, len(x), y if not isinstance(y, list) else len(y))
        for i, (p, q) in enumerate(zip(x, y)): same(p, q, f"{path}[{i}]")
    elif isinstance(x, float) or isinstance(y, float):
        assert x is not None and y is not None and (abs(x - y) <= 1e-9 or (math.isnan(x) and math.isnan(y))), (path, x, y)
    else:
        assert x == y, (path, x, y)

# every per-model number and every paired comparison (inputs and provenance differ by design)
for ma, mb in zip(a["models"], b["models"]):
    same(ma, mb, "models." + ma["name"])
same(a["comparisons"], b["comparisons"], "comparisons")
auc = [m["overall"]["auc"]["estimate"] for m in a["models"]]
assert len(a["comparisons"]) >= 1 and a["comparisons"][0]["delong"]["p_value"] is not None

# predictions.csv: same scored rows, all manifest columns kept, scores equal to predict's 9 digits
pa = list(csv.DictReader(open(f"{tmp}/ev/predictions.csv")))
man = list(csv.DictReader(open(f"{tmp}/syn/split.csv")))
ok = [r for r in man if r["split"] in ("val", "test") and r.get("status", "ok") == "ok"]
assert len(pa) == 2 * len(ok), (len(pa), len(ok))
cols = set(pa[0])
missing = [c for c in man[0] if c not in cols]
assert not missing, f"manifest columns missing from predictions.csv: {missing}"
pred = {}
for run in ("runA", "runB"):
    for r in csv.DictReader(open(f"{tmp}/{run}.csv")):
        if r["status"] == "ok": pred[(run, r["path"])] = float(r["probability"])
for r in pa:
    assert abs(float(r["score"]) - pred[(r["model"], r["id"])]) < 1e-8, r
print(f"eval --model == predict + eval --predictions: AUC {auc[0]:.6f} / {auc[1]:.6f}, {len(ok)} images each")
PY

# bad input: a clear one-line error, exit 1
if "$FREEAIR_BIN" eval --model "$tmp/nothere" --manifest "$tmp/syn/split.csv" -o "$tmp/bad" --quiet 2>"$tmp/e1"; then
  echo "FAIL: a missing checkpoint was accepted"; exit 1; fi
grep -q "nothere" "$tmp/e1" || { echo "FAIL: error does not name the checkpoint:"; cat "$tmp/e1"; exit 1; }
if "$FREEAIR_BIN" eval --model "$tmp/runA" --manifest "$tmp/syn/split.csv" --group-by nosuchcol -o "$tmp/bad" --quiet 2>"$tmp/e2"; then
  echo "FAIL: a missing group-by column was accepted"; exit 1; fi
grep -q "nosuchcol" "$tmp/e2" || { echo "FAIL:"; cat "$tmp/e2"; exit 1; }
echo "eval --model ok"
