#!/usr/bin/env bash
# test_demo_tiny.sh - CI's reduced `freeair demo`: the tiny synthetic cohort,
# one epoch, small resolution, end to end (synth -> scan -> split -> cache ->
# train x2 -> score -> eval -> cam -> report). Checks, in Python, that
#   - report.html is one self-contained page with the synthetic-cohort
#     banner, a ROC chart (inline SVG) and no script or external load;
#   - report.json parses and holds the cohort (synthetic, how it was made),
#     both models with test AUC and operating points locked on validation,
#     and the subgroup tables the demo asks for;
#   - the split follows the study's protocol: train/val only from fixed
#     Philips units at the academic hospital, no patient in two partitions,
#     counts equal to split.json;
#   - the test AUC in metrics.json equals scikit-learn's on predictions.csv;
#   - demo.jsonl is valid JSON lines with a stage_done per stage;
#   - a second run skips every stage (resume) and prints the same summary;
#   - bad options exit 2 (missing ImageNet weights for --full: 1) before
#     anything is written; a failing stage exits 1 with one line naming it.
set -euo pipefail
# Shared 2-core machine: passive OpenMP workers instead of spinning ones (as
# test_train_tiny.sh).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out="$tmp/demo"

"$FREEAIR_BIN" demo --preset tiny --epochs 1 --out "$out" >"$tmp/run1.out" 2>"$tmp/run1.err" || {
  echo "demo failed:"; tail -n 30 "$tmp/run1.err"; exit 1; }
cat "$tmp/run1.out"

for f in report.html report.json demo.jsonl study/metrics.json study/cohort.json study/predictions.csv \
         study/manifest.csv work/split.json study/cam/index.csv; do
  [ -s "$out/$f" ] || { echo "missing output $f"; exit 1; }
done
grep -q "^freeair demo finished in .* Report: $out/report.html" "$tmp/run1.out"
grep -q "^cohort: SYNTHETIC 'tiny' preset" "$tmp/run1.out"
grep -q "^best model by validation AUC: .* test AUC" "$tmp/run1.out"
grep -q "^at the threshold locked on validation (youden" "$tmp/run1.out"

OUT="$out" "$REF_PYTHON" - <<'EOF'
import csv, fnmatch, json, math, os, re, sys
from sklearn.metrics import roc_auc_score

out = os.environ["OUT"]
fail = []
def check(cond, what):
    if not cond:
        fail.append(what)

# --- report.html: self-contained, banner, ROC svg
html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
check(html.lstrip().lower().startswith("<!doctype html"), "html doctype")
check('id="synthetic-banner"' in html, "synthetic banner")
check(re.search(r"Synthetic cohort", html) is not None, "banner text")
roc = html.find('id="roc"')
check(roc >= 0 and "<svg" in html[roc:roc + 200000], "ROC section with inline svg")
check("<script" not in html.lower(), "no script")
check(re.search(r'(src|href)\s*=\s*"(https?:)?//', html) is None, "no external load")
check(html.rstrip().endswith("</html>"), "html complete")

# --- report.json
rep = json.load(open(os.path.join(out, "report.json")))
check(rep.get("synthetic") is True, "report.json synthetic true")
coh = rep.get("cohort") or {}
check(coh.get("synthetic") is True, "cohort.synthetic")
check("freeair synth --preset tiny" in coh.get("generator", ""), "cohort.generator says how")
check("synthetic" in coh.get("description", "").lower(), "cohort.description")
m = rep.get("metrics") or json.load(open(os.path.join(out, "study/metrics.json")))
models = {x["name"]: x for x in m["models"]}
check(sorted(models) == ["densenet161", "resnet50"], "models %s" % sorted(models))
check(m.get("thresholds_locked") is True, "thresholds locked on validation")
want_groups = {"unit", "manufacturer", "hospital", "view", "free_air_size", "free_air_side"}
for name, mod in models.items():
    ov = mod["overall"]
    check(ov["n"] > 0 and ov["n_pos"] > 0 and ov["n_neg"] > 0, name + " test counts")
    auc = ov["auc"]["estimate"]
    check(auc is None or 0 <= auc <= 1, name + " auc range")
    check(mod["validation"]["n"] > 0, name + " validation rows")
    yo = [t for t in mod["thresholds"] if t["rule"] == "youden"]
    check(yo and yo[0]["locked"] and yo[0]["source"] == "validation", name + " youden locked on validation")
    groups = {s["column"] for s in mod["subgroups"]}
    check(want_groups <= groups, name + " subgroups %s" % sorted(groups))
check(len(m.get("comparisons", [])) >= 1, "paired comparison")

# --- split protocol on the manifest the report used
rows = list(csv.DictReader(open(os.path.join(out, "study/manifest.csv"))))
split_json = json.load(open(os.path.join(out, "work/split.json")))
parts = {}
for r in rows:
    parts.setdefault(r["split"], []).append(r)
    if r["split"] in ("train", "val"):
        check(fnmatch.fnmatch(r["manufacturer"].lower(), "philips*") and r["unit"] == "fixed"
              and r["hospital_type"] == "academic", "pool row " + r["path"])
