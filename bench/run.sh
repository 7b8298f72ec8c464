#!/usr/bin/env bash
# run.sh - what `make bench` runs. Benchmarks never run in `make test`:
# timing lives here, never in a test.
#
# usage: bench/run.sh [engine|engine-full|decode|serve|mpi|all]...   (default: engine)
#   engine       bench/engine_vs_torch.sh --quick (resnet50, a few minutes)
#   engine-full  the whole matrix of issue 9 (five architectures, both PyTorch peers; hours on 2 cores)
#   decode, serve, mpi   bench/<name>_bench.sh with its defaults
# BUILD (default build) names the build folder; results go to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-${FREEAIR_BUILD:-build}}
export BUILD FREEAIR_BUILD="$BUILD"
[ $# -gt 0 ] || set -- engine
for what in "$@"; do
    case "$what" in
    engine) bench/engine_vs_torch.sh --quick --build "$BUILD" ;;
    engine-full) bench/engine_vs_torch.sh --build "$BUILD" --configs infer:1,infer:16,train:16,train:32 --newest-torch ;;
    decode | serve | mpi)
        if [ -x "bench/${what}_bench.sh" ]; then "bench/${what}_bench.sh"; else
            echo "run.sh: bench/${what}_bench.sh: not present" >&2; exit 1; fi ;;
    all) "$0" engine decode serve mpi ;;
    *) echo "run.sh: unknown benchmark '$what' (engine, engine-full, decode, serve, mpi, all)" >&2; exit 2 ;;
    esac
done
