#!/usr/bin/env bash
# test_serve_basic.sh - the triage node end to end with real DCMTK peers:
# storescu (modality) sends synthetic (pydicom-written) and real shared-testdata
# chest radiographs to `freeair serve`; every acknowledged instance is stored,
# scored and reported: the Comprehensive SR and the heatmap secondary capture
# reach storescp (PACS) and validate with dsrdump and dciodvfy; pydicom reads
# them back independently (score, decision vs locked threshold, references to
# the source instance and study); the scores equal `freeair predict --model`
# on the same files; a resend of the same SOP Instance UIDs is harmless; the
# outgoing queue survives a restart while the PACS is down.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}" "${FREEAIR_SHARED:?}"
for t in storescu storescp echoscu dsrdump dciodvfy sqlite3; do
  command -v "$t" >/dev/null || { echo "FAIL: $t not installed"; exit 1; }
done
tmp=$(mktemp -d)
. "$FREEAIR_ROOT/tests/ref/serve_lib.sh"
trap 'serve_cleanup; rm -rf "$tmp"' EXIT

serve_make_checkpoint "$tmp"
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/in" --n 6 --studies 3 --seed 11
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/in" --n 2 --studies 1 --seed 12 --modality DX
mkdir -p "$tmp/in/real"
cp "$FREEAIR_SHARED/testdata/dicom/fo-dicom/CR-MONO1-10-chest" "$tmp/in/real/cr_chest.dcm"
cp "$FREEAIR_SHARED/testdata/dicom/udacity-AIHCND_C2_Starter/test1.dcm" "$tmp/in/real/dx_chest.dcm"
n_sent=$(find "$tmp/in" -type f | wc -l)

port=$(serve_free_port); pacs_port=$(serve_free_port)
cat >"$tmp/serve.conf" <<CONF
ae_title = FREEAIR
port = $port
allowed_aes = MODALITY
allowed_hosts = 127.0.0.1
data_dir = $tmp/node
model = $tmp/run
destination = 127.0.0.1:$pacs_port
destination_ae = PACS
retry_initial = 0.3
retry_max = 1
heatmap_max_side = 128
accept_secondary_capture = true
quiet = true
CONF
db="$tmp/node/serve.db"
serve_start_pacs "$tmp/pacs" "$pacs_port"
serve_start_node "$tmp/serve.conf" "$tmp/node.log"

echoscu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" || { echo "FAIL: C-ECHO"; exit 1; }
# +r: recurse; -nh: no halt on an unsupported file. storescu exits non-zero
# when any store fails.
storescu -aet MODALITY -aec FREEAIR +sd +r 127.0.0.1 "$port" "$tmp/in" >"$tmp/storescu.log" 2>&1 || {
  cat "$tmp/storescu.log"; echo "FAIL: storescu"; exit 1; }

serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state='scored'" 120 "$n_sent"
serve_wait_sql "$db" "SELECT COUNT(*) FROM outbox WHERE state='sent'" 60 "$((2 * n_sent))"
[ "$(ls "$tmp/pacs" | grep -c '^SRc\.')" = "$n_sent" ] || { ls "$tmp/pacs"; echo "FAIL: SR count at PACS"; exit 1; }
[ "$(ls "$tmp/pacs" | grep -c '^SC\.')" = "$n_sent" ] || { ls "$tmp/pacs"; echo "FAIL: SC count at PACS"; exit 1; }

# DCMTK and dicom3tools validation of what the PACS received.
for f in "$tmp"/pacs/SRc.* "$tmp"/pacs/SC.*; do
  if [[ $(basename "$f") == SRc.* ]]; then
    dsrdump "$f" >"$tmp/sr.txt" || { echo "FAIL: dsrdump $f"; exit 1; }
    grep -q 'Pneumoperitoneum probability' "$tmp/sr.txt" || { cat "$tmp/sr.txt"; echo "FAIL: SR content"; exit 1; }
  fi
  dciodvfy "$f" >"$tmp/vfy.txt" 2>&1 || true
  if grep -q '^Error' "$tmp/vfy.txt"; then cat "$tmp/vfy.txt"; echo "FAIL: dciodvfy errors in $f"; exit 1; fi
done

# Independent read-back with pydicom, against the node's database.
sqlite3 -separator ' ' "$db" "SELECT sop_uid, study_uid, printf('%.6f', score), decision, IFNULL(threshold,'nan'), path FROM instances" >"$tmp/db.txt"
"$REF_PYTHON" - "$tmp" <<'PY'
import glob, math, sys
import pydicom
tmp = sys.argv[1]
rows = {}
for line in open(f"{tmp}/db.txt"):
    sop, study, score, dec, thr, path = line.split()
    rows[sop] = (study, float(score), int(dec), float(thr), path)

