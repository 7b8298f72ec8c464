#!/usr/bin/env bash
# tests/fuzz/run.sh - `make fuzz`: build every tests/fuzz/fuzz_*.c as a
# libFuzzer target (clang -fsanitize=fuzzer,address,undefined) against the
# library sources and run each for FUZZ_SECONDS (default 20).
#
# The library is compiled once into $FUZZ_BUILD/libfreeair-fuzz.a (objects
# rebuilt only when a source or header changed) and each target links what it
# needs from it, so new fuzz_*.c files are picked up with no edit here.
# Seeds: tests/fuzz/seeds/<target>/ when present, plus generated ones for
# fuzz_dicom (small real files, pydicom fixtures re-encoded with DCMTK) and
# fuzz_png (PIL images). The evolving corpus stays in
# $FUZZ_BUILD/corpus/<target>; crashes land in $FUZZ_BUILD/artifacts/.
#
#   FUZZ_SECONDS=60 tests/fuzz/run.sh            all targets, 60 s each
#   FUZZ_TARGETS="fuzz_png" tests/fuzz/run.sh    a subset
# Exit status 1 if any target failed to build or found a problem.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
OUT="${FUZZ_BUILD:-build-fuzz}"
JOBS="${FUZZ_JOBS:-2}"
REF_PYTHON="${REF_PYTHON:-/usr/bin/python3}"
FREEAIR_SHARED="${FREEAIR_SHARED:-$ROOT/../shared}"
PKGS="dcmtk libopenjp2 libpng libjpeg sqlite3 zlib ompi-c"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# A lower pixel cap keeps hostile headers inside libFuzzer's RSS limit.
DEFS="-D_GNU_SOURCE -DFA_IMAGE_MAX_PIXELS=(1ull<<22) -Isrc $(pkg-config --cflags $PKGS)"
export CFLAGS_FUZZ="-std=c11 -g -O1 -fopenmp -Wall -Wextra -Wno-unused-parameter $SAN -fsanitize=fuzzer-no-link $DEFS"
export CXXFLAGS_FUZZ="-std=c++17 -g -O1 -fopenmp -Wall -Wextra -Wno-unused-parameter $SAN -fsanitize=fuzzer-no-link $DEFS"
LIBS="$(pkg-config --libs $PKGS) -ldnnl -lm -lpthread"
mkdir -p "$OUT/obj" "$OUT/artifacts" "$OUT/corpus" "$OUT/seeds"

