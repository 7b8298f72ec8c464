#!/usr/bin/env bash
# `freeair report`: one self-contained HTML file (no scripts, no network,
# images inline) whose tables equal metrics.json, with the cohort flow, split
# composition, synthetic-cohort banner and Grad-CAM gallery read from the
# run directory; report.json holds the same numbers. A run directory with
# only metrics.json still gives a report that says what is absent. Bad input
# fails with one line.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$FREEAIR_ROOT/tests/ref"
"$REF_PYTHON" "$ref/stats_synth_predictions.py" "$tmp/pred.csv" --seed 21 --models densenet161,resnext101 \
  --n-test 160 --n-val 80
"$FREEAIR_BIN" eval --predictions "$tmp/pred.csv" --group-by unit,manufacturer --bootstrap 200 --quiet -o "$tmp/run"
"$REF_PYTHON" "$ref/stats_report_fixture.py" "$tmp/pred.csv" "$tmp/run" --cams 5 >"$tmp/expect.json"
"$FREEAIR_BIN" report "$tmp/run" -o "$tmp/report.html" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
ls "$tmp"/*.tmp "$tmp"/run/*.tmp 2>/dev/null && { echo "temporary files left behind"; exit 1; }
"$REF_PYTHON" "$ref/stats_check_report.py" "$tmp/report.html" "$tmp/report.json" "$tmp/run/metrics.json" \
  --expect "$tmp/expect.json"

# Only metrics.json: graceful.
mkdir "$tmp/bare"
cp "$tmp/run/metrics.json" "$tmp/bare/"
"$FREEAIR_BIN" report "$tmp/bare" 2>/dev/null
"$REF_PYTHON" "$ref/stats_check_report.py" "$tmp/bare/report.html" "$tmp/bare/report.json" "$tmp/bare/metrics.json" \
  --no-extras

# Inputs kept outside the run directory: same report.
mkdir "$tmp/elsewhere" "$tmp/run2"
cp "$tmp/run/metrics.json" "$tmp/run/misclassified.csv" "$tmp/run/config.json" "$tmp/run2/"
cp -r "$tmp/run/manifest.csv" "$tmp/run/cohort.json" "$tmp/run/cam" "$tmp/elsewhere/"
"$FREEAIR_BIN" report "$tmp/run2" -o "$tmp/run2/r.html" --manifest "$tmp/elsewhere/manifest.csv" \
  --cohort "$tmp/elsewhere/cohort.json" --cam "$tmp/elsewhere/cam" 2>/dev/null
"$REF_PYTHON" "$ref/stats_check_report.py" "$tmp/run2/r.html" "$tmp/run2/r.json" "$tmp/run2/metrics.json" \
  --expect "$tmp/expect.json"

# Grad-CAM localisation (cam/localisation.json, docs/gradcam.md): a table under
# the gallery with every model x subgroup cell and its Wilson CI, and the same
# object in report.json.
mkdir "$tmp/loc"
cp "$tmp/run/metrics.json" "$tmp/loc/"
cp -r "$tmp/run/cam" "$tmp/loc/cam"
"$REF_PYTHON" - "$tmp/loc/cam/localisation.json" <<'PY'
import json, math, random, sys
random.seed(7)
def wilson(k, n, z=1.959963984540054):
    p = k / n; d = 1 + z * z / n; c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [max(0.0, c - h), min(1.0, c + h)]
def cell(n):
    k = random.randint(0, n)
    return {"n": n, "hits": k, "pointing_game": k / n, "pointing_game_ci": wilson(k, n),
            "mass_inside_mean": random.random(), "mass_inside_median": random.random(), "zero_maps": random.randint(0, 2)}
models = []
for name in ("densenet161", "resnext101"):
    subs = [dict(column="unit", value=v, **cell(random.randint(3, 20))) for v in ("portable", "fixed")]
    subs.append(dict(column="category", value="TP", **cell(7)))
    models.append({"name": name, "overall": cell(31), "subgroups": subs})
json.dump({"schema": "freeair.cam.localisation/1", "checkpoint": "x.safetensors", "arch": "densenet161",
           "layer": "features", "method": "gradcam", "tolerance_fraction": 0.02, "models": models, "images": []},
          open(sys.argv[1], "w"), indent=1)
PY
"$FREEAIR_BIN" report "$tmp/loc" -o "$tmp/loc/report.html" 2>/dev/null
"$REF_PYTHON" - "$tmp/loc" <<'PY'
import html, json, re, sys
d = sys.argv[1]
loc = json.load(open(f"{d}/cam/localisation.json"))
rep = json.load(open(f"{d}/report.json"))
assert rep["localisation"] == loc, "report.json localisation differs from cam/localisation.json"
page = open(f"{d}/report.html").read()
g = page.index('id="gallery"')
t = page.index('id="localisation"')
assert t > g, "localisation table is not under the gallery"
table = page[t:page.index("</table>", t)]
rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
def cells(r): return [html.unescape(re.sub(r"<[^>]+>", " ", c)).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
want = []
for m in loc["models"]:
    want.append((m["name"], "all", m["overall"]))
    want += [(m["name"], f'{s["column"]} = {s["value"]}', s) for s in m["subgroups"]]
assert len(rows) == len(want), (len(rows), len(want))
for r, (name, group, c) in zip(rows, want):
    v = cells(r)
    assert " ".join(v[0]) == name and " ".join(v[1]) == group, (v, name, group)
    assert int(v[2][0]) == c["n"] and int(v[3][0]) == c["hits"], (v, c)
    pg = v[4]
    assert abs(float(pg[0]) - c["pointing_game"]) <= 5e-4, (pg, c)
    lo, hi = pg[1].split("–")
    assert abs(float(lo) - c["pointing_game_ci"][0]) <= 5e-4 and abs(float(hi) - c["pointing_game_ci"][1]) <= 5e-4, (pg, c)
    assert abs(float(v[5][0]) - c["mass_inside_mean"]) <= 5e-4 and abs(float(v[6][0]) - c["mass_inside_median"]) <= 5e-4
    assert int(v[7][0]) == c["zero_maps"]
print(f"localisation table: {len(rows)} rows match cam/localisation.json")
PY
mkdir -p "$tmp/badl/cam"
cp "$tmp/run/metrics.json" "$tmp/badl/"
printf '{"schema": "freeair.cam.localisation/0", "models": []}' >"$tmp/badl/cam/localisation.json"

# Errors: one line naming the file, exit 1; usage: exit 2.
fails=0
expect() {
  local code="$1" pattern="$2"; shift 2
  local rc=0
  "$FREEAIR_BIN" report "$@" >/dev/null 2>"$tmp/e" || rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -q -- "$pattern" "$tmp/e" || { [ "$code" -eq 1 ] && [ "$(wc -l <"$tmp/e")" -ne 1 ]; }; then
    echo "FAIL: report $* -> $rc (want $code, /$pattern/):"; cat "$tmp/e"; fails=$((fails+1))
  fi
}
mkdir -p "$tmp/empty" "$tmp/badm" "$tmp/badc" "$tmp/other"
printf '{"schema": "freeair.metrics/1", "models": [1,}' >"$tmp/badm/metrics.json"
cp "$tmp/run/metrics.json" "$tmp/badc/"
printf '{"synthetic": tru}' >"$tmp/badc/cohort.json"
printf '{"schema": "something/else"}' >"$tmp/other/metrics.json"
expect 1 "nonexistent: No such file or directory" "$tmp/nonexistent"
expect 1 "empty: no metrics.json (run .freeair eval" "$tmp/empty"
expect 1 "badm/metrics.json: line 1: unexpected character" "$tmp/badm"
expect 1 "badc/cohort.json: line 1: unexpected character" "$tmp/badc"
expect 1 "other/metrics.json: not a freeair metrics file" "$tmp/other"
expect 1 "dir/report.html: cannot write: No such file" "$tmp/run" -o "$tmp/no/such/dir/report.html"
expect 1 "nomanifest.csv: no such file" "$tmp/run" --manifest "$tmp/nomanifest.csv"
expect 1 "nocam: No such file" "$tmp/run" --cam "$tmp/nocam"
expect 1 "localisation.json: not a freeair localisation file" "$tmp/badl"
expect 2 "usage: freeair report" 
expect 2 "unknown option" "$tmp/run" --bogus
"$FREEAIR_BIN" report --help | grep -q "self-contained"
[ "$fails" -eq 0 ]
echo "report structure, numbers and errors ok"
