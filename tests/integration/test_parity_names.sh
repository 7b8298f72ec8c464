#!/usr/bin/env bash
# Parameter names, shapes, kinds and order of every architecture, and the
# shapes of the named values used by Grad-CAM, against torchvision's
# state_dict and forward hooks, at the default size and at an odd size that
# exercises the floor arithmetic of strided convs and pools.
set -euo pipefail
tmp=$(mktemp -d)
args=()
trap 'rm -rf "$tmp"' EXIT
dump="$FREEAIR_BUILD/tools/model_dump"
for spec in resnet18:224 resnet18:250 resnet50:224 resnet101:224 resnext50_32x4d:224 \
            resnext101_32x8d:224 densenet121:224 densenet121:250 densenet161:224 \
            inception_v3:299 inception_v3:331; do
  arch=${spec%%:*}; size=${spec##*:}
  "$dump" "$arch" "$size" > "$tmp/$arch.$size.txt"
  args+=("$arch" "$size" "$tmp/$arch.$size.txt")
done
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/torch_names.py" "${args[@]}"
# Unknown architectures are refused with the list of valid names.
if "$dump" resnet34 > "$tmp/out" 2> "$tmp/err"; then echo "resnet34 accepted"; exit 1; fi
grep -q "unknown architecture 'resnet34'.*densenet161" "$tmp/err"
