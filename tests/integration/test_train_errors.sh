#!/usr/bin/env bash
# test_train_errors.sh - bad inputs to `freeair train` give exactly one line
# "freeair train: <file>: <reason>" naming the file (and line and key for
# configs) and a non-zero exit, never a crash: corrupt configs, missing
# files, a manifest without labels, a checkpoint of another architecture
# (as --pretrained and on --resume), and a run that diverges to NaN/Inf,
# which stops and keeps its last good checkpoint.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}"
# The test machine's 2 cores are shared: spinning OpenMP workers would wait
# on each other (and on the loader thread) for most of the run.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/train_tiny_data.py" "$tmp/data" --train 16 --val 8 --size 40
base="arch = resnet18
image_size = 32
epochs = 1
batch_size = 8
threads = 2
manifest = $tmp/data/manifest.csv
out = $tmp/out"
printf '%s\n' "$base" >"$tmp/ok.conf"

# expect_fail WANT_RC PATTERN... -- ARGS: exit status WANT_RC, one stderr line
# matching every PATTERN (extended regex).
expect_fail() {
  local want=$1; shift
  local pats=()
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done
  shift
  set +e
  "$FREEAIR_BIN" train "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  set -e
  if [ "$rc" -ne "$want" ]; then echo "FAIL: exit $rc (want $want) for: $*"; cat "$tmp/stderr"; exit 1; fi
  if [ "$(wc -l <"$tmp/stderr")" -ne 1 ]; then echo "FAIL: not one line for: $*"; cat "$tmp/stderr"; exit 1; fi
  grep -q '^freeair train: ' "$tmp/stderr" || { echo "FAIL: no prefix: $(cat "$tmp/stderr")"; exit 1; }
  for p in "${pats[@]}"; do
    grep -Eq -- "$p" "$tmp/stderr" || { echo "FAIL: '$(cat "$tmp/stderr")' lacks /$p/ for: $*"; exit 1; }
  done
  echo "ok: $(cat "$tmp/stderr")"
}

# corrupt configs: file, line, key
printf '%s\nlearning_rate = 0.1\n' "$base" >"$tmp/c1.conf"
expect_fail 1 "c1.conf:8" "unknown key 'learning_rate'" -- --config "$tmp/c1.conf"
printf 'epochs = many\n' >"$tmp/c2.conf"
expect_fail 1 "c2.conf:1" "key 'epochs'" -- --config "$tmp/c2.conf"
printf 'lr 0.1\n' >"$tmp/c3.conf"
expect_fail 1 "c3.conf:1" "key = value" -- --config "$tmp/c3.conf"
head -c 3000 /dev/urandom >"$tmp/c4.conf"
set +e; "$FREEAIR_BIN" train --config "$tmp/c4.conf" 2>"$tmp/stderr"; rc=$?; set -e
[ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/stderr")" -eq 1 ] && grep -q "c4.conf" "$tmp/stderr" || {
  echo "FAIL: random bytes as config: rc $rc"; cat "$tmp/stderr"; exit 1; }
expect_fail 1 "command line" "key 'momentum'" -- --config "$tmp/ok.conf" --momentum 2
expect_fail 2 "unknown option '--lrate'" -- --config "$tmp/ok.conf" --lrate 1
expect_fail 1 "micro_batch" -- --config "$tmp/ok.conf" --micro_batch 64

# the shipped training configs parse (the run then stops at the missing data);
# configs/serve.conf is the triage node's, not a training config
for conf in "$FREEAIR_ROOT"/configs/study.conf "$FREEAIR_ROOT"/configs/demo-fast.conf; do
  expect_fail 1 "nothere.csv" -- --config "$conf" --manifest "$tmp/nothere.csv" --pretrained ""
done

# missing files
expect_fail 1 "nothere.conf" -- --config "$tmp/nothere.conf"
expect_fail 1 "nothere.csv" -- --config "$tmp/ok.conf" --manifest "$tmp/nothere.csv"
expect_fail 1 "nothere.safetensors" -- --config "$tmp/ok.conf" --pretrained "$tmp/nothere.safetensors"
expect_fail 1 "nothere" -- --resume "$tmp/nothere"
sed 's/^img\/train_0003.png/img\/gone.png/' "$tmp/data/manifest.csv" >"$tmp/data/gone.csv"
expect_fail 1 "gone.csv: row 4" "gone.png" -- --config "$tmp/ok.conf" --manifest "$tmp/data/gone.csv"

# a manifest without labels, or with a bad one
cut -d, -f1,3 "$tmp/data/manifest.csv" >"$tmp/data/nolabel.csv"
expect_fail 1 "nolabel.csv" "no 'label' column" -- --config "$tmp/ok.conf" --manifest "$tmp/data/nolabel.csv"
sed '3s/,1,/,,/' "$tmp/data/manifest.csv" >"$tmp/data/emptylabel.csv"
expect_fail 1 "emptylabel.csv" "row 2" "no label" -- --config "$tmp/ok.conf" --manifest "$tmp/data/emptylabel.csv"

# a good run, then its checkpoint used for another architecture
"$FREEAIR_BIN" train --config "$tmp/ok.conf" --quiet >/dev/null
expect_fail 1 "last.safetensors" "arch" -- --resume "$tmp/out" --arch resnet50 --epochs 2
expect_fail 1 "pretrained" -- --config "$tmp/ok.conf" --arch densenet121 --pretrained "$tmp/out/last.safetensors" --out "$tmp/o2"
printf 'not a safetensors file' >"$tmp/bad.safetensors"
expect_fail 1 "bad.safetensors" -- --resume "$tmp/bad.safetensors"

# predict --model with something that is not a usable checkpoint
for bad in "$tmp/bad.safetensors" "$tmp/nothere" "$tmp/imagenet_like.safetensors"; do
  [ "$bad" = "$tmp/imagenet_like.safetensors" ] && "$REF_PYTHON" - "$tmp/out/last.safetensors" "$bad" <<'PY'
import json, struct, sys
d = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n]); h["__metadata__"] = {"format": "pt"}   # weights without checkpoint metadata
hdr = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hdr)) + hdr + d[8 + n:])
PY
  set +e; "$FREEAIR_BIN" predict --model "$bad" "$tmp/data/img/val_0000.png" >/dev/null 2>"$tmp/stderr"; rc=$?; set -e
  [ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/stderr")" -eq 1 ] && grep -q "^freeair predict: .*$(basename "$bad")" "$tmp/stderr" || {
    echo "FAIL: predict --model $bad: rc $rc"; cat "$tmp/stderr"; exit 1; }
  echo "ok: $(cat "$tmp/stderr")"
done

# divergence: stops with a clear message, keeps the last good checkpoint
expect_fail 1 "NaN or Inf" "last good checkpoint" -- --config "$tmp/ok.conf" --out "$tmp/nan" --lr 100000 \
  --epochs 3 --checkpoint_steps 1 --quiet
"$REF_PYTHON" - "$tmp/nan/last.safetensors" <<'PY'
import json, math, struct, sys
d = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n]); body = d[8 + n:]
for name, t in h.items():
    if name == "__metadata__" or t["dtype"] != "F32": continue
    b, e = t["data_offsets"]
    vals = struct.unpack("<%df" % ((e - b) // 4), body[b:e])
    assert all(math.isfinite(v) for v in vals), name + " is not finite in the kept checkpoint"
print("kept checkpoint is finite")
PY
echo "all error cases give one line"
