#!/usr/bin/env bash
# test_split_protocol.sh - `freeair split` on a cohort shaped like the study
# (1,287 ok images of 1,124 patients; Philips fixed units at the academic
# hospital form the pool; portable units and other vendors 402 images,
# 214+/188-), checked in Python: the protocol gives exactly 375+/375- train
# and 45+/90- validation drawn from the pool and 402 test images; no patient
# spans two partitions; rows not ok take no part; the same seed reproduces
# the file byte for byte and another seed changes it; the JSON summary agrees
# with the CSV; fractions and k-fold modes keep patients whole and stratify;
# impossible counts and bad options fail with one clear line.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

"$REF_PYTHON" - <<'EOF'
import csv, random
random.seed(1)
std = ["path", "status", "reason", "patient_id", "study_uid", "series_uid", "sop_uid", "modality",
       "body_part", "view", "manufacturer", "model", "station", "institution", "sex", "age",
       "acquisition_date", "rows", "columns", "pixel_spacing", "bits_stored", "photometric",
       "transfer_syntax", "presentation_intent"]
rows, pid = [], 0
def patients(n_img, n_pos, second, make):
    """n_img images with n_pos positives; `second` patients have 2 images of one label."""
    global pid
    labels = [1] * n_pos + [0] * (n_img - n_pos)
    random.shuffle(labels)
    i = 0
    # Pair up images of the same label for the two-image patients.
    pos = [l for l in labels if l == 1]; neg = [l for l in labels if l == 0]
    groups = []
    for k in range(second):
        src = pos if (k % 2 == 0 and len(pos) >= 2) else neg
        groups.append([src.pop(), src.pop()])
    groups += [[l] for l in pos + neg]
    random.shuffle(groups)
    for g in groups:
        pid += 1
        for j, l in enumerate(g):
            rows.append(make("P%05d" % pid, j, l))
def pool_row(p, j, l):
    return {"path": "img/%s_%d.dcm" % (p, j), "status": "ok", "patient_id": p, "modality": "CR",
            "manufacturer": random.choice(["Philips Medical Systems", "PHILIPS"]), "unit": "fixed",
            "hospital": "academic", "label": l}
def other_row(p, j, l):
    v = random.choice(["FUJIFILM Corporation", "SIEMENS", "Kodak", "KONICA MINOLTA", "Philips Medical Systems"])
    unit = "portable" if v.startswith("Philips") else random.choice(["portable", "fixed"])
    return {"path": "img/%s_%d.dcm" % (p, j), "status": "ok", "patient_id": p, "modality": "DX",
            "manufacturer": v, "unit": unit, "hospital": random.choice(["academic", "community"]), "label": l}
patients(885, 420, 120, pool_row)     # 765 patients
patients(402, 214, 43, other_row)     # 359 patients -> 1124 in all
# Rows that must take no part: excluded and error images of new patients.
for k in range(30):
    rows.append({"path": "img/X%03d.dcm" % k, "status": random.choice(["excluded", "error"]),
                 "reason": "not_chest: body part HIP", "patient_id": "X%03d" % k, "label": k % 2,
                 "manufacturer": "PHILIPS", "unit": "fixed", "hospital": "academic"})
random.shuffle(rows)
with open("cohort.csv", "w", newline="") as f:
    w = csv.DictWriter(f, std + ["label", "unit", "hospital"], restval="")
    w.writeheader()
    w.writerows(rows)
assert len({r["patient_id"] for r in rows if r["status"] == "ok"}) == 1124
EOF

POOL="manufacturer=Philips*,unit=fixed,hospital=academic"
PROTO=(--pool "$POOL" --train-pos 375 --train-neg 375 --val-pos 45 --val-neg 90)
"$FREEAIR_BIN" split --manifest cohort.csv -o s1.csv --seed 7 "${PROTO[@]}" --json s1.json >summary.txt
cat summary.txt
"$FREEAIR_BIN" split --manifest cohort.csv -o s2.csv --seed 7 "${PROTO[@]}" >/dev/null
cmp s1.csv s2.csv
"$FREEAIR_BIN" split --manifest cohort.csv -o s3.csv --seed 8 "${PROTO[@]}" >/dev/null
if cmp -s s1.csv s3.csv; then echo "seed 8 gave the same split as seed 7"; exit 1; fi

"$REF_PYTHON" - <<'EOF'
import csv, json, fnmatch
from collections import defaultdict
bad = []
def load(p):
    return list(csv.DictReader(open(p, newline="")))
def in_pool(r):
    return (fnmatch.fnmatch(r["manufacturer"].lower(), "philips*") and r["unit"].lower() == "fixed"
            and r["hospital"].lower() == "academic")
def check_groups(rows, col, name):
    parts = defaultdict(set)
    for r in rows:
        if r[col]:
            parts[r["patient_id"]].add(r[col])
    n = sum(1 for v in parts.values() if len(v) > 1)
    if n:
        bad.append("%s: %d patients in two partitions" % (name, n))
