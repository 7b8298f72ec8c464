#!/usr/bin/env bash
# test_cam_errors.sh - `freeair cam` refuses what it cannot explain with one
# clear line and the right exit status: unknown layers (listing the valid
# ones), 1x1 layers, files the chest gate refuses or cannot read, files that
# are not checkpoints, bad tables and masks, usage errors. A real non-square
# chest radiograph (Philips CR, JPEG-LS) in the same run is still explained,
# with an overlay at its own aspect ratio.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin="$FREEAIR_BIN"
dcm="$FREEAIR_SHARED/testdata/dicom"
fail=0

# expect STATUS PATTERN CMD...: exit status and a stderr line matching PATTERN
expect() {
  local want="$1" pat="$2"
  shift 2
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL (exit $rc, want $want): $*"; sed 's/^/    /' "$tmp/err"; fail=1; return
  fi
  if [ -n "$pat" ] && ! grep -Eq -- "$pat" "$tmp/err"; then
    echo "FAIL (no /$pat/ on stderr): $*"; sed 's/^/    /' "$tmp/err"; fail=1
  fi
}

ref="$FREEAIR_ROOT/tests/ref/gradcam_reference.py"
"$REF_PYTHON" "$ref" resnet18 "$tmp/r64" --size 64 --methods gradcam --freeair "$bin" >/dev/null
"$REF_PYTHON" "$ref" resnet18 "$tmp/r32" --size 32 --layers layer3 --methods gradcam --freeair "$bin" >/dev/null
ck="$tmp/r64/model.safetensors"
img="$tmp/r64/input.png"

# layers
expect 1 "model.safetensors \(resnet18\): layer 'layer9' not found \(valid: layer1, layer2, layer3, layer4\)" \
  "$bin" cam --model "$ck" --layer layer9 "$img" -o "$tmp/o1"
expect 1 "layer 'layer4' is 1x1: Grad-CAM needs a spatial layer \(valid: layer1, layer2, layer3\)" \
  "$bin" cam --model "$tmp/r32/model.safetensors" "$img" -o "$tmp/o2"
expect 1 "layer 'logits' (not found|is 1x1)" "$bin" cam --model "$ck" --layer logits "$img" -o "$tmp/o3"
expect 0 "" "$bin" cam --model "$ck" --list-layers
grep -Eq '^layer4	512x2x2	default$' "$tmp/out" || { echo "FAIL: --list-layers output"; cat "$tmp/out"; fail=1; }
[ "$(wc -l <"$tmp/out")" -eq 4 ] || { echo "FAIL: --list-layers lists $(wc -l <"$tmp/out") layers"; fail=1; }

# inputs: refused ones are named with the reason, the good one is written
printf 'not an image\n' >"$tmp/fake.png"
expect 1 "test4.dcm: refused: not_chest" "$bin" cam --quiet --model "$ck" -o "$tmp/mix" \
  "$dcm/pylibjpeg-data/RG1_JLSN.dcm" "$dcm/udacity-AIHCND_C2_Starter/test4.dcm" \
  "$dcm/udacity-AIHCND_C2_Starter/test5.dcm" "$dcm/orthanc-tests/Issue56-NoPixelData.dcm" \
  "$tmp/fake.png" "$tmp/missing.dcm"
for pat in "test5.dcm: refused: not_radiograph" "Issue56-NoPixelData.dcm: error: no_pixel_data" \
  "fake.png: error" "missing.dcm: unreadable: No such file"; do
  grep -q -- "$pat" "$tmp/err" || { echo "FAIL: no '$pat'"; cat "$tmp/err"; fail=1; }
done
[ "$(grep -c '^freeair cam: ' "$tmp/err")" -eq 5 ] || { echo "FAIL: expected 5 error lines"; cat "$tmp/err"; fail=1; }
"$bin" cam --quiet --model "$ck" --max-side 0 "$dcm/pylibjpeg-data/RG1_JLSN.dcm" -o "$tmp/full"
"$REF_PYTHON" - "$tmp" <<'EOF' || fail=1
import csv, sys
from PIL import Image
t = sys.argv[1]
bad = []
rows = list(csv.DictReader(open(t + "/mix/index.csv")))
if [r["file"] for r in rows] != ["RG1_JLSN.png"]:
    bad.append("index rows %s" % [r["file"] for r in rows])
# 1841 x 1955 (columns x rows): the longer side to 1024 keeps the aspect ratio
for path, size in ((t + "/mix/RG1_JLSN.png", (964, 1024)), (t + "/full/RG1_JLSN.png", (1841, 1955)),
                   (t + "/mix/maps/RG1_JLSN.png", (964, 1024))):
    im = Image.open(path)
    if im.size != size:
        bad.append("%s is %s, expected %s" % (path, im.size, size))
