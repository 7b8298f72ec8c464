#!/usr/bin/env bash
# test_scan_merge.sh - `freeair scan --merge`: PNG and JPEG files are listed
# (size, depth and colour from their headers, checked against PIL), user
# columns join by path (exact, relative to the user CSV, or unique suffix) or
# by SOP UID, user values override header values and the chest gate runs
# again on them, unknown user keys are reported, and ambiguous or duplicate
# user rows are refused with one clear line.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
U="$FREEAIR_SHARED/testdata/dicom/udacity-AIHCND_C2_Starter"
mkdir -p "$tmp/data/sub" "$tmp/labels"
cp "$U/test1.dcm" "$U/test4.dcm" "$tmp/data/"
cp "$U/test6.dcm" "$tmp/data/sub/"
"$REF_PYTHON" - "$tmp/data" <<'EOF'
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
g = (np.arange(300 * 200, dtype=np.uint32).reshape(200, 300) * 7 % 65536).astype(np.uint16)
Image.fromarray(g).save(d + "/img16.png")                      # 16-bit grey, 300x200
rgb = np.zeros((120, 160, 3), np.uint8); rgb[..., 0] = 200; rgb[40:80, :, 1] = 90
Image.fromarray(rgb).save(d + "/sub/photo.jpg", quality=90)    # 8-bit colour, 160x120
EOF

cat >"$tmp/labels/user.csv" <<'EOF'
path,label,unit,hospital,body_part,view,modality,patient_id
data/test1.dcm,1,fixed,academic,,,,
../data/test4.dcm,0,portable,academic,Chest,,,
test6.dcm,1,fixed,community,,PA,,
data/img16.png,0,fixed,academic,CHEST,AP,DX,P9
sub/photo.jpg,1,portable,community,,,,P10
data/nothere.dcm,1,fixed,academic,,,,
EOF
cd "$tmp"
"$FREEAIR_BIN" scan data --merge labels/user.csv -q -o m.csv 2>err.txt
cat err.txt
grep -q "merge: labels/user.csv: 5 rows matched, 0 files without a user row" err.txt
grep -q "1 user rows match no scanned file (first: data/nothere.dcm)" err.txt

"$REF_PYTHON" - m.csv data <<'EOF'
import csv, sys
from PIL import Image
rows = {r["path"]: r for r in csv.DictReader(open(sys.argv[1], newline=""))}
d = sys.argv[2]
bad = []
def want(path, **kv):
    r = rows.get(path)
    if r is None:
        bad.append("missing row " + path); return
    for k, v in kv.items():
        if r.get(k) != v:
            bad.append("%s: %s=%r, want %r" % (path, k, r.get(k), v))
want("data/test1.dcm", status="ok", label="1", unit="fixed", hospital="academic", body_part="CHEST")
# RIBCAGE overridden to Chest: the gate lets it through now.
want("data/test4.dcm", status="ok", reason="", label="0", body_part="Chest", unit="portable")
# Unknown view XX overridden to PA.
want("data/sub/test6.dcm", status="ok", view="PA", label="1", hospital="community")
for p, ext in (("data/img16.png", "png"), ("data/sub/photo.jpg", "jpg")):
    im = Image.open(p)
    r = rows[p]
    if (int(r["columns"]), int(r["rows"])) != im.size:
        bad.append("%s: %sx%s, PIL %s" % (p, r["columns"], r["rows"], im.size))
want("data/img16.png", status="ok", bits_stored="16", photometric="MONOCHROME2", modality="DX",
     body_part="CHEST", view="AP", patient_id="P9", transfer_syntax="")
want("data/sub/photo.jpg", status="ok", bits_stored="8", photometric="RGB", modality="", patient_id="P10")
header = list(csv.reader(open(sys.argv[1], newline="")))[0]
std = ["path", "status", "reason", "patient_id", "study_uid", "series_uid", "sop_uid", "modality",
       "body_part", "view", "manufacturer", "model", "station", "institution", "sex", "age",
       "acquisition_date", "rows", "columns", "pixel_spacing", "bits_stored", "photometric",
       "transfer_syntax", "presentation_intent"]
if header != std + ["label", "unit", "hospital"]:
    bad.append("header %s" % header)
for b in bad:
    print("MISMATCH", b)
sys.exit(1 if bad else 0)
EOF

# Merge by SOP UID. test1/test4/test6 are one image with edited tags and
# share their SOP UID: the scan warns, and merging on it is refused.
grep -q "scan: warning: 3 files share a SOP Instance UID" err.txt || { cat err.txt; exit 1; }
mkdir extra && cp "$U/test2.dcm" extra/
uid() { "$REF_PYTHON" -c 'import csv,sys; print([r["sop_uid"] for r in csv.DictReader(open("m2.csv")) if r["path"]==sys.argv[1]][0])' "$1"; }
"$FREEAIR_BIN" scan data extra -q >m2.csv 2>/dev/null
printf 'sop_uid,label,reader\n%s,1,R2\n' "$(uid extra/test2.dcm)" >bysop.csv
"$FREEAIR_BIN" scan data extra --merge bysop.csv --key sop_uid -q >m3.csv 2>/dev/null
grep -q "^extra/test2.dcm,ok,,.*,1,R2$" m3.csv
printf 'sop_uid,label\n%s,1\n' "$(uid data/test4.dcm)" >bysop2.csv
if "$FREEAIR_BIN" scan data --merge bysop2.csv --key sop_uid -q >/dev/null 2>e0.txt; then exit 1; fi
grep -q "^freeair scan: bysop2.csv: sop_uid '.*' matches more than one manifest row" e0.txt

# Refusals: two user rows for one file; a bare name matching two files; no key column.
printf 'path,label\ndata/test1.dcm,1\n./data/test1.dcm,0\n' >dup.csv
if "$FREEAIR_BIN" scan data --merge dup.csv -q >/dev/null 2>e1.txt; then exit 1; fi
grep -q "^freeair scan: dup.csv: rows 1 and 2 both refer to data/test1.dcm" e1.txt
cp data/test1.dcm data/sub/test1.dcm
printf 'path,label\ntest1.dcm,1\n' >amb.csv
if "$FREEAIR_BIN" scan data --merge amb.csv -q >/dev/null 2>e2.txt; then exit 1; fi
grep -q "^freeair scan: amb.csv: path 'test1.dcm' matches more than one manifest row" e2.txt
printf 'file,label\nx,1\n' >nokey.csv
if "$FREEAIR_BIN" scan data --merge nokey.csv -q >/dev/null 2>e3.txt; then exit 1; fi
grep -q "^freeair scan: nokey.csv: no 'path' column to merge on" e3.txt
echo "test_scan_merge: ok"
