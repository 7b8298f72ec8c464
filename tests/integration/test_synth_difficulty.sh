#!/usr/bin/env bash
# test_synth_difficulty.sh - the default synthetic task is learnable but not
# trivial: on the small preset (the demo cohort) a naive "lucency under the
# dome" reader written in numpy (tests/ref/synth_difficulty.py, no freeair
# code) does better than chance but not perfectly, finds subtle free air
# harder than large, confounders (stomach bubble, basal lucency, Chilaiditi)
# harder than clean negatives, and loses specificity on other vendors when its
# threshold is set on fixed Philips academic images.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$FREEAIR_BIN" synth --out "$tmp/c" --preset small --seed 1 --no-masks --quiet
"${REF_PYTHON:-/usr/bin/python3}" "$FREEAIR_ROOT/tests/ref/synth_difficulty.py" "$tmp/c" --check