if Image.open(t + "/mix/RG1_JLSN.png").mode != "RGB" or Image.open(t + "/mix/maps/RG1_JLSN.png").mode not in ("I;16", "I"):
    bad.append("overlay must be RGB and the map 16-bit")
for b in bad:
    print("FAIL", b)
sys.exit(1 if bad else 0)
EOF

# checkpoints
printf 'hello' >"$tmp/junk.safetensors"
expect 1 "junk.safetensors" "$bin" cam --model "$tmp/junk.safetensors" "$img" -o "$tmp/o4"
"$REF_PYTHON" -c '
import json, struct, sys
h = json.dumps({"__metadata__": {"arch": "resnet18"}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h)' "$tmp/weights.safetensors"
expect 1 "weights.safetensors: not a freeair checkpoint" "$bin" cam --model "$tmp/weights.safetensors" "$img" -o "$tmp/o5"
expect 1 "nope.safetensors" "$bin" cam --model "$tmp/nope.safetensors" "$img" -o "$tmp/o6"

# tables
printf 'path,label,free_air_mask\n%s,1,small.png\n' "$img" >"$tmp/m.csv"
"$REF_PYTHON" -c 'from PIL import Image; Image.new("L", (10, 10), 255).save("'"$tmp"'/small.png")'
expect 1 "small.png: mask is 10x10 but the image is 64x64" "$bin" cam --quiet --model "$ck" "$tmp/m.csv" -o "$tmp/o7"
[ -f "$tmp/o7/input.png" ] || { echo "FAIL: overlay not written when only the mask is bad"; fail=1; }
printf 'path,label,free_air_bbox\n%s,1,1 2 3\n' "$img" >"$tmp/b.csv"
expect 1 "expected four numbers" "$bin" cam --quiet --model "$ck" "$tmp/b.csv" -o "$tmp/o8"
printf 'id,label\n%s,1\n' "$img" >"$tmp/p1.csv"
expect 1 "p1.csv: needs 'label' and 'score' columns" "$bin" cam --model "$ck" --predictions "$tmp/p1.csv" -o "$tmp/o9"
printf 'model,id,label,score,outcome_primary\na,%s,1,0.9,TP\nb,%s,1,0.8,TP\n' "$img" "$img" >"$tmp/p2.csv"
expect 1 "models 'a' and 'b' are both present; choose one with --name" \
  "$bin" cam --model "$ck" --predictions "$tmp/p2.csv" -o "$tmp/o10"
expect 0 "" "$bin" cam --quiet --model "$ck" --predictions "$tmp/p2.csv" --name b -o "$tmp/o11"
[ -f "$tmp/o11/1-TP-01-input.png" ] || { echo "FAIL: gallery overlay name"; ls "$tmp/o11"; fail=1; }
printf 'path\nnowhere.png\n' >"$tmp/nowhere.csv"
expect 1 "not found in .*nowhere.csv" "$bin" cam --model "$ck" --predictions "$tmp/p2.csv" --name a \
  --manifest "$tmp/nowhere.csv" -o "$tmp/o12"
expect 2 "--group-by zzz: no input table has that column" \
  "$bin" cam --model "$ck" --predictions "$tmp/p2.csv" --name a --group-by zzz -o "$tmp/o13"
touch "$tmp/afile"
expect 1 "afile: exists and is not a directory" "$bin" cam --model "$ck" "$img" -o "$tmp/afile"

# usage
expect 2 "-o DIR is required" "$bin" cam --model "$ck" "$img"
expect 2 "--model is required" "$bin" cam "$img" -o "$tmp/o"
expect 2 "--method foo: expected gradcam or gradcam\+\+" "$bin" cam --model "$ck" --method foo "$img" -o "$tmp/o"
expect 2 "--alpha 2: expected" "$bin" cam --model "$ck" --alpha 2 "$img" -o "$tmp/o"
expect 2 "--max-side -1: expected" "$bin" cam --model "$ck" --max-side -1 "$img" -o "$tmp/o"
expect 2 "either INPUT... or --predictions" "$bin" cam --model "$ck" --predictions "$tmp/p2.csv" "$img" -o "$tmp/o"
expect 2 "unknown option --bogus" "$bin" cam --model "$ck" --bogus "$img" -o "$tmp/o"
expect 2 "no inputs" "$bin" cam --model "$ck" -o "$tmp/o"
expect 0 "" "$bin" cam --help
grep -q "usage: freeair cam" "$tmp/out" || { echo "FAIL: --help"; fail=1; }
exit $fail
