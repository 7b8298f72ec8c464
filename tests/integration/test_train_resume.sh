#!/usr/bin/env bash
# test_train_resume.sh - `freeair train --resume` continues exactly: a run
# killed with SIGKILL in the middle of an epoch and resumed from its last
# checkpoint ends with weights, momentum buffers, BatchNorm statistics and
# best-so-far bookkeeping identical, bit for bit, to an uninterrupted run
# (fp32, same threads). Also: resuming a finished run asks for more epochs,
# and extending --epochs on resume continues the same trajectory.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}"
# The test machine's 2 cores are shared: spinning OpenMP workers would wait
# on each other (and on the loader thread) for most of the run.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/train_tiny_data.py" "$tmp/data" --train 32 --val 16 --size 40
cat >"$tmp/run.conf" <<CONF
arch = resnet18
image_size = 32
epochs = 3
lr = 0.01
batch_size = 8
micro_batch = 4
rotation = 10
scale = 0.05
manifest = $tmp/data/manifest.csv
threads = 2
seed = 11
checkpoint_steps = 2
CONF
diff_ckpt() { "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/safetensors_diff.py" "$@"; }

# uninterrupted reference run
"$FREEAIR_BIN" train --config "$tmp/run.conf" --out "$tmp/a" --quiet

# the same run, killed with SIGKILL once step 5 (epoch 2 of 3, 4 steps each)
# is logged: it resumes from the checkpoint of step 4 and redoes step 5
"$FREEAIR_BIN" train --config "$tmp/run.conf" --out "$tmp/b" --quiet &
pid=$!
for _ in $(seq 1 1200); do
  if grep -q '"event":"step".*"global_step":5,' "$tmp/b/train.jsonl" 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || { echo "FAIL: the run ended before it could be killed"; exit 1; }
wait "$pid" 2>/dev/null || true
pid=
last_step=$(grep '"event":"step"' "$tmp/b/train.jsonl" | tail -1 | sed 's/.*"global_step":\([0-9]*\).*/\1/')
echo "killed after global step $last_step of 12"
[ "$last_step" -lt 12 ] || { echo "FAIL: the kill came after the last step"; exit 1; }

"$FREEAIR_BIN" train --resume "$tmp/b" --quiet
grep -q '"event":"resume"' "$tmp/b/train.jsonl"
diff_ckpt "$tmp/a/last.safetensors" "$tmp/b/last.safetensors" \
  --meta epoch,epoch_step,global_step,best_val_loss,best_epoch,val_loss,val_auc,train_loss,bad_epochs
diff_ckpt "$tmp/a/best.safetensors" "$tmp/b/best.safetensors" --meta epoch,val_loss
"$REF_PYTHON" - "$tmp/b/last.safetensors" <<'PY'
import json, struct, sys
d = open(sys.argv[1], "rb").read()
h = json.loads(d[8:8 + struct.unpack("<Q", d[:8])[0]])
m = h["__metadata__"]
assert any(k.startswith("optim.momentum.") for k in h), "no momentum buffers in the checkpoint"
for k in ("arch", "image_size", "preprocessing", "config", "manifest_sha256", "freeair_version", "rng", "sampler", "schedule", "metrics"):
    assert k in m, "metadata lacks " + k
assert m["arch"] == "resnet18" and m["image_size"] == "32" and m["epoch"] == "3", m
json.loads(m["metrics"])
PY

# a finished run: resuming needs more epochs; the lr may not change
if "$FREEAIR_BIN" train --resume "$tmp/b" --quiet 2>"$tmp/err"; then echo "FAIL: resumed a finished run"; exit 1; fi
grep -q "raise --epochs" "$tmp/err"
if "$FREEAIR_BIN" train --resume "$tmp/b" --epochs 4 --lr 0.5 --quiet 2>"$tmp/err"; then
  echo "FAIL: accepted a changed lr on resume"; exit 1
fi
grep -q "key 'lr'" "$tmp/err"
[ "$(wc -l <"$tmp/err")" -eq 1 ]

# extending a finished run by one epoch = a 4-epoch run from the start
"$FREEAIR_BIN" train --resume "$tmp/a" --epochs 4 --quiet
"$FREEAIR_BIN" train --config "$tmp/run.conf" --epochs 4 --checkpoint_steps 0 --out "$tmp/c" --quiet
diff_ckpt "$tmp/a/last.safetensors" "$tmp/c/last.safetensors" --meta epoch,global_step,best_epoch
echo "resume is exact"
