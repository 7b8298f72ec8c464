#!/usr/bin/env bash
# test_cam_reference.sh - `freeair cam` Grad-CAM and Grad-CAM++ maps equal a
# PyTorch reference written with forward/backward hooks
# (tests/ref/gradcam_reference.py) on the same random weights and input,
# within 1e-4 after normalisation, for ResNet50 (layer4 and layer3),
# DenseNet161 (features after norm5 + ReLU) and InceptionV3 (Mixed_7c) at
# full size; the 16-bit map equals F.interpolate of the reference
# (tests/ref/gradcam_compare.py).
#
# FREEAIR_CAM_SPECS overrides the cases: "arch:size:layer:method ...".
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

specs=${FREEAIR_CAM_SPECS:-"resnet50:224:layer4:gradcam resnet50:224:layer4:gradcam++ resnet50:224:layer3:gradcam
densenet161:224:features:gradcam densenet161:224:features:gradcam++ inception_v3:299:Mixed_7c:gradcam
inception_v3:299:Mixed_7c:gradcam++"}

# One reference run per (arch, size): every layer it needs at once.
declare -A layers
for s in $specs; do
  IFS=: read -r arch size layer method <<<"$s"
  key="$arch:$size"
  case ",${layers[$key]:-}," in *",$layer,"*) ;; *) layers[$key]="${layers[$key]:+${layers[$key]},}$layer" ;; esac
done
for key in "${!layers[@]}"; do
  IFS=: read -r arch size <<<"$key"
  nice "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/gradcam_reference.py" "$arch" "$tmp/$arch-$size" --size "$size" \
    --layers "${layers[$key]}" --freeair "$FREEAIR_BIN"
done

fail=0
for s in $specs; do
  IFS=: read -r arch size layer method <<<"$s"
  ref="$tmp/$arch-$size"
  out="$tmp/out-$arch-$size-$layer-$method"
  if ! "$FREEAIR_BIN" cam --quiet --model "$ref/model.safetensors" --layer "$layer" --method "$method" \
      "$ref/input.png" -o "$out"; then
    echo "FAIL $s: freeair cam exited non-zero"
    fail=1
    continue
  fi
  "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/gradcam_compare.py" "$ref" "$out" "$layer" "$method" || fail=1
done
exit $fail
