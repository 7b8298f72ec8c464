#!/usr/bin/env bash
# test_scan_testdata.sh - `freeair scan` over the real third-party DICOM corpus
# ($FREEAIR_SHARED/testdata/dicom): every file gets the status and reason the
# corpus README documents (RIBCAGE, CT, unknown view XX, hip, extremity,
# C-spine lateral, no pixel data), the header columns agree with pydicom (an
# independent reader), non-image files are skipped, the output does not depend
# on the thread count, and broken inputs (truncated, empty, not an image,
# missing) give error rows or a clear failure without stopping the scan.
# 966.dcm has a sound header over a corrupt JPEG 2000 codestream: a header scan
# lists it as ok; --verify decodes and marks it error, decode_failed.
set -euo pipefail
T="$FREEAIR_SHARED/testdata/dicom"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$FREEAIR_BIN" scan "$T" --threads 2 -q -o "$tmp/m.csv" --log "$tmp/scan.jsonl" 2>"$tmp/stderr"
grep -q "scan: 28 files" "$tmp/stderr"
"$FREEAIR_BIN" scan "$T" --threads 1 -q >"$tmp/m1.csv" 2>/dev/null
cmp "$tmp/m.csv" "$tmp/m1.csv"   # thread count does not change the output

"$REF_PYTHON" - "$T" "$tmp/m.csv" "$tmp/scan.jsonl" <<'EOF'
import csv, json, sys
import pydicom

root, manifest, log = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {r["path"][len(root) + 1:]: r for r in csv.DictReader(open(manifest, newline=""))}
hip = ["dicom-test-files_WG04/RG2_%s.dcm" % s for s in ("J2KI", "J2KR", "RLE", "UNC")] + \
      ["pylibjpeg-data/RG2_%s.dcm" % s for s in ("JLSL", "JLSN", "JPLL", "JPLY")]
ext = ["dicom-test-files_WG04/RG3_%s.dcm" % s for s in ("JLSL", "JLSN", "JPLL", "JPLY", "RLE", "UNC")]
U = "udacity-AIHCND_C2_Starter/"
# file -> (status, reason codes in order, view)
want = {p: ("excluded", ["not_chest"], None) for p in hip + ext}
want.update({
    "fo-dicom/CR-MONO1-10-chest": ("ok", [], "PA"),
    "orthanc-tests/HierarchicalAnonymization_CR000000.dcm": ("error", ["no_pixel_data", "not_chest"], "AP"),
    "orthanc-tests/Issue44_Monochrome1-Jpeg.dcm": ("ok", [], ""),
    "orthanc-tests/Issue56-NoPixelData.dcm": ("error", ["no_pixel_data", "not_chest", "lateral_view"], "RL"),
    "pydicom/chrJapMulti.dcm": ("error", ["no_pixel_data"], "PA"),
    "pydicom/dicomdirtests_77654033_CR1_6154.dcm": ("excluded", ["not_chest", "lateral_view"], "LL"),
    "pylibjpeg-data/966.dcm": ("ok", [], "PA"),
    "pylibjpeg-data/RG1_JLSN.dcm": ("ok", [], "PA"),
    U + "test1.dcm": ("ok", [], "PA"),
    U + "test2.dcm": ("ok", [], "AP"),
    U + "test3.dcm": ("ok", [], "AP"),
    U + "test4.dcm": ("excluded", ["not_chest"], "PA"),
    U + "test5.dcm": ("excluded", ["not_radiograph"], "PA"),
    U + "test6.dcm": ("excluded", ["unknown_view"], "XX"),
})
bad = []
if set(rows) != set(want):
    bad.append("files: extra %s missing %s" % (sorted(set(rows) - set(want)), sorted(set(want) - set(rows))))
for p, (status, codes, view) in want.items():
    r = rows.get(p)
    if not r:
        continue
    got = [item.split(":")[0] for item in r["reason"].split("; ")] if r["reason"] else []
    if r["status"] != status or got != codes:
        bad.append("%s: %s [%s], want %s %s" % (p, r["status"], r["reason"], status, codes))
    if view is not None and r["view"] != view:
        bad.append("%s: view %r, want %r" % (p, r["view"], view))
for p, age in ((U + "test1.dcm", "81"), (U + "test2.dcm", "58"), (U + "test3.dcm", "77"),
               ("pylibjpeg-data/RG1_JLSN.dcm", None)):
    if age and rows[p]["age"] != age:
        bad.append("%s: age %r, want %r" % (p, rows[p]["age"], age))

