#!/usr/bin/env bash
# Single engine ops against PyTorch itself (Debian's python3-torch):
# tests/ref/ops_torch.py computes each op, its input and parameter gradients,
# BN running statistics, BCE-with-logits and torch.optim.SGD steps in float64;
# build/tools/engine_op_check runs the same cases through the engine (fp32)
# and fails on any difference beyond fp32 rounding. Complements the naive-
# kernel and finite-difference checks of tests/unit/test_engine_ops.c with
# PyTorch's own semantics (ceil_mode, count_include_pad, -inf max padding,
# unbiased running variance, SGD's first momentum step).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OMP_NUM_THREADS=1 "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/ops_torch.py" "$tmp"
"$FREEAIR_BUILD/tools/engine_op_check" "$tmp"/*.safetensors
echo "ops vs torch: ok"
