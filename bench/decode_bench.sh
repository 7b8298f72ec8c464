#!/usr/bin/env bash
# bench/decode_bench.sh - decode throughput of `freeair decode` beside DCMTK's
# dcmj2pnm on the same large radiographs (2500 x 2048, 15 bits stored),
# one file per transfer syntax. Both tools decode the first frame, apply the
# file's first VOI window and write a 16-bit grey PNG (freeair: zlib level 1;
# dcmj2pnm: libpng's default level), so the numbers are end to end.
#
# The files are made at run time from the shared Philips chest radiograph
# (RG1_JLSN.dcm), resized with PIL, written uncompressed by pydicom and
# re-encoded by DCMTK (RLE, JPEG lossless SV1, JPEG-LS) and GDCM (JPEG 2000,
# which dcmj2pnm cannot decode). hyperfine times each command.
#
#   bench/decode_bench.sh [RUNS]      (default 5 runs after 1 warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${FREEAIR_BUILD:-build}"
BIN="${FREEAIR_BIN:-$PWD/$BUILD/freeair}"
PY="${REF_PYTHON:-/usr/bin/python3}"
SHARED="${FREEAIR_SHARED:-$PWD/../shared}"
RUNS="${1:-5}"
SRC="$SHARED/testdata/dicom/pylibjpeg-data/RG1_JLSN.dcm"
[ -x "$BIN" ] || { echo "decode_bench: build $BIN first (make)"; exit 1; }
command -v hyperfine >/dev/null || { echo "decode_bench: hyperfine not found"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

"$BIN" decode "$SRC" --stage raw -o "$tmp/src.png"
"$PY" - "$tmp/src.png" "$tmp/native.dcm" <<'PYEOF'
import sys
import numpy as np
from PIL import Image
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
a = np.array(Image.open(sys.argv[1])).astype(np.float32)
big = np.array(Image.fromarray(a, mode="F").resize((2048, 2500), Image.BILINEAR))
big = np.clip(np.round(big), 0, 32767).astype(np.uint16)
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = ExplicitVRLittleEndian
ds = Dataset()
ds.file_meta, ds.preamble = meta, b"\0" * 128
ds.is_little_endian, ds.is_implicit_VR = True, False
ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
ds.Modality, ds.PatientID = "CR", "BENCH"
ds.Rows, ds.Columns = big.shape
ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1"
ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 14, 0
ds.WindowCenter, ds.WindowWidth = "15000", "30000"
ds.PixelData = big.tobytes()
ds.save_as(sys.argv[2], write_like_original=False)
PYEOF
dcmcrle "$tmp/native.dcm" "$tmp/rle.dcm"
dcmcjpeg +e1 "$tmp/native.dcm" "$tmp/jpeg_sv1.dcm"
dcmcjpls +el "$tmp/native.dcm" "$tmp/jpeg_ls.dcm"
"$PY" tests/ref/dicom_reference.py j2k "$tmp/native.dcm" "$tmp/j2k.dcm" >/dev/null

printf '\n%-10s %9s %12s %12s %8s %10s\n' syntax MB freeair_ms dcmtk_ms ratio freeair_MP/s
for s in native rle jpeg_sv1 jpeg_ls j2k; do
    f="$tmp/$s.dcm"
    cmds=("$BIN decode $f --stage display -o $tmp/out_fa.png")
    # dcmj2pnm has DCMTK's JPEG and RLE codecs; dcml2pnm is the same tool
    # with the JPEG-LS codec; neither decodes JPEG 2000.
    case "$s" in
    j2k) ;;
    jpeg_ls) cmds+=("dcml2pnm +Wi 1 +on2 $f $tmp/out_dcmtk.png") ;;
    *) cmds+=("dcmj2pnm +Wi 1 +on2 $f $tmp/out_dcmtk.png") ;;
    esac
    if ! hyperfine -N --style none --warmup 1 --runs "$RUNS" --export-json "$tmp/$s.json" "${cmds[@]}" \
        >"$tmp/$s.log" 2>&1; then
        echo "$s: a command failed:"
        tail -n 5 "$tmp/$s.log"
        continue
    fi
    "$PY" - "$tmp/$s.json" "$s" "$(stat -c %s "$f")" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
fa = r[0]["median"] * 1000
dc = r[1]["median"] * 1000 if len(r) > 1 else float("nan")
ratio = dc / fa if len(r) > 1 else float("nan")
mp = 2500 * 2048 / 1e6 / (fa / 1000)
print("%-10s %9.1f %12.0f %12s %8s %10.1f" % (sys.argv[2], int(sys.argv[3]) / 1e6, fa,
      "%.0f" % dc if len(r) > 1 else "n/a", "%.2fx" % ratio if len(r) > 1 else "n/a", mp))
PYEOF
done
echo
echo "ratio = DCMTK (dcmj2pnm/dcml2pnm) time / freeair time (>1: freeair faster); medians of $RUNS runs, OMP_NUM_THREADS=$OMP_NUM_THREADS"