for name in ("s1.csv", "s3.csv"):
    rows = load(name)
    cnt = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["status"] != "ok":
            if r["split"]:
                bad.append("%s: %s is %s but has split %s" % (name, r["path"], r["status"], r["split"]))
            continue
        cnt[r["split"]][int(r["label"])] += 1
        if r["split"] in ("train", "val") and not in_pool(r):
            bad.append("%s: %s in %s is outside the pool" % (name, r["path"], r["split"]))
    want = {"train": [375, 375], "val": [90, 45], "test": [188, 214]}
    for k, v in want.items():
        if cnt[k] != v:
            bad.append("%s: %s has %d-/%d+, want %d-/%d+" % (name, k, cnt[k][0], cnt[k][1], v[0], v[1]))
    if set(cnt) != set(want):
        bad.append("%s: partitions %s" % (name, sorted(cnt)))
    check_groups(rows, "split", name)
s = json.load(open("s1.json"))
rows = load("s1.csv")
for part in ("train", "val", "test"):
    sel = [r for r in rows if r["split"] == part]
    got = s["parts"][part]
    ref = {"images": len(sel), "patients": len({r["patient_id"] for r in sel}),
           "pos": sum(r["label"] == "1" for r in sel), "neg": sum(r["label"] == "0" for r in sel)}
    for k, v in ref.items():
        if got[k] != v:
            bad.append("json %s.%s = %s, CSV says %s" % (part, k, got[k], v))
if s["patients_in_two_partitions"] != 0 or s["ok"] != 1287 or s["left_out"] != 30 or s["patients"] != 1124:
    bad.append("json header %s" % {k: v for k, v in s.items() if k != "parts"})
for b in bad:
    print("MISMATCH", b)
raise SystemExit(1 if bad else 0)
EOF
grep -q "^train *750 " summary.txt
grep -q "none in two partitions" summary.txt

# Pool leftovers marked unused (smaller train): test keeps only non-pool images.
"$FREEAIR_BIN" split --manifest cohort.csv -o u.csv --seed 7 --pool "$POOL" --train-pos 300 --train-neg 300 \
  --val-pos 45 --val-neg 90 --leftover unused >u.txt
grep -q "^test *402 " u.txt
grep -q "^unused *150 " u.txt

# Fractions and k-fold keep patients whole and stratify.
"$FREEAIR_BIN" split --manifest cohort.csv -o f.csv --seed 3 --fractions 0.6,0.2,0.2 >/dev/null
"$FREEAIR_BIN" split --manifest cohort.csv -o k.csv --seed 3 --kfold 5 >/dev/null
"$REF_PYTHON" - <<'EOF'
import csv
from collections import defaultdict
bad = []
for name, col, parts in (("f.csv", "split", ["train", "val", "test"]), ("k.csv", "fold", ["0", "1", "2", "3", "4"])):
    rows = [r for r in csv.DictReader(open(name, newline="")) if r["status"] == "ok"]
    by_pat = defaultdict(set)
    for r in rows:
        by_pat[r["patient_id"]].add(r[col])
    if any(len(v) != 1 for v in by_pat.values()):
        bad.append(name + ": a patient spans two partitions")
    frac = {}
    for p in parts:
        sel = [r for r in rows if r[col] == p]
        frac[p] = sum(r["label"] == "1" for r in sel) / max(1, len(sel))
    # Every partition holds about the cohort's positive fraction (0.50).
    if max(frac.values()) - min(frac.values()) > 0.05:
        bad.append("%s: positive fraction per partition %s" % (name, frac))
    if name == "k.csv":
        sizes = [sum(r[col] == p for r in rows) for p in parts]
        if max(sizes) - min(sizes) > 4:
            bad.append("k.csv: fold sizes %s" % sizes)
for b in bad:
    print("MISMATCH", b)
raise SystemExit(1 if bad else 0)
EOF

# Impossible counts, unknown pool column, bad options.
if "$FREEAIR_BIN" split --manifest cohort.csv -o x.csv --pool "$POOL" --train-pos 500 --train-neg 10 \
  --val-pos 1 --val-neg 1 >/dev/null 2>e1.txt; then exit 1; fi
grep -q "^freeair split: cohort.csv: impossible counts: train+val need 501 positive" e1.txt
[ ! -e x.csv ]
if "$FREEAIR_BIN" split --manifest cohort.csv -o x.csv --pool "vendor=x" --train-pos 1 --train-neg 1 \
  --val-pos 1 --val-neg 1 >/dev/null 2>e2.txt; then exit 1; fi
grep -q "pool column 'vendor' is not in the manifest" e2.txt
set +e
"$FREEAIR_BIN" split --manifest cohort.csv -o x.csv --fractions 0.5,0.5,0.5 >/dev/null 2>&1; r1=$?
"$FREEAIR_BIN" split --manifest cohort.csv -o x.csv --train-pos 3 >/dev/null 2>&1; r2=$?
"$FREEAIR_BIN" split -o x.csv >/dev/null 2>&1; r3=$?
set -e
[ "$r1" -eq 2 ] && [ "$r2" -eq 2 ] && [ "$r3" -eq 2 ]
echo "test_split_protocol: ok"