# ------------------------------------------------------------- library ---
newest_header=$(find src -name '*.h' -printf '%T@\n' | sort -n | tail -1)
newest_header=${newest_header%.*}
stale=()
objs=()
for src in $(ls src/{core,engine,models,data,train,eval,serve}/*.{c,cpp} 2>/dev/null); do
    obj="$OUT/obj/${src%.*}.o"
    objs+=("$obj")
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$(stat -c %Y "$obj")" -lt "$newest_header" ]; then
        stale+=("$src")
    fi
done
compile_one() { # src out-dir
    local src="$1" obj="$2/obj/${1%.*}.o"
    mkdir -p "$(dirname "$obj")"
    rm -f "$obj"
    case "$src" in
    *.cpp) clang++ $CXXFLAGS_FUZZ -c "$src" -o "$obj" 2>"$obj.log" ;;
    *) clang $CFLAGS_FUZZ -c "$src" -o "$obj" 2>"$obj.log" ;;
    esac || echo "fuzz: could not compile $src (see $obj.log); targets needing it will not link"
}
export -f compile_one
if [ ${#stale[@]} -gt 0 ]; then
    echo "fuzz: compiling ${#stale[@]} library sources with clang + sanitizers"
    printf '%s\n' "${stale[@]}" | xargs -P "$JOBS" -I{} bash -c 'compile_one "$1" "$2"' _ {} "$OUT"
fi
present=()
for o in "${objs[@]}"; do [ -f "$o" ] && present+=("$o"); done
rm -f "$OUT/libfreeair-fuzz.a"
ar rcs "$OUT/libfreeair-fuzz.a" "${present[@]}"

# --------------------------------------------------------------- seeds ---
seed_dicom() {
    local d="$OUT/seeds/fuzz_dicom"
    [ -n "$(ls -A "$d" 2>/dev/null)" ] && return 0
    mkdir -p "$d"
    if [ -d "$FREEAIR_SHARED/testdata/dicom" ]; then
        find "$FREEAIR_SHARED/testdata/dicom" -type f -size -64k ! -name '*.md' ! -name '*.csv' ! -path '*/licenses/*' \
            -exec cp {} "$d/" \;
    fi
    local fx
    fx=$(mktemp -d)
    if "$REF_PYTHON" tests/ref/dicom_reference.py fixtures "$fx" >/dev/null 2>&1; then
        for f in "$fx"/*.dcm; do
            [ "$(stat -c %s "$f")" -lt 65536 ] && cp "$f" "$d/"
        done
        local s="$fx/u12_junk_high_bits.dcm" r="$fx/rgb_planar0.dcm"
        dcmcrle "$s" "$d/rle.dcm" 2>/dev/null || true
        dcmcrle "$r" "$d/rle_rgb.dcm" 2>/dev/null || true
        dcmcjpeg +e1 "$s" "$d/jpeg_sv1.dcm" 2>/dev/null || true
        dcmcjpeg +ee "$s" "$d/jpeg_ext.dcm" 2>/dev/null || true
        dcmcjpeg +eb "$r" "$d/jpeg_base_rgb.dcm" 2>/dev/null || true
        dcmcjpls +el "$s" "$d/jls.dcm" 2>/dev/null || true
        dcmcjpls +en "$s" "$d/jls_near.dcm" 2>/dev/null || true
        dcmconv +tb "$s" "$d/big_endian.dcm" 2>/dev/null || true
        dcmconv +td "$s" "$d/deflated.dcm" 2>/dev/null || true
        "$REF_PYTHON" tests/ref/dicom_reference.py j2k "$s" "$d/j2k.dcm" >/dev/null 2>&1 || true
        "$REF_PYTHON" tests/ref/dicom_reference.py j2k --lossy "$s" "$d/j2k_lossy.dcm" >/dev/null 2>&1 || true
    fi
    rm -rf "$fx"
}
seed_png() {
    local d="$OUT/seeds/fuzz_png"
    [ -n "$(ls -A "$d" 2>/dev/null)" ] && return 0
    mkdir -p "$d"
    "$REF_PYTHON" tests/ref/dicom_reference.py images "$d" >/dev/null 2>&1 || true
}

# ------------------------------------------------------------- targets ---
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
export OMP_NUM_THREADS=1
failed=()
ran=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then continue; fi
    bin="$OUT/$name"
    if ! clang $CFLAGS_FUZZ -Itests/fuzz -c "$src" -o "$OUT/$name.o" 2>"$OUT/$name.build.log" ||
        ! clang++ -fsanitize=fuzzer $SAN -fopenmp -o "$bin" "$OUT/$name.o" "$OUT/libfreeair-fuzz.a" $LIBS \
            2>>"$OUT/$name.build.log"; then
        echo "fuzz: $name failed to build:"
        tail -n 15 "$OUT/$name.build.log" | sed 's/^/    /'
        failed+=("$name(build)")
        continue
    fi
    case "$name" in
    fuzz_dicom) seed_dicom ;;
    fuzz_png) seed_png ;;
    esac
    corpus="$OUT/corpus/$name"
    mkdir -p "$corpus"
    seeds=()
    [ -d "$OUT/seeds/$name" ] && seeds+=("$OUT/seeds/$name")
    [ -d "tests/fuzz/seeds/$name" ] && seeds+=("tests/fuzz/seeds/$name")
    dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=("-dict=tests/fuzz/$name.dict")
    echo "fuzz: running $name for ${FUZZ_SECONDS}s"
    ran=$((ran + 1))
    if ! "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=2048 -max_len=262144 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$name-" "${dict[@]}" "$corpus" "${seeds[@]}" \
        >"$OUT/$name.log" 2>&1; then
        echo "fuzz: $name FAILED (log $OUT/$name.log)"
        grep -E "ERROR|SUMMARY|Test unit written|runtime error" "$OUT/$name.log" | head -n 12 | sed 's/^/    /'
        failed+=("$name")
    else
        grep -E "^stat::number_of_executed_units|^Done" "$OUT/$name.log" | tail -n 1 | sed "s/^/    $name: /"
    fi
done
echo "fuzz: $ran target(s) run, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
