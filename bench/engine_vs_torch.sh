#!/usr/bin/env bash
# engine_vs_torch.sh - freeair's engine against PyTorch on the same CPU, in the
# same run: for each (arch, mode, batch, precision) ours and the peer run one
# after the other, alternating which goes first on each repeat, each in its own
# process (so peak RSS is per configuration); the best of the repeats is kept
# per side. The oneDNN matmul peak (2048^3, fp32 and bf16) is measured at the
# start and the end of the same run, and achieved GFLOP/s (conv + linear FLOPs
# counted from torchvision, training = 3x forward) is reported as a fraction of
# it. Prints a table of ratios (ours / peer) and writes all of it as JSON.
#
# usage: bench/engine_vs_torch.sh [--quick] [--archs a,b] [--configs infer:1,infer:16,train:16]
#            [--precisions fp32,bf16] [--iters K] [--warmup W] [--repeat R] [--threads T]
#            [--channels-last] [--build DIR] [--out FILE.json] [--peer-python PY] [--newest-torch]
#
# --quick: resnet50 only, infer:1 and train:16, 2 iterations, 1 repeat.
# Peers: PyTorch 1.13 from Debian (/usr/bin/python3). --newest-torch adds the
# newest PyTorch release from PyPI, in the venv bench/torch_venv.sh creates
# (once; about 3 GB download); --peer-python adds any other interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FREEAIR_BUILD:-build}"
ARCHS="resnet50,resnet101,resnext101_32x8d,densenet161,inception_v3"
CONFIGS="infer:1,infer:16,train:16"
PRECS="fp32,bf16"
ITERS=3
WARMUP=1
REPEAT=2
THREADS=2
CL=""
OUT=""
PEERS=("/usr/bin/python3")
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) ARCHS="resnet50"; CONFIGS="infer:1,train:16"; ITERS=2; REPEAT=1 ;;
    --archs) ARCHS="$2"; shift ;;
    --configs) CONFIGS="$2"; shift ;;
    --precisions) PRECS="$2"; shift ;;
    --iters) ITERS="$2"; shift ;;
    --warmup) WARMUP="$2"; shift ;;
    --repeat) REPEAT="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --channels-last) CL="--channels-last" ;;
    --build) BUILD="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --peer-python) PEERS+=("$2"); shift ;;
    --newest-torch) PEERS+=("$("$(dirname "${BASH_SOURCE[0]}")/torch_venv.sh")") ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "engine_vs_torch.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
cd "$ROOT"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
FA="$BUILD/freeair"
[ -x "$FA" ] || { echo "engine_vs_torch.sh: $FA: not built (make BUILD=...)" >&2; exit 1; }
mkdir -p bench/results "$BUILD/bench"
[ -n "$OUT" ] || OUT="bench/results/engine_vs_torch-$(date -u +%Y%m%dT%H%M%SZ).json"
MM="$BUILD/bench/matmul_peak"
if [ ! -x "$MM" ] || [ bench/matmul_peak.c -nt "$MM" ]; then
    cc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o "$MM" bench/matmul_peak.c -ldnnl
fi
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS=1
LINES="$(mktemp)"
trap 'rm -f "$LINES"' EXIT

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
matmul() { for p in fp32 bf16; do "$MM" "$p" 2048 5 >>"$LINES"; done; }

log "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (shared machines give noisy numbers)"
matmul
IFS=, read -ra A <<<"$ARCHS"
IFS=, read -ra C <<<"$CONFIGS"
IFS=, read -ra P <<<"$PRECS"
for arch in "${A[@]}"; do
    "${PEERS[0]}" bench/ref/torch_bench.py --arch "$arch" --flops >>"$LINES"
done
for py in "${PEERS[@]}"; do "$py" bench/ref/torch_bench.py --import-rss >>"$LINES"; done
run_ours() { # mode batch prec arch
    "$FA" bench --arch "$4" --mode "$1" --batch "$2" --precision "$3" --iters "$ITERS" \
        --warmup "$WARMUP" --threads "$THREADS" 2>/dev/null | grep '^{' | sed 's/^{/{"peer":"freeair",/' >>"$LINES"
}
run_peer() { # py mode batch prec arch
    "$1" bench/ref/torch_bench.py --arch "$5" --mode "$2" --batch "$3" --precision "$4" \
        --iters "$ITERS" --warmup "$WARMUP" --threads "$THREADS" $CL 2>/dev/null >>"$LINES"
}
for arch in "${A[@]}"; do
    for cfg in "${C[@]}"; do
        mode="${cfg%%:*}"; batch="${cfg##*:}"
        for prec in "${P[@]}"; do
            for ((r = 0; r < REPEAT; r++)); do
                log "$arch $mode b$batch $prec (repeat $((r + 1))/$REPEAT)"
                # Alternate who goes first so that a load change on the shared
                # machine does not always favour the same side.
                if (( r % 2 == 0 )); then
                    run_ours "$mode" "$batch" "$prec" "$arch" || log "  freeair failed"
                    for py in "${PEERS[@]}"; do run_peer "$py" "$mode" "$batch" "$prec" "$arch" || log "  $py failed"; done
                else
                    for py in "${PEERS[@]}"; do run_peer "$py" "$mode" "$batch" "$prec" "$arch" || log "  $py failed"; done
                    run_ours "$mode" "$batch" "$prec" "$arch" || log "  freeair failed"
                fi
            done
        done
    done
done
matmul
/usr/bin/python3 bench/ref/bench_table.py "$LINES" "$OUT" "$(cut -d' ' -f1-3 /proc/loadavg)" "$THREADS" "${CL:-contiguous}"
log "wrote $OUT"
