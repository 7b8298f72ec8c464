#!/usr/bin/env bash
# test_train_tiny.sh - `freeair train` learns: resnet18 at 64 px on a tiny
# learnable image set reaches a validation AUC well above chance (> 0.75)
# within CI time, writes last/best/best_auc checkpoints, train.jsonl and
# config.conf; `freeair predict --model` on the validation split reproduces
# the checkpoint's validation AUC and loss (checked with scikit-learn) and
# applies the locked operating point. Then the study's pipeline end to end on
# `freeair synth --preset tiny`: split, cache, train from the cache, predict
# a DICOM folder with chest-gate refusals.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}"
# The test machine's 2 cores are shared: spinning OpenMP workers would wait
# on each other (and on the loader thread) for most of the run.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/train_tiny_data.py" "$tmp/data" --train 64 --val 32 --size 72 --seed 5
cat >"$tmp/run.conf" <<CONF
arch = resnet18
image_size = 64
epochs = 6
lr = 0.01
batch_size = 16
micro_batch = 8
schedule = cosine
rotation = 10
manifest = $tmp/data/manifest.csv
out = $tmp/run
threads = 2
seed = 3
operating_point = youden
keep_best_auc = true
CONF
"$FREEAIR_BIN" train --config "$tmp/run.conf" --quiet
for f in last.safetensors best.safetensors best_auc.safetensors train.jsonl config.conf; do
  [ -s "$tmp/run/$f" ] || { echo "FAIL: $f missing"; exit 1; }
done

"$FREEAIR_BIN" predict --model "$tmp/run" --split val --batch 8 --quiet "$tmp/data/manifest.csv" >"$tmp/val.csv"
"$FREEAIR_BIN" predict --model "$tmp/run/best.safetensors" --format json --quiet \
  "$tmp/data/img/val_0001.png" "$tmp/nothere.png" >"$tmp/one.json" && { echo "FAIL: missing input not reported"; exit 1; }

"$REF_PYTHON" - "$tmp" <<'PY'
import csv, json, math, struct, sys
from sklearn.metrics import roc_auc_score, log_loss
tmp = sys.argv[1]
recs = [json.loads(l) for l in open(f"{tmp}/run/train.jsonl")]
steps = [r for r in recs if r["event"] == "step"]
epochs = [r for r in recs if r["event"] == "epoch"]
assert len(steps) == 6 * 4 and len(epochs) == 6, (len(steps), len(epochs))
assert all(k in steps[0] for k in ("epoch", "step", "loss", "lr", "images_per_s"))
best_auc = max(e["val_auc"] for e in epochs)
print("val AUC per epoch:", [round(e["val_auc"], 3) for e in epochs])
assert best_auc > 0.75, f"validation AUC {best_auc} is not well above chance"
assert epochs[-1]["train_loss"] < epochs[0]["train_loss"], "training loss did not fall"

def meta(path):
    d = open(path, "rb").read()
    return json.loads(d[8:8 + struct.unpack("<Q", d[:8])[0]])["__metadata__"]
m = meta(f"{tmp}/run/best.safetensors")
assert m["kind"] == "best" and m["arch"] == "resnet18" and m["image_size"] == "64"
best = min(epochs, key=lambda e: e["val_loss"])
assert int(m["epoch"]) == best["epoch"], (m["epoch"], best)
assert meta(f"{tmp}/run/best_auc.safetensors")["kind"] == "best_auc"
thr = float(m["threshold"])
assert m["threshold_rule"] == "youden"

rows = list(csv.DictReader(open(f"{tmp}/val.csv")))
assert len(rows) == 32 and all(r["status"] == "ok" and r["split"] == "val" for r in rows)
y = [int(r["label"]) for r in rows]
p = [float(r["probability"]) for r in rows]
auc = roc_auc_score(y, p)
assert abs(auc - float(m["val_auc"])) < 1e-12, (auc, m["val_auc"])
ll = log_loss(y, p, labels=[0, 1])
assert abs(ll - float(m["val_loss"])) < 1e-5, (ll, m["val_loss"])
assert all(int(r["decision"]) == (float(r["probability"]) >= thr) for r in rows)
one = json.load(open(f"{tmp}/one.json"))
assert one["threshold"] == thr and one["arch"] == "resnet18"
pr = one["predictions"]
assert pr[0]["status"] == "ok" and abs(pr[0]["probability"] - p[1]) < 1e-8, (pr[0], p[1])  # CSV has 9 digits
assert pr[1]["status"] == "error" and "nothere.png" in pr[0]["path"] + pr[1]["path"]
print(f"predict reproduces validation: AUC {auc:.4f}, loss {ll:.4f}, threshold {thr:.4f}")
PY

