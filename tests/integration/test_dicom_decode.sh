#!/usr/bin/env bash
# test_dicom_decode.sh - `freeair decode` against independent decoders.
#
# 1. Every file of the shared real-world corpus: --stage raw equals GDCM
#    exactly for lossless transfer syntaxes and within the codec's stated
#    tolerance for lossy ones; --stage modality/display equal the PS3.3
#    pipeline re-implemented in tests/ref/dicom_reference.py (+-1 for
#    rounding); --info agrees with pydicom; the broken and header-only files
#    fail with one line naming the file and the reason, never a crash.
# 2. Synthetic fixtures with known stored values (pydicom): signed, rescale,
#    LINEAR/LINEAR_EXACT/SIGMOID windows, VOI and Modality LUT Sequences,
#    MONOCHROME1, Presentation LUT Shape INVERSE, padding, junk high bits,
#    High Bit != Bits Stored - 1, RGB interleaved/planar, multi-frame.
# 3. The same fixtures re-encoded by DCMTK (implicit, big endian, deflated,
#    RLE, JPEG lossless SV1/baseline, JPEG-LS lossless/near-lossless) and by
#    GDCM (JPEG 2000 lossless/lossy): identical stored values for the
#    lossless ones, GDCM's tolerance for the lossy ones.
# 4. Malformed files (truncated, short pixel data, absurd size, bad bits,
#    empty, text) are refused with exit status 1 and one line.
# 5. PNG/JPEG inputs equal PIL's grey conversion.
set -euo pipefail

BIN="${FREEAIR_BIN:?}"
REF=("$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/dicom_reference.py")
CORPUS="$FREEAIR_SHARED/testdata/dicom"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jobs="$tmp/jobs.txt"
: >"$jobs"
errors=0
bad() { echo "FAIL: $*"; errors=$((errors + 1)); }

# Runs freeair decode expecting failure: exit 1 (not a signal), exactly one
# line on stderr, naming the file and containing the pattern.
expect_refusal() { # file pattern
    local f="$1" pat="$2" rc=0
    "$BIN" decode "$f" --stage display -o "$tmp/refused.png" 2>"$tmp/err.txt" >/dev/null || rc=$?
    local lines
    lines=$(grep -vc '^freeair decode: warning:' "$tmp/err.txt" || true)
    if [ "$rc" -ne 1 ]; then bad "$f: exit status $rc, expected 1"; return; fi
    if [ "$lines" -ne 1 ]; then bad "$f: $lines error lines"; cat "$tmp/err.txt"; return; fi
    if ! grep -q "^freeair decode: $f: .*$pat" "$tmp/err.txt"; then
        bad "$f: message lacks '$pat': $(cat "$tmp/err.txt")"
        return
    fi
    echo "ok refused $(cat "$tmp/err.txt")"
}

# ---------------------------------------------------------------- 1 ---
declare -A refuse=(
    ["pylibjpeg-data/966.dcm"]="broken JPEG 2000 codestream"
    ["orthanc-tests/Issue56-NoPixelData.dcm"]="no Pixel Data"
    ["orthanc-tests/HierarchicalAnonymization_CR000000.dcm"]="no Pixel Data"
    ["pydicom/chrJapMulti.dcm"]="no Pixel Data"
)
ncorpus=0
while IFS= read -r rel; do
    f="$CORPUS/$rel"
    ncorpus=$((ncorpus + 1))
    b="$tmp/c_$(echo "$rel" | tr '/.' '__')"
    if ! "$BIN" decode "$f" --info >"$b.info" 2>"$tmp/err.txt"; then
        bad "$rel: --info failed: $(cat "$tmp/err.txt")"
    else
        echo "info $f $b.info" >>"$jobs"
    fi
    if [ -n "${refuse[$rel]:-}" ]; then
        expect_refusal "$f" "${refuse[$rel]}"
        [ "$rel" = "pylibjpeg-data/966.dcm" ] && echo "undecodable $f" >>"$jobs"
        continue
    fi
    ok=1
    for st in raw modality display; do
        if ! "$BIN" decode "$f" --stage $st -o "$b.$st.png" 2>"$tmp/err.txt"; then
            bad "$rel --stage $st: $(cat "$tmp/err.txt")"
            ok=0
        fi
    done
    [ $ok = 1 ] || continue
    echo "raw $f $b.raw.png" >>"$jobs"
    echo "display $f $b.modality.png $b.raw.png modality" >>"$jobs"
    echo "display $f $b.display.png $b.raw.png display" >>"$jobs"
