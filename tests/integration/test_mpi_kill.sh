#!/usr/bin/env bash
# test_mpi_kill.sh - a data-parallel run whose rank dies or hangs ends, with a
# message, in bounded time, and its last checkpoint stays valid:
#  1. kill -9 of rank 1 mid-run: mpirun ends the job (non-zero, < 120 s);
#     last.safetensors still loads, and resuming it in one process finishes;
#  2. SIGSTOP of rank 1 (a hang): rank 0's watchdog (FREEAIR_DIST_TIMEOUT=5)
#     aborts the job with a message naming the collective.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}"
source "$FREEAIR_ROOT/tests/ref/mpi_lib.sh"
export FREEAIR_DIST_RANK_LOGS=1
tmp=$(mktemp -d)
mpid=
cleanup() { [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/train_tiny_data.py" "$tmp/data" --train 32 --val 8 --size 36 --seed 6 >/dev/null
cat >"$tmp/run.conf" <<CONF
arch = resnet18
image_size = 32
epochs = 50
lr = 0.01
batch_size = 8
micro_batch = 4
manifest = $tmp/data/manifest.csv
threads = 1
seed = 2
checkpoint_steps = 1
CONF

# start a 2-rank run in the background; wait until `step` is logged
start_run() { # OUT STEP
  timeout 150 "${mpi_launch[@]}" "$FREEAIR_BIN" train --config "$tmp/run.conf" \
    --out "$1" --quiet >"$1.out" 2>"$1.err" &
  mpid=$!
  for _ in $(seq 1 1200); do
    grep -q "\"event\":\"step\".*\"global_step\":$2," "$1/train.jsonl" 2>/dev/null && break
    kill -0 "$mpid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$mpid" 2>/dev/null || { cat "$1.err"; echo "FAIL: the run ended early"; exit 1; }
  rank1=$(grep '"event":"start"' "$1/train.rank1.jsonl" | sed 's/.*"pid":\([0-9]*\).*/\1/')
  [ -n "$rank1" ] || { echo "FAIL: no pid of rank 1"; exit 1; }
}
# wait for mpirun; it must fail within 120 s
wait_end() { # OUT
  local t0=$SECONDS rc=0
  for _ in $(seq 1 1200); do kill -0 "$mpid" 2>/dev/null || break; [ $((SECONDS - t0)) -lt 120 ] || break; sleep 0.1; done
  if kill -0 "$mpid" 2>/dev/null; then echo "FAIL: the job still runs 120 s after the failure"; exit 1; fi
  wait "$mpid" || rc=$?
  mpid=
  [ "$rc" -ne 0 ] || { echo "FAIL: the job exited 0"; exit 1; }
  echo "job ended after $((SECONDS - t0)) s with status $rc"
}

# 1. a rank dies
start_run "$tmp/k" 3
kill -9 "$rank1"
wait_end "$tmp/k"
grep -Eqi "exited on signal 9|killed|abort" "$tmp/k.err" || { cat "$tmp/k.err"; echo "FAIL: no message about the dead rank"; exit 1; }
"$FREEAIR_BIN" train --resume "$tmp/k" --epochs 1 --quiet >/dev/null 2>"$tmp/k.resume" || {
  # a checkpoint at the end of epoch 1 already satisfies --epochs 1: resume one more
  "$FREEAIR_BIN" train --resume "$tmp/k" --epochs 2 --quiet >/dev/null
}
echo "the last checkpoint of the killed job resumes"

# 2. a rank hangs: rank 0 waits in a collective until the watchdog fires
export FREEAIR_DIST_TIMEOUT=5
start_run "$tmp/h" 2
kill -STOP "$rank1"
wait_end "$tmp/h"
kill -9 "$rank1" 2>/dev/null || true
grep -q "did not complete within 5 s" "$tmp/h.err" || { cat "$tmp/h.err"; echo "FAIL: no watchdog message"; exit 1; }
grep -m1 "did not complete" "$tmp/h.err"
echo "a dead or hung rank ends the job in bounded time"
