#!/usr/bin/env bash
# Opens a generated report in headless Chromium: no console messages (no
# CSP violations, no failed loads, no script errors), the key elements exist
# in the rendered DOM, and a full-page screenshot is saved to
# $FREEAIR_BUILD/test-artifacts/report.png (for people to look at) and checked
# to be a real rendering: not blank, the synthetic-cohort banner's red at the
# top, chart colours further down.
set -euo pipefail
command -v chromium >/dev/null || { echo "chromium is required (Debian package chromium)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ref="$FREEAIR_ROOT/tests/ref"
art="$FREEAIR_BUILD/test-artifacts"
mkdir -p "$art"
"$REF_PYTHON" "$ref/stats_synth_predictions.py" "$tmp/pred.csv" --seed 3 --models densenet161,resnext101 \
  --n-test 200 --n-val 90
"$FREEAIR_BIN" eval --predictions "$tmp/pred.csv" --group-by unit,manufacturer --bootstrap 200 --quiet \
  -o "$tmp/run" 2>/dev/null
"$REF_PYTHON" "$ref/stats_report_fixture.py" "$tmp/pred.csv" "$tmp/run" --cams 6 >/dev/null
"$FREEAIR_BIN" report "$tmp/run" -o "$tmp/report.html" 2>/dev/null
cp "$tmp/report.html" "$art/report.html"

chrome() {
  # Own profile dir: parallel tests and leftover locks cannot interfere.
  timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$tmp/profile" --enable-logging=stderr --v=0 "$@" "file://$tmp/report.html"
}
chrome --dump-dom >"$tmp/dom.html" 2>"$tmp/console.log"
chrome --screenshot="$tmp/shot.png" --window-size=1280,14000 >/dev/null 2>>"$tmp/console.log"
# Console messages are logged as ":CONSOLE(" lines; a clean page has none.
if grep -a "CONSOLE" "$tmp/console.log"; then
  echo "console messages while rendering the report"; exit 1
fi
"$REF_PYTHON" - "$tmp/dom.html" "$tmp/shot.png" "$art/report.png" <<'PY'
import sys
from html.parser import HTMLParser
from PIL import Image, ImageStat

class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.count = set(), {}
    def handle_starttag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1
        for k, v in attrs:
            if k == "id":
                self.ids.add(v)

d = Dom()
d.feed(open(sys.argv[1], encoding="utf-8").read())
need = ["synthetic-banner", "summary", "table2", "roc", "subgroups", "comparison-table", "calibration",
        "decision-curve", "gallery", "provenance", "flow", "split-table", "error-table"]
missing = [i for i in need if i not in d.ids]
assert not missing, f"rendered DOM lacks {missing}"
assert d.count.get("svg", 0) >= 10, d.count
assert d.count.get("polyline", 0) >= 8, "ROC/calibration/decision curves missing"
assert d.count.get("img", 0) == 6, d.count.get("img")
assert d.count.get("table", 0) >= 8, d.count
assert d.count.get("script", 0) == 0

im = Image.open(sys.argv[2]).convert("RGB")
w, h = im.size
# Trim the empty page background below the report.
bg = im.getpixel((w - 2, h - 2))
bottom = h
px = im.load()
while bottom > 200 and all(px[x, bottom - 1] == bg for x in range(0, w, 7)):
    bottom -= 1
im = im.crop((0, 0, w, bottom))
im.save(sys.argv[3])
assert bottom > 3000, f"report renders only {bottom}px tall"
stat = ImageStat.Stat(im.convert("L"))
assert stat.stddev[0] > 20, "screenshot looks blank"
top = im.crop((0, 100, w, 320))
reds = sum(1 for p in top.getdata() if p[0] > 150 and p[1] < 60 and p[2] < 60)
assert reds > 200, "no red synthetic-cohort banner at the top"
colours = im.getcolors(1 << 22)
blue = sum(n for n, c in colours if abs(c[0] - 0) < 30 and abs(c[1] - 114) < 30 and abs(c[2] - 178) < 30)
orange = sum(n for n, c in colours if abs(c[0] - 213) < 30 and abs(c[1] - 94) < 30 and c[2] < 40)
assert blue > 500 and orange > 500, f"chart colours missing (blue {blue}, orange {orange})"
print(f"rendered {w}x{bottom}px, {d.count.get('svg')} svg, {d.count.get('table')} tables; screenshot {sys.argv[3]}")
PY