done < <(cd "$CORPUS" && find . -type f ! -path './licenses/*' ! -name '*.md' ! -name '*.csv' | sed 's|^\./||' | sort)
[ "$ncorpus" -ge 28 ] || bad "corpus has $ncorpus files, expected 28"

# The view of the NIH images lives in PatientPosition only.
"$BIN" decode "$CORPUS/udacity-AIHCND_C2_Starter/test2.dcm" --info | grep -qx 'patient_position: AP' ||
    bad "test2.dcm: PatientPosition AP not reported"
"$BIN" decode "$CORPUS/fo-dicom/CR-MONO1-10-chest" --info | grep -qx 'transfer_syntax: 1.2.840.10008.1.2' ||
    bad "CR-MONO1-10-chest: implicit VR LE not reported for a file without meta header"

# ---------------------------------------------------------------- 2 ---
fx="$tmp/fx"
"${REF[@]}" fixtures "$fx"
names=$("$REF_PYTHON" -c "import json,sys; print(' '.join(sorted(json.load(open(sys.argv[1])))))" "$fx/fixtures.json")
check_fixture() { # file fixture-name stages...
    local f="$1" n="$2"
    shift 2
    for st in "$@"; do
        if "$BIN" decode "$f" --stage "$st" -o "$f.$st.png" 2>"$tmp/err.txt"; then
            echo "fixture-check $fx $n $st $f.$st.png" >>"$jobs"
        else
            bad "$f --stage $st: $(cat "$tmp/err.txt")"
        fi
    done
}
for n in $names; do check_fixture "$fx/$n.dcm" "$n" raw modality display; done

