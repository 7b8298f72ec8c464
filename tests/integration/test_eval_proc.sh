#!/usr/bin/env bash
# AUC, DeLong CIs and variances, paired DeLong tests, Wilson intervals and
# McNemar p-values from `freeair eval` agree with R (pROC, prop.test,
# binom.test, mcnemar.test) on six random datasets with many ties, including
# a subgroup with one class only (AUC must be null with a reason).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v Rscript >/dev/null || { echo "Rscript (r-base, r-cran-proc) is required"; exit 1; }
Rscript "$FREEAIR_ROOT/tests/ref/proc_reference.R" "$tmp"
n=0
for data in "$tmp"/data_*.csv; do
  k=$(basename "$data" .csv); k=${k#data_}
  "$FREEAIR_BIN" eval --predictions "$data" --group-by grp --bootstrap 50 --quiet -o "$tmp/run_$k" \
    2>"$tmp/stderr_$k"
  # No validation rows: the warning must say the thresholds are not locked.
  grep -q "NOT locked" "$tmp/stderr_$k"
  "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/stats_check_proc.py" --tol 1e-9 \
    "$tmp/expected_$k.csv" "$tmp/run_$k/metrics.json"
  n=$((n+1))
done
[ "$n" -ge 5 ] || { echo "expected at least 5 datasets, got $n"; exit 1; }
echo "pROC agreement on $n datasets"
