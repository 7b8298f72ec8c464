#!/usr/bin/env bash
# test_cam_gallery.sh - the evaluated-split pipeline end to end: a synthetic
# cohort (freeair synth) is scored, `freeair eval` fixes the outcomes,
# `freeair cam --predictions` picks TP/FP/FN/TN for the gallery and scores
# every test positive against its free-air mask, and `freeair report` embeds
# exactly the overlays. tests/ref/gradcam_gallery.py recomputes the picks,
# overlay pixels and localisation numbers independently (numpy, PIL, torch).
# Single-image mode over the cohort's manifest is checked the same way.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$FREEAIR_ROOT/tests/ref/gradcam_gallery.py"

"$FREEAIR_BIN" synth --out "$tmp/cohort" --preset tiny --limit 30 --seed 3 --quiet
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/gradcam_reference.py" resnet18 "$tmp/ref" --size 64 --methods gradcam \
  --freeair "$FREEAIR_BIN" >/dev/null
ckpt="$tmp/ref/model.safetensors"

"$REF_PYTHON" "$ref" scores "$tmp/cohort/manifest.csv" "$tmp/scores.csv"
"$FREEAIR_BIN" eval --predictions "$tmp/scores.csv" --group-by unit -o "$tmp/run" --bootstrap 0 --quiet
"$FREEAIR_BIN" cam --quiet --model "$ckpt" --predictions "$tmp/run/predictions.csv" \
  --manifest "$tmp/cohort/manifest.csv" --per-category 2 --all-positives -o "$tmp/run/cam"
"$FREEAIR_BIN" report "$tmp/run" -o "$tmp/run/report.html" --json "$tmp/run/report.json" >/dev/null
"$REF_PYTHON" "$ref" check-gallery "$tmp/run" "$tmp/cohort/manifest.csv" 2
# the report tables cam's localisation summary and copies it into report.json
grep -q '<h3 id="localisation">' "$tmp/run/report.html" || { echo "FAIL: no localisation table in the report"; exit 1; }
"$REF_PYTHON" -c 'import json, sys; assert json.load(open(sys.argv[1]))["localisation"] == json.load(open(sys.argv[2]))' \
  "$tmp/run/report.json" "$tmp/run/cam/localisation.json"

# Single-image mode over a manifest: overlays for every row, localisation
# wherever a mask exists; Grad-CAM++ and the turbo colormap on the way.
"$FREEAIR_BIN" cam --quiet --model "$ckpt" --method gradcam++ --colormap turbo "$tmp/cohort/manifest.csv" \
  -o "$tmp/single"
"$REF_PYTHON" "$ref" check-localisation "$tmp/single" "$tmp/cohort/manifest.csv"
n_rows=$(($(wc -l <"$tmp/cohort/manifest.csv") - 1))
n_png=$(find "$tmp/single" -maxdepth 1 -name '*.png' | wc -l)
[ "$n_png" -eq "$n_rows" ] || { echo "FAIL: $n_png overlays for $n_rows manifest rows"; exit 1; }
grep -q '"schema": "freeair.cam.localisation/1"' "$tmp/single/localisation.json"
grep -q '"method": "gradcam++"' "$tmp/single/localisation.json"
echo "gallery and localisation ok"
