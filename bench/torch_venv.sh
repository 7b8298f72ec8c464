#!/usr/bin/env bash
# bench/torch_venv.sh - the second peer of the engine benchmark (issue 9): the
# newest PyTorch release from PyPI, in a virtual environment this script
# creates, next to Debian's PyTorch 1.13. Prints the venv's python on stdout
# (progress on stderr), for `bench/engine_vs_torch.sh --peer-python`.
#
#   bench/engine_vs_torch.sh --peer-python "$(bench/torch_venv.sh)" ...
#
# PyPI's Linux x86_64 torch wheel is the CUDA build: pip also fetches the
# nvidia-* runtime wheels (about 3 GB download, 5.5 GB installed; 73 s here).
# They are never used: the benchmark runs on the CPU and torch loads them
# only because its wheel links against them. The CPU-only wheels live on
# download.pytorch.org, which this machine cannot reach.
#
# FREEAIR_TORCH_VENV  where the venv goes (default ~/.cache/freeair/torch-venv);
#                     an existing one is reused, `--upgrade` updates it.
# FREEAIR_VENV_PYTHON the interpreter that creates it (default /usr/bin/python3,
#                     which needs Debian's python3-venv).
set -euo pipefail
venv="${FREEAIR_TORCH_VENV:-$HOME/.cache/freeair/torch-venv}"
base="${FREEAIR_VENV_PYTHON:-/usr/bin/python3}"
upgrade=()
[ "${1:-}" = "--upgrade" ] && upgrade=(--upgrade)
if [ ! -x "$venv/bin/python" ]; then
  echo "torch_venv: creating $venv with $base" >&2
  mkdir -p "$(dirname "$venv")"
  "$base" -m venv "$venv" >&2 || {
    echo "torch_venv: $base -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  upgrade=(--upgrade)
fi
if [ ${#upgrade[@]} -gt 0 ] || ! "$venv/bin/python" -c "import torch, torchvision" 2>/dev/null; then
  echo "torch_venv: pip install ${upgrade[*]} torch torchvision (PyPI)" >&2
  "$venv/bin/pip" install -q "${upgrade[@]}" pip >&2
  "$venv/bin/pip" install -q "${upgrade[@]}" torch torchvision >&2
fi
"$venv/bin/python" -c "import torch, torchvision; print('torch_venv: torch', torch.__version__, 'torchvision', torchvision.__version__)" >&2
echo "$venv/bin/python"