# ---------------------------------------------------------------- 3 ---
var="$tmp/var"
mkdir -p "$var"
lossless_variant() { # tool-args... -- src name
    local name="${*: -1}" src="${*: -2:1}"
    local n
    n=$(basename "$src" .dcm)
    if "${@:1:$#-2}" "$src" "$var/$name.dcm" >/dev/null 2>"$tmp/tool.txt"; then
        check_fixture "$var/$name.dcm" "$n" raw display
        echo "raw $var/$name.dcm $var/$name.dcm.raw.png" >>"$jobs"
    else
        bad "could not make $name: $(head -3 "$tmp/tool.txt")"
    fi
}
s12="$fx/signed_rescale_linear_exact.dcm"
u16="$fx/u16_sigmoid_mono1.dcm"
u12="$fx/u12_junk_high_bits.dcm"
rgb="$fx/rgb_planar0.dcm"
multi="$fx/multiframe3.dcm"
lossless_variant dcmconv +ti "$s12" s12_implicit
lossless_variant dcmconv +tb "$s12" s12_big_endian
lossless_variant dcmconv +td "$s12" s12_deflated
lossless_variant dcmconv +tb "$rgb" rgb_big_endian
lossless_variant dcmcrle "$s12" s12_rle
lossless_variant dcmcrle "$u16" u16_rle
lossless_variant dcmcrle "$rgb" rgb_rle
lossless_variant dcmcrle "$fx/rgb_planar1.dcm" rgb1_rle
lossless_variant dcmcrle "$multi" multi_rle
lossless_variant dcmcjpeg +e1 "$u16" u16_jpeg_sv1
lossless_variant dcmcjpeg +e1 "$s12" s12_jpeg_sv1
lossless_variant dcmcjpeg +el +sv 6 "$u12" u12_jpeg_lossless_sv6
lossless_variant dcmcjpeg +e1 "$rgb" rgb_jpeg_sv1
lossless_variant dcmcjpeg +e1 "$multi" multi_jpeg_sv1
lossless_variant dcmcjpls +el "$u16" u16_jls
lossless_variant dcmcjpls +el "$s12" s12_jls
lossless_variant dcmcjpls +el "$rgb" rgb_jls
lossless_variant "${REF[@]}" j2k "$s12" s12_j2k
lossless_variant "${REF[@]}" j2k "$u16" u16_j2k
lossless_variant "${REF[@]}" j2k "$rgb" rgb_j2k
lossless_variant "${REF[@]}" j2k "$multi" multi_j2k
# Lossy: judged against GDCM by `raw` with the codec's tolerance only.
lossy_variant() { # tool-args... src name
    local name="${*: -1}" src="${*: -2:1}"
    if "${@:1:$#-2}" "$src" "$var/$name.dcm" >/dev/null 2>"$tmp/tool.txt"; then
        if "$BIN" decode "$var/$name.dcm" --stage raw -o "$var/$name.raw.png" 2>"$tmp/err.txt"; then
            echo "raw $var/$name.dcm $var/$name.raw.png" >>"$jobs"
        else
            bad "$name: $(cat "$tmp/err.txt")"
        fi
    else
        bad "could not make $name: $(head -3 "$tmp/tool.txt")"
    fi
}
lossy_variant dcmcjpeg +eb "$rgb" rgb_jpeg_baseline
lossy_variant dcmcjpeg +ee "$u12" u12_jpeg_extended
lossy_variant dcmcjpls +en +md 3 "$u16" u16_jls_near3
lossy_variant "${REF[@]}" j2k --lossy "$u16" u16_j2k_lossy

# ---------------------------------------------------------------- 4 ---
expect_refusal "$fx/bad_truncated.dcm" "truncated"
expect_refusal "$fx/bad_short_pixel_data.dcm" "Pixel Data holds"
expect_refusal "$fx/bad_absurd_size.dcm" "Pixel Data holds"
expect_refusal "$fx/bad_bits_stored.dcm" "Bits Stored"
expect_refusal "$fx/bad_bits_allocated32.dcm" "Bits Allocated 32"
expect_refusal "$fx/bad_empty.dcm" "empty file"
expect_refusal "$fx/bad_text.dcm" "not a DICOM, PNG or JPEG"
expect_refusal "$fx/bad_preamble_only.dcm" "truncated"
expect_refusal "$tmp/does-not-exist.dcm" "No such file"
expect_refusal "$tmp" "is a directory"
# Fragments of a real JPEG 2000 file cut short.
head -c 200000 "$CORPUS/dicom-test-files_WG04/RG2_J2KR.dcm" >"$tmp/cut_j2k.dcm"
expect_refusal "$tmp/cut_j2k.dcm" "truncated"

# ---------------------------------------------------------------- 5 ---
img="$tmp/img"
"${REF[@]}" images "$img"
for f in rgb.png rgba.png palette.png grey8.png grey16.png grey.jpg colour.jpg; do
    if "$BIN" decode "$img/$f" -o "$img/$f.out.png" 2>"$tmp/err.txt"; then
        echo "pil-grey $img/$f $img/$f.out.png" >>"$jobs"
    else
        bad "$f: $(cat "$tmp/err.txt")"
    fi
done
grep -q "colour" <("$BIN" decode "$img/rgb.png" -o "$tmp/x.png" 2>&1) || bad "rgb.png: no colour warning"

echo "--- reference checks ($(wc -l <"$jobs") jobs)"
if ! "${REF[@]}" batch "$jobs" 2>"$tmp/ref_stderr.txt"; then
    errors=$((errors + 1))
fi
if [ "$errors" -ne 0 ]; then
    echo "test_dicom_decode: $errors failure(s)"
    exit 1
fi
echo "test_dicom_decode: ok"
