#!/usr/bin/env bash
# freeair predict on PNGs against torchvision: probabilities for 8-bit,
# 16-bit and colour PNGs (fp32 and bf16, F32 and BF16 weight files), batches
# that do not divide the image count, a bad image in the middle of a batch,
# and one-line errors for bad arguments and bad weight files.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$REF_PYTHON $FREEAIR_ROOT/tests/ref/torch_predict.py"
fail() { echo "FAIL: $*"; exit 1; }
# Exactly one line on stderr that contains every given pattern.
one_line() {
  local f=$1; shift
  [ "$(wc -l < "$f")" -eq 1 ] || { cat "$f"; fail "expected one line of stderr"; }
  for p in "$@"; do grep -qF -- "$p" "$f" || { cat "$f"; fail "stderr lacks '$p'"; }; done
}

d="$tmp/r18"
$ref make "$d" resnet18 64
good=("$d"/good8_0.png "$d"/good16_0.png "$d"/good8_1.png "$d"/good16_1.png "$d"/good8_2.png "$d"/good16_2.png "$d"/rgb.png)

# fp32, batch 3 over 7 images (a padded last batch).
"$FREEAIR_BIN" predict --arch resnet18 --weights "$d/weights.safetensors" --size 64 --batch 3 "${good[@]}" \
  > "$tmp/out.csv"
$ref compare "$d/expected.csv" "$tmp/out.csv" 1e-5
[ "$(head -1 "$tmp/out.csv")" = "path,probability" ] || fail "no CSV header"

# Bad images among good ones: reported one line each, the rest still scored.
set +e
"$FREEAIR_BIN" predict --arch resnet18 --weights "$d/weights.safetensors" --size 64 --batch 4 \
  "${good[0]}" "$d/wrong_size.png" "${good[1]}" "$d/not_png.png" "$d/truncated.png" "$d/missing.png" \
  "${good[2]}" "${good[3]}" "${good[4]}" "${good[5]}" "${good[6]}" > "$tmp/mixed.csv" 2> "$tmp/mixed.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "exit $rc with bad images, want 1"
$ref compare "$d/expected.csv" "$tmp/mixed.csv" 1e-5
grep -q "wrong_size.png: image is 65x64, the model expects 64x64" "$tmp/mixed.err" || fail "wrong size not reported"
grep -q "not_png.png: not a PNG image" "$tmp/mixed.err" || fail "JPEG not reported"
grep -q "truncated.png" "$tmp/mixed.err" || fail "truncated PNG not reported"
grep -q "missing.png" "$tmp/mixed.err" || fail "missing file not reported"
grep -q "4 of 11 image(s) could not be scored" "$tmp/mixed.err" || fail "no summary"
[ "$(wc -l < "$tmp/mixed.err")" -eq 5 ] || { cat "$tmp/mixed.err"; fail "expected 4 errors + summary"; }

# bf16 compute: within the issue's bf16 tolerance of fp32 torch.
"$FREEAIR_BIN" predict --arch resnet18 --weights "$d/weights.safetensors" --size 64 --precision bf16 \
  "${good[@]}" > "$tmp/bf16.csv"
$ref compare "$d/expected.csv" "$tmp/bf16.csv" 2e-2

# BF16 weight file (torch-written) and Inception at 299 with transform_input
# from the file's metadata and the training-only aux head present.
d2="$tmp/inc"
$ref make "$d2" inception_v3 299 --weights-dtype BF16
"$FREEAIR_BIN" predict --arch inception_v3 --weights "$d2/weights.safetensors" --batch 4 \
  "$d2"/good8_0.png "$d2"/good16_0.png "$d2"/good8_1.png "$d2"/good16_1.png "$d2"/good8_2.png \
  "$d2"/good16_2.png "$d2"/rgb.png > "$tmp/inc.csv"
$ref compare "$d2/expected.csv" "$tmp/inc.csv" 1e-5

# Argument and weight-file errors: one line, non-zero exit, naming the cause.
expect_fail() { # want_rc pattern... -- args
  local want=$1; shift
  local pats=()
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done
  shift
  set +e
  "$FREEAIR_BIN" predict "$@" > "$tmp/o" 2> "$tmp/e"
  local rc=$?
  set -e
  [ $rc -eq "$want" ] || { cat "$tmp/e"; fail "predict $* exited $rc, want $want"; }
  one_line "$tmp/e" "${pats[@]}"
}
w="$d/weights.safetensors"
expect_fail 2 "unknown architecture 'resnet34'" "densenet161" -- --arch resnet34 --weights "$w" "${good[0]}"
expect_fail 2 "no images" -- --arch resnet18 --weights "$w"
expect_fail 2 "--precision fp16" -- --arch resnet18 --weights "$w" --precision fp16 "${good[0]}"
expect_fail 2 "--batch 0" -- --arch resnet18 --weights "$w" --batch 0 "${good[0]}"
expect_fail 1 "$tmp/none.safetensors" -- --arch resnet18 --weights "$tmp/none.safetensors" --size 64 "${good[0]}"
head -c 1000 "$w" > "$tmp/trunc.safetensors"
expect_fail 1 "$tmp/trunc.safetensors" "truncated" -- --arch resnet18 --weights "$tmp/trunc.safetensors" --size 64 "${good[0]}"
printf 'garbage' > "$tmp/garbage.safetensors"
expect_fail 1 "$tmp/garbage.safetensors" -- --arch resnet18 --weights "$tmp/garbage.safetensors" --size 64 "${good[0]}"
expect_fail 1 "weights are for resnet18, not resnet50" -- --arch resnet50 --weights "$w" --size 64 "${good[0]}"
# Same names, other shapes: a file whose metadata does not name the arch.
"$REF_PYTHON" - "$w" "$tmp/noarch.safetensors" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h.pop("__metadata__")
hb = json.dumps(h).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
expect_fail 1 "do not match the model" "missing 'layer1.0.conv3.weight'" -- --arch resnet50 --weights "$tmp/noarch.safetensors" --size 64 "${good[0]}"
# An image of the wrong size alone: scored nothing, exit 1, named.
set +e
"$FREEAIR_BIN" predict --arch resnet18 --weights "$w" "${good[0]}" > "$tmp/o" 2> "$tmp/e"; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "good8_0.png: image is 64x64, the model expects 224x224" "$tmp/e" || fail "default size not enforced"
echo "predict: ok"