# ImageNet-style pretrained weights: a 1000-class head is dropped and a new
# one-output head initialised; every other tensor is loaded unchanged (lr 0)
"$REF_PYTHON" - "$tmp/run/best.safetensors" "$tmp/imagenet.safetensors" <<'PY'
import json, struct, sys, random
d = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n]); body = d[8 + n:]
out, blobs, off = {}, [], 0
random.seed(1)
for name, t in h.items():
    if name == "__metadata__" or name.startswith("optim."): continue
    b, e = t["data_offsets"]; blob = body[b:e]; shape = t["shape"]
    if name == "fc.weight": shape = [1000, shape[1]]; blob = struct.pack("<%df" % (1000 * shape[1]), *[random.uniform(-1, 1) for _ in range(1000 * shape[1])])
    if name == "fc.bias": shape = [1000]; blob = struct.pack("<1000f", *[1.0] * 1000)
    out[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [off, off + len(blob)]}
    blobs.append(blob); off += len(blob)
hdr = json.dumps(out).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hdr)) + hdr + b"".join(blobs))
PY
"$FREEAIR_BIN" train --config "$tmp/run.conf" --pretrained "$tmp/imagenet.safetensors" --lr 0 --max_steps 1 \
  --out "$tmp/pre" --quiet >/dev/null
"$REF_PYTHON" - "$tmp/run/best.safetensors" "$tmp/pre/last.safetensors" <<'PY'
import json, struct, sys
def load(p):
    d = open(p, "rb").read(); n = struct.unpack("<Q", d[:8])[0]
    h = json.loads(d[8:8 + n]); h.pop("__metadata__")
    return {k: (t["shape"], d[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]) for k, t in h.items()}
a, b = load(sys.argv[1]), load(sys.argv[2])
trainable = [k for k in a if (k.endswith(".weight") or k.endswith(".bias")) and not k.startswith("optim.")]
for k in trainable:
    if k.startswith("fc."): continue
    assert a[k] == b[k], k + " was not loaded unchanged from the pretrained file"
assert b["fc.weight"][0] == [1, 512] and b["fc.weight"][1] != a["fc.weight"][1]
print(f"pretrained: {len(trainable) - 2} tensors loaded, 1000-class head replaced")
PY

# the pipeline on a synthetic DICOM cohort: synth -> split -> cache -> train -> predict
"$FREEAIR_BIN" synth --out "$tmp/syn" --preset tiny --quiet
"$FREEAIR_BIN" split --manifest "$tmp/syn/manifest.csv" -o "$tmp/syn/split.csv" --fractions 0.5,0.5,0 >/dev/null
"$FREEAIR_BIN" cache --manifest "$tmp/syn/split.csv" --out "$tmp/syn/cache" --short-side 64 --quiet >/dev/null
"$FREEAIR_BIN" train --config "$tmp/run.conf" --manifest "$tmp/syn/split.csv" --cache "$tmp/syn/cache" \
  --image_size 32 --epochs 1 --out "$tmp/synrun" --quiet
"$FREEAIR_BIN" predict --model "$tmp/synrun" --quiet "$tmp/syn/split.csv" "$FREEAIR_SHARED/testdata/dicom/udacity-AIHCND_C2_Starter" \
  >"$tmp/syn.csv" 2>"$tmp/syn.err"
"$REF_PYTHON" - "$tmp/syn.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ok = [r for r in rows if r["status"] == "ok"]
refused = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in rows if r["status"] == "refused"}
assert len(ok) >= 40, len(ok)
assert all(0 <= float(r["probability"]) <= 1 for r in ok)
assert "not_chest" in refused.get("test4.dcm", "") and "not_radiograph" in refused.get("test5.dcm", ""), refused
print(f"synthetic cohort: {len(ok)} scored, refused: {sorted(refused)}")
PY
echo "training learns and predict agrees"
