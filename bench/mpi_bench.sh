#!/usr/bin/env bash
# mpi_bench.sh - data-parallel training on one machine over loopback: for each
# architecture, one process (THREADS threads) against 2 ranks (THREADS/2 each)
# on the same global batch; reports time per step, images/s, the gradient
# all-reduce volume and its time per step (from the step records of
# train.jsonl), and a pure MPI_Allreduce microbenchmark of the same sizes
# (bandwidth and latency terms for the cluster model in docs/distributed.md).
# The 2-rank run is made twice: with the all-reduce overlapped with backward
# (the default; "early" = buckets started during backward per step) and with
# FREEAIR_DIST_OVERLAP=0 (started after backward), ranks column "2late".
#
# usage: bench/mpi_bench.sh [BUILD_DIR]   (env: ARCHS, SIZE, BATCH, STEPS, THREADS)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bin=$build/freeair
ARCHS=${ARCHS:-"resnet18 resnet50 densenet161"}
SIZE=${SIZE:-64}
BATCH=${BATCH:-8}
STEPS=${STEPS:-4}
THREADS=${THREADS:-2}
PY=${REF_PYTHON:-/usr/bin/python3}
half=$(( THREADS / 2 > 0 ? THREADS / 2 : 1 ))
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PY" "$root/tests/ref/train_tiny_data.py" "$tmp/data" --train $(( BATCH * (STEPS + 1) )) --val 4 --size $(( SIZE + 8 )) >/dev/null

# pure all-reduce: time per call for the payloads of the architectures
cat >"$tmp/ar.c" <<'C'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int a = 1; a < argc; a++) {
        long n = atol(argv[a]);
        float *b = calloc((size_t)n, sizeof *b);
        MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        int reps = n > 1000000 ? 5 : 200;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int r = 0; r < reps; r++) MPI_Allreduce(MPI_IN_PLACE, b, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = (MPI_Wtime() - t0) / reps;
        if (rank == 0)
            printf("allreduce %d ranks: %10ld floats (%8.2f MB): %9.3f ms, algorithm bandwidth %.2f GB/s\n", size, n,
                   n * 4e-6, t * 1e3, n * 4e-9 / t);
        free(b);
    }
    MPI_Finalize();
    return 0;
}
C
mpicc -O2 -o "$tmp/ar" "$tmp/ar.c"

echo "# freeair data-parallel bench: $(nproc) cores, size $SIZE px, global batch $BATCH, $STEPS steps (first dropped)"
printf '%-12s %6s %8s %10s %10s %12s %12s %6s\n' arch ranks threads ms/step img/s allreduce_MB allreduce_ms early
sizes="1 1024"
for arch in $ARCHS; do
  cat >"$tmp/$arch.conf" <<CONF
arch = $arch
image_size = $SIZE
epochs = 1
batch_size = $BATCH
micro_batch = $(( BATCH / 2 ))
manifest = $tmp/data/manifest.csv
max_steps = $STEPS
seed = 1
CONF
  OMP_NUM_THREADS=$THREADS "$bin" train --config "$tmp/$arch.conf" --threads "$THREADS" --out "$tmp/$arch.1" --quiet >/dev/null
  OMP_NUM_THREADS=$half "${MPIRUN[@]}" -np 2 "$bin" train --config "$tmp/$arch.conf" --threads "$half" \
    --out "$tmp/$arch.2" --quiet >/dev/null
  FREEAIR_DIST_OVERLAP=0 OMP_NUM_THREADS=$half "${MPIRUN[@]}" -x FREEAIR_DIST_OVERLAP -np 2 "$bin" train \
    --config "$tmp/$arch.conf" --threads "$half" --out "$tmp/$arch.2late" --quiet >/dev/null
  for r in 1 2 2late; do
    "$PY" - "$tmp/$arch.$r/train.jsonl" "$arch" "$r" "$([ "$r" = 1 ] && echo "$THREADS" || echo "$half")" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
steps = [s for s in steps if s["event"] == "step"][1:]
ms = 1e3 * sum(s["images"] / s["images_per_s"] for s in steps) / len(steps)
ips = sum(s["images"] for s in steps) / sum(s["images"] / s["images_per_s"] for s in steps)
mb = steps[0].get("allreduce_bytes", 0) / 1e6
ar = 1e3 * sum(s.get("allreduce_s", 0) for s in steps) / len(steps)
early = sum(s.get("allreduce_early_buckets", 0) for s in steps) / len(steps)
print(f"{sys.argv[2]:<12} {sys.argv[3]:>6} {sys.argv[4]:>8} {ms:10.1f} {ips:10.2f} {mb:12.2f} {ar:12.2f} {early:6.1f}")
PY
  done
  n=$(grep -o '"allreduce_bytes":[0-9]*' "$tmp/$arch.2/train.jsonl" | head -1 | cut -d: -f2)
  sizes="$sizes $(( n / 4 ))"
done
"${MPIRUN[@]}" -np 2 "$tmp/ar" $sizes