def walk(items):
    for it in items:
        yield it
        if "ContentSequence" in it:
            yield from walk(it.ContentSequence)

seen_sr, seen_sc = set(), set()
for f in glob.glob(f"{tmp}/pacs/SRc.*"):
    ds = pydicom.dcmread(f)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33", ds.SOPClassUID
    ref = None; prob = thr = None; assess = None
    for it in walk(ds.ContentSequence):
        name = it.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in it else ""
        if it.ValueType == "IMAGE":
            ref = it.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        elif name == "Pneumoperitoneum probability":
            prob = float(it.MeasuredValueSequence[0].NumericValue)
        elif name == "Operating point threshold":
            thr = float(it.MeasuredValueSequence[0].NumericValue)
        elif name == "AI assessment":
            assess = it.ConceptCodeSequence[0].CodeMeaning
    assert ref in rows, f"SR {f} references unknown instance {ref}"
    study, score, dec, dthr, _ = rows[ref]
    assert ds.StudyInstanceUID == study, "SR not in the source study"
    ev = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == study
    assert ev.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ref
    assert abs(prob - score) < 2e-6, (prob, score)
    assert thr is not None and abs(thr - dthr) < 2e-6
    assert (prob >= thr) == (dec == 1), (prob, thr, dec)
    assert assess == ("Suspected" if dec == 1 else "Not suspected"), assess
    seen_sr.add(ref)
for f in glob.glob(f"{tmp}/pacs/SC.*"):
    ds = pydicom.dcmread(f)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    ref = ds.SourceImageSequence[0].ReferencedSOPInstanceUID
    assert ref in rows and ds.StudyInstanceUID == rows[ref][0]
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    px = ds.pixel_array
    assert px.shape == (ds.Rows, ds.Columns, 3) and max(ds.Rows, ds.Columns) <= 128
    assert px.std() > 0, "blank overlay"
    seen_sc.add(ref)
assert seen_sr == set(rows) and seen_sc == set(rows), "every instance must get one SR and one SC"
# Stored files are the bytes that were sent (pixel data intact).
for sop, (_, _, _, _, path) in rows.items():
    assert pydicom.dcmread(path).SOPInstanceUID == sop
print(f"basic: {len(rows)} instances, SR+SC verified")
PY

# Scores equal the predict path on the stored files.
"$FREEAIR_BIN" predict --model "$tmp/run" --quiet "$tmp/node/store" >"$tmp/pred.csv"
"$REF_PYTHON" - "$tmp" <<'PY'
import csv, sys
tmp = sys.argv[1]
db = {l.split()[5]: float(l.split()[2]) for l in open(f"{tmp}/db.txt")}
n = 0
for r in csv.DictReader(open(f"{tmp}/pred.csv")):
    if r["path"] in db:
        assert abs(float(r["probability"] if "probability" in r else r["prob"]) - db[r["path"]]) < 2e-6, r
        n += 1
assert n == len(db), (n, len(db))
PY

# Idempotent resend: same UIDs again -> acknowledged, nothing new.
storescu -aet MODALITY -aec FREEAIR +sd +r 127.0.0.1 "$port" "$tmp/in" >/dev/null 2>&1 || { echo "FAIL: resend refused"; exit 1; }
sleep 2
[ "$(sqlite3 "$db" 'SELECT COUNT(*) FROM instances')" = "$n_sent" ] || { echo "FAIL: resend added rows"; exit 1; }
[ "$(sqlite3 "$db" 'SELECT COUNT(*) FROM outbox')" = "$((2 * n_sent))" ] || { echo "FAIL: resend queued results"; exit 1; }
grep -q '"duplicate"' "$tmp/node/serve.jsonl" || { echo "FAIL: duplicates not logged"; exit 1; }

# PACS down: results wait in the SQLite queue across a restart of the node.
serve_stop "$SERVE_PACS_PID"
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/late" --n 2 --seed 13
storescu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$tmp"/late/*.dcm >/dev/null 2>&1 || { echo "FAIL: late store"; exit 1; }
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state='scored'" 60 "$((n_sent + 2))"
serve_wait_sql "$db" "SELECT COUNT(*) FROM outbox WHERE state='pending' AND attempts>0" 30 4
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"
serve_start_pacs "$tmp/pacs" "$pacs_port"
serve_start_node "$tmp/serve.conf" "$tmp/node.log"
serve_wait_sql "$db" "SELECT COUNT(*) FROM outbox WHERE state='sent'" 60 "$((2 * n_sent + 4))"
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE reported_at IS NULL" 10 0
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"
echo "test_serve_basic: ok ($n_sent instances scored and reported; queue survived a restart)"
