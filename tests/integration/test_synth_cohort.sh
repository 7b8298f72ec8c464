#!/usr/bin/env bash
# test_synth_cohort.sh - `freeair synth` end to end on the tiny preset:
#   - determinism: same seed, 1 vs 2 threads -> byte-identical trees;
#     another seed -> different files;
#   - DICOM validity: dcmdump reads every file without errors; dciodvfy
#     (dicom3tools) reports no errors on three files of each transfer syntax;
#   - an independent reader (pydicom, GDCM, PIL; tests/ref/synth_check.py)
#     finds headers equal to the manifest, pixels equal to an uncompressed
#     copy, masks under the diaphragm and inside their boxes;
#   - composition of paper / small / tiny (--manifest-only) against Table 1;
#   - --manifest-only gives the same manifest as a full run;
#   - `freeair scan` of the files gives the synth manifest's standard columns
#     (when scan is built);
#   - the contact sheet is a PNG under 500 KB; bad options fail cleanly.
set -euo pipefail
B="$FREEAIR_BIN"
PY="${REF_PYTHON:-/usr/bin/python3}"
REF="$FREEAIR_ROOT/tests/ref/synth_check.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$B" synth --out "$tmp/a" --preset tiny --seed 5 --threads 1 --quiet --contact-sheet "$tmp/sheet.png"
"$B" synth --out "$tmp/b" --preset tiny --seed 5 --threads 2 --quiet
diff -r "$tmp/a" "$tmp/b" >/dev/null || { echo "not deterministic across thread counts"; diff -rq "$tmp/a" "$tmp/b" | head; exit 1; }
n=$(find "$tmp/a" -name '*.dcm' | wc -l)
[ "$n" -eq 40 ] || { echo "expected 40 DICOM files, found $n"; exit 1; }
"$B" synth --out "$tmp/c" --preset tiny --seed 6 --quiet --limit 4
if cmp -s "$tmp/a/manifest.csv" "$tmp/c/manifest.csv"; then echo "seed has no effect"; exit 1; fi

# dcmdump: every file parses, no error or warning lines
find "$tmp/a" -name '*.dcm' | sort | while read -r f; do
  if ! dcmdump -q "$f" >/dev/null 2>"$tmp/dump.err" || [ -s "$tmp/dump.err" ]; then
    echo "dcmdump: $f"; cat "$tmp/dump.err"; exit 1
  fi
done

# dciodvfy: three files per transfer syntax, no errors
if command -v dciodvfy >/dev/null; then
  for ts in 1.2.840.10008.1.2.1 1.2.840.10008.1.2.5 1.2.840.10008.1.2.4.70 1.2.840.10008.1.2.4.80; do
    files=$(awk -F, -v ts="$ts" 'NR > 1 && $23 == ts { print $1 }' "$tmp/a/manifest.csv" | head -3)
    [ -n "$files" ] || { echo "no file with transfer syntax $ts"; exit 1; }
    for f in $files; do
      dciodvfy "$tmp/a/$f" >"$tmp/vfy.out" 2>&1 || true
      if grep -q '^Error' "$tmp/vfy.out"; then echo "dciodvfy $f:"; cat "$tmp/vfy.out"; exit 1; fi
    done
  done
else
  echo "dciodvfy not installed (package dicom3tools): IOD check skipped"
fi

# independent reader: headers, lossless pixels, masks
"$B" synth --out "$tmp/e" --preset tiny --seed 5 --syntax explicit --no-masks --quiet
"$PY" "$REF" files "$tmp/a" "$tmp/e"

# composition; manifest-only equals the full run's manifest
for p in paper small tiny; do
  "$B" synth --out "$tmp/m-$p" --preset "$p" --seed 5 --manifest-only --quiet
  "$PY" "$REF" composition "$tmp/m-$p/manifest.csv" "$p"
done
cmp "$tmp/m-tiny/manifest.csv" "$tmp/a/manifest.csv" || { echo "--manifest-only manifest differs"; exit 1; }

# freeair scan reads back the same standard columns
(cd "$tmp/a" && "$B" scan H* --quiet -o "$tmp/scan.csv") || { echo "freeair scan failed"; exit 1; }
if [ "$(wc -l <"$tmp/scan.csv")" -gt 1 ]; then
  "$PY" - "$tmp/scan.csv" "$tmp/a/manifest.csv" <<'EOF'
import csv, sys
scan = {r["path"]: r for r in csv.DictReader(open(sys.argv[1]))}
synth = {r["path"]: r for r in csv.DictReader(open(sys.argv[2]))}
cols = next(csv.reader(open(sys.argv[1])))
bad = [(p, c, synth[p][c], r[c]) for p, r in scan.items() for c in cols if c in synth.get(p, {}) and synth[p][c] != r[c]]
if set(scan) != set(synth) or bad:
    print("scan vs synth manifest:", len(scan), len(synth), bad[:5]); sys.exit(1)
print("scan agrees on", len(scan), "rows")
EOF
else
  echo "freeair scan wrote no rows: scan comparison skipped"
fi

# contact sheet
"$PY" -c "
import os, sys
from PIL import Image
im = Image.open(sys.argv[1]); im.load()
assert im.mode == 'RGB' and im.width > 600, im.size
assert os.path.getsize(sys.argv[1]) < 500 * 1024
" "$tmp/sheet.png"

# bad input: usage errors exit 2, unwritable output exits 1 with one line
set +e
"$B" synth --out "$tmp/x" --preset huge 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q huge "$tmp/err" || { echo "bad preset: rc $rc"; cat "$tmp/err"; exit 1; }
"$B" synth --preset tiny 2>/dev/null; rc=$?
[ $rc -eq 2 ] || { echo "missing --out: rc $rc"; exit 1; }
touch "$tmp/file"
"$B" synth --out "$tmp/file/sub" --preset tiny --quiet 2>"$tmp/err"; rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^freeair synth: .*$tmp/file" "$tmp/err" ||
  { echo "unwritable output: rc $rc"; cat "$tmp/err"; exit 1; }
set -e
echo "synth cohort: ok"
