#!/usr/bin/env bash
# test_cache_pil.sh - `freeair cache` end to end: every cached image, read back
# from index.csv and the memory-mapped data file by Python, equals PIL's
# Image.resize (Lanczos, mode "I", clamped) of the decoded source within 1
# grey level of 65535 - for 16- and 8-bit PNGs made here and for real DICOM
# files (source = `freeair decode --stage display`). The corrupt JPEG 2000 file
# becomes an error entry with its reason. Rebuilds: nothing changed -> nothing
# decoded; one file touched -> only it decoded (checked in the JSON log);
# another short side -> everything decoded again.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
T="$FREEAIR_SHARED/testdata/dicom"
mkdir -p "$tmp/data"
cp "$T/fo-dicom/CR-MONO1-10-chest" "$T/udacity-AIHCND_C2_Starter/test1.dcm" \
   "$T/orthanc-tests/Issue44_Monochrome1-Jpeg.dcm" "$T/pylibjpeg-data/966.dcm" "$tmp/data/"
"$REF_PYTHON" - "$tmp/data" <<'EOF'
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(5)
y, x = np.mgrid[0:700, 0:500]
smooth = (20000 + 15000 * np.sin(x / 37.0) * np.cos(y / 23.0)).astype(np.uint16)
smooth[300:320, :] = 65535                       # a sharp bright band (ringing, clamping)
Image.fromarray(smooth).save(d + "/smooth16.png")
Image.fromarray(rng.integers(0, 65536, (333, 517), dtype=np.uint16)).save(d + "/noise16.png")
Image.fromarray(rng.integers(0, 256, (640, 480), dtype=np.uint8)).save(d + "/noise8.png")
Image.fromarray(rng.integers(0, 65536, (200, 250), dtype=np.uint16)).save(d + "/small16.png")  # kept as is
EOF
cd "$tmp"
"$FREEAIR_BIN" scan data -q -o m.csv 2>/dev/null
"$FREEAIR_BIN" cache --manifest m.csv --out c --short-side 320 --threads 2 -q --log c1.jsonl >out1.txt 2>err1.txt
cat out1.txt err1.txt
grep -q "cache: 8 images: 8 decoded, 0 reused, 1 failed, 0 dropped; committed" out1.txt
grep -q "warning: 1 image(s) could not be decoded; first: data/966.dcm: .*JPEG 2000" err1.txt
for f in CR-MONO1-10-chest test1.dcm Issue44_Monochrome1-Jpeg.dcm; do
  "$FREEAIR_BIN" decode "data/$f" --stage display -o "ref_$f.png"
done

check() {  # $1 = short side the cache was built with
"$REF_PYTHON" - "$1" <<'EOF'
import csv, os, sys
import numpy as np
from PIL import Image
short = int(sys.argv[1])
rows = list(csv.DictReader(open("c/index.csv", newline="")))
bad = []
data = None
for r in rows:
    if r["status"] != "ok":
        if not r["path"].endswith("966.dcm") or "JPEG 2000" not in r["reason"]:
            bad.append("unexpected error entry %s: %s" % (r["path"], r["reason"]))
        continue
    if data is None:
        raw = np.memmap("c/" + r["data_file"], dtype="<u2", mode="r")
        if bytes(np.memmap("c/" + r["data_file"], dtype=np.uint8, mode="r")[:16]) != b"FREEAIR-CACHE-1\n":
            bad.append("data file magic")
        data = raw
    w, h, off = int(r["width"]), int(r["height"]), int(r["offset"])
    ours = np.asarray(data[off // 2: off // 2 + w * h]).reshape(h, w).astype(np.int64)
    name = os.path.basename(r["path"])
    src = "data/" + name if name.endswith(".png") else "ref_%s.png" % name
    im = Image.open(src)
    a = np.asarray(im).astype(np.int64)
    if im.mode == "L":
        a = a * 257                                   # freeair reads 8-bit as x257
    H, W = a.shape
    s = min(W, H)
    if s <= short:
        ow, oh = W, H
    elif W <= H:
        ow, oh = short, int(np.floor(H * short / W + 0.5))
    else:
        ow, oh = int(np.floor(W * short / H + 0.5)), short
    if (w, h) != (ow, oh):
        bad.append("%s: cached %dx%d, expected %dx%d" % (name, w, h, ow, oh))
        continue
    ref = Image.fromarray(a.astype(np.int32), mode="I").resize((ow, oh), Image.LANCZOS, reducing_gap=None)
    ref = np.clip(np.asarray(ref, dtype=np.int64), 0, 65535)
    d = int(np.abs(ref - ours).max())
    print("%-32s %4dx%-4d -> %4dx%-4d max |cache - PIL| = %d" % (name, W, H, w, h, d))
    if d > 1:
        bad.append("%s: differs from PIL by %d" % (name, d))
if len(rows) != 8:
    bad.append("index has %d rows, want 8" % len(rows))
for b in bad:
    print("MISMATCH", b)
raise SystemExit(1 if bad else 0)
EOF
}
check 320

# Nothing changed: nothing decoded, nothing written.
"$FREEAIR_BIN" cache --manifest m.csv --out c -q >out2.txt 2>/dev/null
grep -q "0 decoded, 8 reused, 1 failed, 0 dropped; unchanged" out2.txt
# Touch one file: only it is decoded again.
touch -d "2001-02-03 04:05:06" data/noise8.png
"$FREEAIR_BIN" cache --manifest m.csv --out c -q --log c3.jsonl >out3.txt 2>/dev/null
grep -q "1 decoded, 7 reused" out3.txt
"$REF_PYTHON" -c '
import json, sys
d = [r["path"] for r in map(json.loads, open("c3.jsonl")) if r["event"] == "cache_decode"]
sys.exit(0 if d == ["data/noise8.png"] else "decoded after touching noise8.png: %s" % d)'
[ "$(ls c | grep -c '^pixels\..*\.bin$')" -eq 1 ]
check 320
# Another short side: everything decoded again.
"$FREEAIR_BIN" cache --manifest m.csv --out c --short-side 256 -q >out4.txt 2>/dev/null
grep -q "8 decoded, 0 reused" out4.txt
check 256
# Bad options and inputs.
set +e
"$FREEAIR_BIN" cache --manifest m.csv --out c --short-side 2 >/dev/null 2>&1; r1=$?
"$FREEAIR_BIN" cache --manifest m.csv >/dev/null 2>&1; r2=$?
"$FREEAIR_BIN" cache --manifest nope.csv --out c >/dev/null 2>e.txt; r3=$?
set -e
[ "$r1" -eq 2 ] && [ "$r2" -eq 2 ] && [ "$r3" -eq 1 ]
grep -q "^freeair cache: nope.csv: No such file or directory" e.txt
echo "test_cache_pil: ok"
