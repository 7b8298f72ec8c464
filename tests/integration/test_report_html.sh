#!/usr/bin/env bash
# `freeair report`: one self-contained HTML file (no scripts, no network,
# images inline) whose tables equal metrics.json, with the cohort flow, split
# composition, synthetic-cohort banner and Grad-CAM gallery read from the
# run directory; report.json holds the same numbers. A run directory with
# only metrics.json still gives a report that says what is absent. Bad input
# fails with one line.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$FREEAIR_ROOT/tests/ref"
"$REF_PYTHON" "$ref/stats_synth_predictions.py" "$tmp/pred.csv" --seed 21 --models densenet161,resnext101 \
  --n-test 160 --n-val 80
"$FREEAIR_BIN" eval --predictions "$tmp/pred.csv" --group-by unit,manufacturer --bootstrap 200 --quiet -o "$tmp/run"
"$REF_PYTHON" "$ref/stats_report_fixture.py" "$tmp/pred.csv" "$tmp/run" --cams 5 >"$tmp/expect.json"
"$FREEAIR_BIN" report "$tmp/run" -o "$tmp/report.html" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
ls "$tmp"/*.tmp "$tmp"/run/*.tmp 2>/dev/null && { echo "temporary files left behind"; exit 1; }
"$REF_PYTHON" "$ref/stats_check_report.py" "$tmp/report.html" "$tmp/report.json" "$tmp/run/metrics.json" \
  --expect "$tmp/expect.json"

# Only metrics.json: graceful.
mkdir "$tmp/bare"
cp "$tmp/run/metrics.json" "$tmp/bare/"
"$FREEAIR_BIN" report "$tmp/bare" 2>/dev/null
"$REF_PYTHON" "$ref/stats_check_report.py" "$tmp/bare/report.html" "$tmp/bare/report.json" "$tmp/bare/metrics.json" \
  --no-extras

# Inputs kept outside the run directory: same report.
mkdir "$tmp/elsewhere" "$tmp/run2"
cp "$tmp/run/metrics.json" "$tmp/run/misclassified.csv" "$tmp/run/config.json" "$tmp/run2/"
cp -r "$tmp/run/manifest.csv" "$tmp/run/cohort.json" "$tmp/run/cam" "$tmp/elsewhere/"
"$FREEAIR_BIN" report "$tmp/run2" -o "$tmp/run2/r.html" --manifest "$tmp/elsewhere/manifest.csv" \
  --cohort "$tmp/elsewhere/cohort.json" --cam "$tmp/elsewhere/cam" 2>/dev/null
"$REF_PYTHON" "$ref/stats_check_report.py" "$tmp/run2/r.html" "$tmp/run2/r.json" "$tmp/run2/metrics.json" \
  --expect "$tmp/expect.json"

# Errors: one line naming the file, exit 1; usage: exit 2.
fails=0
expect() {
  local code="$1" pattern="$2"; shift 2
  local rc=0
  "$FREEAIR_BIN" report "$@" >/dev/null 2>"$tmp/e" || rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -q -- "$pattern" "$tmp/e" || { [ "$code" -eq 1 ] && [ "$(wc -l <"$tmp/e")" -ne 1 ]; }; then
    echo "FAIL: report $* -> $rc (want $code, /$pattern/):"; cat "$tmp/e"; fails=$((fails+1))
  fi
}
mkdir -p "$tmp/empty" "$tmp/badm" "$tmp/badc" "$tmp/other"
printf '{"schema": "freeair.metrics/1", "models": [1,}' >"$tmp/badm/metrics.json"
cp "$tmp/run/metrics.json" "$tmp/badc/"
printf '{"synthetic": tru}' >"$tmp/badc/cohort.json"
printf '{"schema": "something/else"}' >"$tmp/other/metrics.json"
expect 1 "nonexistent: No such file or directory" "$tmp/nonexistent"
expect 1 "empty: no metrics.json (run .freeair eval" "$tmp/empty"
expect 1 "badm/metrics.json: line 1: unexpected character" "$tmp/badm"
expect 1 "badc/cohort.json: line 1: unexpected character" "$tmp/badc"
expect 1 "other/metrics.json: not a freeair metrics file" "$tmp/other"
expect 1 "dir/report.html: cannot write: No such file" "$tmp/run" -o "$tmp/no/such/dir/report.html"
expect 1 "nomanifest.csv: no such file" "$tmp/run" --manifest "$tmp/nomanifest.csv"
expect 1 "nocam: No such file" "$tmp/run" --cam "$tmp/nocam"
expect 2 "usage: freeair report" 
expect 2 "unknown option" "$tmp/run" --bogus
"$FREEAIR_BIN" report --help | grep -q "self-contained"
[ "$fails" -eq 0 ]
echo "report structure, numbers and errors ok"
