#!/usr/bin/env bash
# test_serve_refusals.sh - what the triage node refuses, with which DICOM
# status, and that it keeps running afterwards (real DCMTK peers):
#   host off the allow-list, calling AE off the allow-list, wrong called AE
#     -> A-ASSOCIATE-RJ (checked in storescu/echoscu output and the node log);
#   the listener is bound to 127.0.0.1 only (/proc/net/tcp);
#   non-chest images (synthetic hip; real NEMA WG04 CR hip) -> 0xC010;
#   an object over max_object_mb -> 0xA700; an invalid SOP Instance UID
#     -> 0xC000; SOP classes not configured (CT, DX for processing) -> no
#     presentation context; garbage bytes on the port -> connection dropped;
#   an object whose pixel data is truncated is acknowledged (header fine) and
#     then marked error by the scorer, never crashing it.
# None of the refused objects gets a database row; every refusal is logged.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}" "${FREEAIR_SHARED:?}"
tmp=$(mktemp -d)
. "$FREEAIR_ROOT/tests/ref/serve_lib.sh"
trap 'serve_cleanup; rm -rf "$tmp"' EXIT

serve_make_checkpoint "$tmp"
mk() { "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$@"; }
mk "$tmp/ok" --n 1 --seed 21
mk "$tmp/hip" --n 1 --seed 22 --kind hip
mk "$tmp/ct" --n 1 --seed 23 --kind ct
mk "$tmp/proc" --n 1 --seed 24 --kind processing
mk "$tmp/big" --n 1 --seed 25 --size 1400
mk "$tmp/late" --n 1 --seed 26
# invalid UID and truncated pixel data, written with pydicom
"$REF_PYTHON" - "$tmp" <<'PY'
import sys, pydicom
tmp = sys.argv[1]
ds = pydicom.dcmread(f"{tmp}/ok/img_0000.dcm")
ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.7777.abc"
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.save_as(f"{tmp}/baduid.dcm")
ds = pydicom.dcmread(f"{tmp}/ok/img_0000.dcm")
ds.SOPInstanceUID = "1.2.826.0.1.3680043.9.7777.99.1"
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
ds.PixelData = ds.PixelData[: len(ds.PixelData) // 4]
ds.save_as(f"{tmp}/trunc.dcm")
PY

port=$(serve_free_port)
common="ae_title = FREEAIR
port = $port
allowed_aes = MODALITY
data_dir = $tmp/node
model = $tmp/run
max_object_mb = 3
acse_timeout = 5
dimse_timeout = 10
quiet = true"
log="$tmp/node/serve.jsonl"
db="$tmp/node/serve.db"

# 1. Host allow-list: only 127.0.0.2 may call; we call from 127.0.0.1.
printf '%s\nallowed_hosts = 127.0.0.2\n' "$common" >"$tmp/a.conf"
serve_start_node "$tmp/a.conf" "$tmp/node.log"
hexport=$(printf '%04X' "$port")
grep -q " 0100007F:$hexport 00000000:0000 0A" /proc/net/tcp || { echo "FAIL: not listening on 127.0.0.1"; exit 1; }
if grep -q " 00000000:$hexport 00000000:0000 0A" /proc/net/tcp; then echo "FAIL: listening on the wildcard"; exit 1; fi
if echoscu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" >"$tmp/o.txt" 2>&1; then echo "FAIL: host not refused"; exit 1; fi
grep -q "Association Rejected" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: no A-ASSOCIATE-RJ"; exit 1; }
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"
grep -q '"assoc_rejected".*host not allowed' "$log" || { cat "$log"; echo "FAIL: host refusal not logged"; exit 1; }

# 2. The rest with loopback allowed.
printf '%s\nallowed_hosts = 127.0.0.0/8\n' "$common" >"$tmp/b.conf"
serve_start_node "$tmp/b.conf" "$tmp/node.log"
if echoscu -aet INTRUDER -aec FREEAIR 127.0.0.1 "$port" >"$tmp/o.txt" 2>&1; then echo "FAIL: calling AE not refused"; exit 1; fi
grep -q "Calling AE Title Not Recognized" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: reason"; exit 1; }
if echoscu -aet MODALITY -aec OTHERNODE 127.0.0.1 "$port" >"$tmp/o.txt" 2>&1; then echo "FAIL: called AE not refused"; exit 1; fi
grep -q "Called AE Title Not Recognized" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: reason"; exit 1; }

store() { storescu -d -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$@" >"$tmp/o.txt" 2>&1 || true; }
store "$tmp/hip/img_0000.dcm"
grep -qi "DIMSE Status *: 0xc010" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: hip not refused with C010"; exit 1; }
store -xr "$FREEAIR_SHARED/testdata/dicom/dicom-test-files_WG04/RG2_RLE.dcm"
grep -qi "DIMSE Status *: 0xc010" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: real hip not refused with C010"; exit 1; }
store "$tmp/big/img_0000.dcm"
grep -qi "DIMSE Status *: 0xa700" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: oversized not refused with A700"; exit 1; }
store "$tmp/baduid.dcm"
grep -qi "DIMSE Status *: 0xc000" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: invalid UID not refused with C000"; exit 1; }
store "$tmp/ct/img_0000.dcm"
grep -qi "no presentation context" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: CT accepted"; exit 1; }
store "$tmp/proc/img_0000.dcm"
grep -qi "no presentation context" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: for-processing accepted"; exit 1; }
# garbage on the port, then a half-open connection that sends nothing
"$REF_PYTHON" - "$port" <<'PY'
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"\x01\x00" + os.urandom(4000))
try:
    s.recv(100)
except OSError:
    pass
s.close()
PY
kill -0 "$SERVE_NODE_PID" || { echo "FAIL: node died"; exit 1; }

store "$tmp/trunc.dcm"
store "$tmp/late/img_0000.dcm"
grep -qi "DIMSE Status *: 0x0000" "$tmp/o.txt" || { cat "$tmp/o.txt"; echo "FAIL: valid image after refusals"; exit 1; }
echoscu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" || { echo "FAIL: node not answering"; exit 1; }
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state IN ('scored','error')" 60 2
[ "$(sqlite3 "$db" "SELECT state FROM instances WHERE sop_uid='1.2.826.0.1.3680043.9.7777.99.1'")" = error ] || {
  echo "FAIL: truncated pixel data not marked error"; exit 1; }
[ "$(sqlite3 "$db" "SELECT COUNT(*) FROM instances")" = 2 ] || { echo "FAIL: refused objects got rows"; exit 1; }
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"

"$REF_PYTHON" - "$log" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
rej = [e for e in ev if e["event"] == "assoc_rejected"]
ref = [e for e in ev if e["event"] == "store_refused"]
why = " | ".join(e.get("detail", "") for e in rej)
assert "calling AE title not allowed" in why and "called AE title not ours" in why and "host not allowed" in why, why
codes = " | ".join(e["detail"] for e in ref)
for c in ("0xC010", "0xA700", "0xC000"):
    assert c in codes, (c, codes)
assert any(e["event"] == "score_failed" for e in ev)
assert any(e["event"] == "assoc_failed" for e in ev), "garbage connection not logged"
print(f"refusals: {len(rej)} associations and {len(ref)} objects refused and logged")
PY
echo "test_serve_refusals: ok"
