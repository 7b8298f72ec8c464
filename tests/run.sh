#!/usr/bin/env bash
# Runs every freeair test: the C unit-test binaries in $FREEAIR_BUILD/tests and
# the integration scripts tests/integration/test_*.sh (which compare against
# PyTorch, pROC, scikit-learn, GDCM and DCMTK's tools). Each test is a program
# that exits non-zero on failure. Prints "N passed, N failed" last.
#
# FREEAIR_TESTS=pattern runs only tests whose name contains the pattern.
set -u
cd "$(dirname "$0")/.."
export FREEAIR_BUILD="${FREEAIR_BUILD:-build}"
export FREEAIR_BIN="$PWD/$FREEAIR_BUILD/freeair"
export FREEAIR_ROOT="$PWD"
export FREEAIR_SHARED="${FREEAIR_SHARED:-$PWD/../shared}"
export REF_PYTHON="${REF_PYTHON:-/usr/bin/python3}"
# Two cores: keep oneDNN/OpenMP and OpenBLAS from oversubscribing them.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export OPENBLAS_NUM_THREADS=1
# Spinning OpenMP workers starve the other processes of a shared 2-core box.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
filter="${FREEAIR_TESTS:-}"
logdir="$FREEAIR_BUILD/test-logs"
mkdir -p "$logdir"

pass=0; fail=0; failed=()
run_one() {
  local name="$1"; shift
  if [ -n "$filter" ] && [[ "$name" != *"$filter"* ]]; then return; fi
  local t0=$(date +%s)
  if "$@" >"$logdir/$name.log" 2>&1; then
    pass=$((pass+1)); echo "PASS $name ($(( $(date +%s) - t0 ))s)"
  else
    fail=$((fail+1)); failed+=("$name"); echo "FAIL $name ($(( $(date +%s) - t0 ))s)"
    tail -n 30 "$logdir/$name.log" | sed 's/^/    /'
  fi
}

for t in "$FREEAIR_BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  run_one "$(basename "$t")" "$t"
done
for t in tests/integration/test_*.sh; do
  [ -f "$t" ] || continue
  run_one "$(basename "$t" .sh)" bash "$t"
done

echo
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