owner = {}
for r in rows:
    if r["split"]:
        check(owner.setdefault(r["patient_id"], r["split"]) == r["split"], "patient in two splits " + r["patient_id"])
for p in ("train", "val", "test"):
    got = parts.get(p, [])
    sj = split_json["parts"][p]
    check(len(got) == sj["images"], p + " image count")
    check(sum(r["label"] == "1" for r in got) == sj["pos"], p + " positives")
check(sum(r["label"] == "1" for r in parts["val"]) >= 2 and sum(r["label"] == "0" for r in parts["val"]) >= 2,
      "validation has two of each class")
def in_pool(r):
    return (fnmatch.fnmatch(r["manufacturer"].lower(), "philips*") and r["unit"] == "fixed"
            and r["hospital_type"] == "academic")
check(all(r["split"] == "test" for r in rows if r["status"] == "ok" and not in_pool(r)),
      "every image outside the pool (portable units, other vendors/hospitals) is test")
check(any(not in_pool(r) for r in parts["test"]), "test holds non-pool images")

# --- the metrics agree with an independent AUC on the demo's predictions
preds = list(csv.DictReader(open(os.path.join(out, "study/predictions.csv"))))
for name, mod in models.items():
    test = [r for r in preds if r["model"] == name and r["split"] == "test"]
    check(len(test) == mod["overall"]["n"], name + " predictions rows")
    y = [int(r["label"]) for r in test]
    s = [float(r["score"]) for r in test]
    ref = roc_auc_score(y, s)
    est = mod["overall"]["auc"]["estimate"]
    check(est is not None and abs(ref - est) < 1e-9, "%s AUC %s vs sklearn %s" % (name, est, ref))

# --- JSON-lines log
events = [json.loads(l) for l in open(os.path.join(out, "demo.jsonl")) if l.strip()]
done = {e["stage"] for e in events if e.get("event") == "stage_done"}
stages = {"synth", "scan", "split", "cache", "train-resnet50", "train-densenet161", "score", "eval", "cam", "report"}
check(stages <= done, "stage_done events %s" % sorted(done))
check(events[-1]["event"] == "demo_done", "last event demo_done")
check(any(e.get("event") == "summary" for e in events), "summary event")

if fail:
    print("FAILED:", *fail, sep="\n  ")
    sys.exit(1)
print("report, metrics, split protocol, AUC and log checks passed")
EOF

# A re-run resumes: every stage is up to date, the summary is the same.
"$FREEAIR_BIN" demo --preset tiny --epochs 1 --out "$out" >"$tmp/run2.out" 2>"$tmp/run2.err"
skipped=$(grep -c "up to date, skipped" "$tmp/run2.err" || true)
[ "$skipped" -eq 10 ] || { echo "re-run skipped $skipped of 10 stages"; cat "$tmp/run2.err"; exit 1; }
diff <(grep -v "^freeair demo finished" "$tmp/run1.out") <(grep -v "^freeair demo finished" "$tmp/run2.out")

# Usage errors exit 2; a failing stage exits 1 with one line naming it.
set +e
"$FREEAIR_BIN" demo --preset huge --out "$tmp/x" 2>"$tmp/e1"; rc1=$?
"$FREEAIR_BIN" demo --archs resnet50,nosuchnet --out "$tmp/x" 2>"$tmp/e2"; rc2=$?
"$FREEAIR_BIN" demo --full --preset tiny --out "$tmp/x" 2>"$tmp/e4"; rc4=$?
"$FREEAIR_BIN" demo --full --pretrained-dir "$tmp/noweights" --out "$tmp/x" 2>"$tmp/e5"; rc5=$?
mkdir -p "$tmp/bad" && echo "not a folder" >"$tmp/bad/cohort"
"$FREEAIR_BIN" demo --preset tiny --out "$tmp/bad" >/dev/null 2>"$tmp/e3"; rc3=$?
set -e
[ "$rc1" -eq 2 ] && grep -q "^freeair demo: --preset: 'huge'" "$tmp/e1" || { echo "bad preset: rc $rc1"; cat "$tmp/e1"; exit 1; }
[ "$rc2" -eq 2 ] && grep -q "unknown architecture 'nosuchnet'" "$tmp/e2" || { echo "bad arch: rc $rc2"; cat "$tmp/e2"; exit 1; }
[ "$rc4" -eq 2 ] || { echo "--full --preset: rc $rc4"; cat "$tmp/e4"; exit 1; }
[ "$rc5" -eq 1 ] && grep -q "noweights/resnet50.safetensors: no ImageNet weights" "$tmp/e5" || {
  echo "missing weights: rc $rc5"; cat "$tmp/e5"; exit 1; }
[ ! -e "$tmp/x" ] || { echo "a refused run created its output folder"; exit 1; }
[ "$rc3" -eq 1 ] && tail -n 1 "$tmp/e3" | grep -q "^freeair demo: stage synth: " || {
  echo "failing stage: rc $rc3"; cat "$tmp/e3"; exit 1; }
echo "test_demo_tiny: ok"