# Header columns against pydicom.
def s(ds, kw):
    v = ds.get(kw, "")
    return "" if v is None else str(v).strip()
for p, r in rows.items():
    ds = pydicom.dcmread(root + "/" + p, stop_before_pixels=True, force=True)
    checks = {"sop_uid": s(ds, "SOPInstanceUID"), "study_uid": s(ds, "StudyInstanceUID"),
              "series_uid": s(ds, "SeriesInstanceUID"), "modality": s(ds, "Modality"),
              "rows": s(ds, "Rows"), "columns": s(ds, "Columns"), "bits_stored": s(ds, "BitsStored"),
              "photometric": s(ds, "PhotometricInterpretation"), "sex": s(ds, "PatientSex")}
    bp = s(ds, "BodyPartExamined")
    if bp.isascii():
        checks["body_part"] = bp
    if hasattr(ds, "file_meta") and "TransferSyntaxUID" in ds.file_meta:
        checks["transfer_syntax"] = str(ds.file_meta.TransferSyntaxUID)
    for col, ref in checks.items():
        if r[col] != ref:
            bad.append("%s: %s %r, pydicom %r" % (p, col, r[col], ref))
# The log has one record per file and a summary.
recs = [json.loads(l) for l in open(log)]
scans = [x for x in recs if x["event"] == "scan"]
done = [x for x in recs if x["event"] == "scan_done"]
if len(scans) != 28 or len(done) != 1 or done[0]["ok"] != 7 or done[0]["error"] != 3:
    bad.append("log: %d scan records, summary %s" % (len(scans), done))
if not any(x["event"] == "scan_skip" and x["path"].endswith("README.md") for x in recs):
    bad.append("log: README.md not reported as skipped")
for b in bad:
    print("MISMATCH", b)
print("checked %d files against the expected gate results and pydicom" % len(rows))
sys.exit(1 if bad else 0)
EOF

# --verify decodes: the corrupt JPEG 2000 file becomes an error.
"$FREEAIR_BIN" scan "$T/pylibjpeg-data/966.dcm" "$T/udacity-AIHCND_C2_Starter/test1.dcm" --verify -q >"$tmp/v.csv" 2>/dev/null
grep -q '966.dcm,error,"decode_failed: .*JPEG 2000' "$tmp/v.csv"
grep -q 'test1.dcm,ok,,' "$tmp/v.csv"

# Broken inputs: truncated DICOM, empty .dcm, a text file named explicitly;
# the scan goes on and lists each as error with a reason.
mkdir "$tmp/bad"
head -c 3000 "$T/pylibjpeg-data/RG1_JLSN.dcm" >"$tmp/bad/truncated.dcm"
: >"$tmp/bad/empty.dcm"
echo "not an image" >"$tmp/bad/notes.txt"
cp "$T/udacity-AIHCND_C2_Starter/test2.dcm" "$tmp/bad/good.dcm"
"$FREEAIR_BIN" scan "$tmp/bad" "$tmp/bad/notes.txt" -q >"$tmp/b.csv" 2>"$tmp/b.err"
grep -q "^$tmp/bad/good.dcm,ok," "$tmp/b.csv"
grep -q "^$tmp/bad/empty.dcm,error,\"unreadable: not a DICOM, PNG or JPEG file\"" "$tmp/b.csv"
grep -q "^$tmp/bad/notes.txt,error,\"unreadable: not a DICOM, PNG or JPEG file\"" "$tmp/b.csv"
grep -q "^$tmp/bad/truncated.dcm,error,unreadable: .*truncated" "$tmp/b.csv"
[ "$(wc -l <"$tmp/b.csv")" -eq 5 ]

# A missing input is a failure with one clear line; no output.
if "$FREEAIR_BIN" scan "$tmp/nope" -q >"$tmp/n.csv" 2>"$tmp/n.err"; then exit 1; fi
grep -q "^freeair scan: $tmp/nope: No such file or directory" "$tmp/n.err"
# Usage errors exit 2.
set +e
"$FREEAIR_BIN" scan >/dev/null 2>&1; [ $? -eq 2 ] || exit 1
"$FREEAIR_BIN" scan "$T" --key nope >/dev/null 2>&1; [ $? -eq 2 ] || exit 1
set -e
echo "test_scan_testdata: ok"
