#!/usr/bin/env bash
# test_serve_worklist.sh - the HTTP worklist: GET /api/worklist follows the
# documented ordering rule (recomputed independently from the fields it
# reports: overdue oldest first, then suspected by score, then the rest
# oldest first), the maximum-wait escalation puts a study that waited past
# max_wait ahead of newer ones, headless Chromium renders the page with the
# same order (DOM) and a screenshot is saved to
# $FREEAIR_BUILD/test-artifacts/serve_worklist.png, heatmap previews are PNGs,
# path tricks in the heatmap URL get 404, and with a token configured every
# request without "Authorization: Bearer <token>" gets 401.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}" "${FREEAIR_BUILD:?}"
command -v chromium >/dev/null || { echo "FAIL: chromium is required"; exit 1; }
tmp=$(mktemp -d)
. "$FREEAIR_ROOT/tests/ref/serve_lib.sh"
trap 'serve_cleanup; rm -rf "$tmp"' EXIT
art="$FREEAIR_BUILD/test-artifacts"
mkdir -p "$art"

serve_make_checkpoint "$tmp"
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/a" --n 1 --seed 41
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/b" --n 8 --studies 4 --seed 42
port=$(serve_free_port); http=$(serve_free_port)
conf() {
  cat <<CONF
ae_title = FREEAIR
port = $port
allowed_aes = MODALITY
data_dir = $tmp/node
model = $tmp/run
http_port = $http
max_wait_minutes = 0.1
heatmap_max_side = 96
quiet = true
CONF
}
conf >"$tmp/serve.conf"
db="$tmp/node/serve.db"
serve_start_node "$tmp/serve.conf" "$tmp/node.log"
serve_wait_port "$http" 20
storescu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$tmp/a/img_0000.dcm"
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state='scored'" 60 1
sleep 7   # study A is now past max_wait (6 s)
storescu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$tmp"/b/*.dcm
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state='scored'" 60 9
a_study=$(sqlite3 "$db" "SELECT study_uid FROM instances WHERE sop_uid LIKE '%.41.3.1'")

[ "$(serve_http_get "$http" /api/worklist "$tmp/wl.json")" = 200 ] || { echo "FAIL: /api/worklist"; exit 1; }
[ "$(serve_http_get "$http" /api/health "$tmp/health.json")" = 200 ] || { echo "FAIL: /api/health"; exit 1; }
"$REF_PYTHON" - "$tmp/wl.json" "$a_study" <<'PY'
import json, math, sys
w = json.load(open(sys.argv[1]))
s = w["studies"]
assert len(s) == 5, len(s)
assert s[0]["study_uid"] == sys.argv[2] and s[0]["tier"] == "overdue", "escalated study not first"
mw = w["max_wait_s"]
for x in s:
    tier = "overdue" if x["waiting_s"] >= mw - 0.5 else ("suspected" if x["decision"] == 1 else "routine")
    if abs(x["waiting_s"] - mw) > 0.5:
        assert x["tier"] == tier, x
def key(x):
    t = {"overdue": 0, "suspected": 1, "routine": 2}[x["tier"]]
    return (t, -x["score"] if t == 1 else 0, x["received_unix"], x["study_uid"])
assert s == sorted(s, key=key), "worklist order breaks the rule"
assert [x["rank"] for x in s] == list(range(1, 6))
for x in s:
    assert x["images"] == 2 or x["study_uid"] == sys.argv[2]
    assert 0 <= x["score"] <= 1 and x["heatmap"].startswith("/heatmap/")
open(sys.argv[1] + ".order", "w").write("\n".join(x["study_uid"] for x in s) + "\n")
print("worklist order:", [(x["tier"], round(x["score"], 3)) for x in s])
PY
grep -q '"scored":9' "$tmp/health.json" || { cat "$tmp/health.json"; echo "FAIL: health"; exit 1; }

# heatmap preview and path safety
hm=$("$REF_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["studies"][0]["heatmap"])' "$tmp/wl.json")
[ "$(serve_http_get "$http" "$hm" "$tmp/hm.png")" = 200 ] || { echo "FAIL: heatmap"; exit 1; }
"$REF_PYTHON" -c 'import sys; from PIL import Image; im = Image.open(sys.argv[1]); assert im.format == "PNG" and max(im.size) <= 96, im.size' "$tmp/hm.png"
for bad in "/heatmap/..%2fserve.db.png" "/heatmap/../serve.db" "/heatmap/1.2.abc.png" "/etc/passwd"; do
  code=$(serve_http_get "$http" "$bad" "$tmp/body")
  [ "$code" = 404 ] || { echo "FAIL: $bad gave $code"; exit 1; }
done

# The page in headless Chromium: same order in the DOM, and a screenshot.
chrome() {
  timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$tmp/profile" "$@" "http://127.0.0.1:$http/" 2>>"$tmp/chrome.log"
}
chrome --dump-dom >"$tmp/dom.html"
chrome --screenshot="$art/serve_worklist.png" --window-size=1280,720 >/dev/null
"$REF_PYTHON" - "$tmp/dom.html" "$tmp/wl.json.order" "$art/serve_worklist.png" <<'PY'
import re, sys
from PIL import Image
dom = open(sys.argv[1]).read()
want = open(sys.argv[2]).read().split()
rows = re.findall(r"<td class=\"small\">([0-9.]+)</td>", dom)
assert rows == want, (rows, want)
assert dom.count("<img") == len(want), "heatmap previews missing"
im = Image.open(sys.argv[3]).convert("L")
assert im.size == (1280, 720)
assert max(im.getextrema()) - min(im.getextrema()) > 50, "blank screenshot"
PY
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"

# Token: every request needs it once one is configured.
{ conf; echo "http_token = test-token-0123456789abcdef"; } >"$tmp/tok.conf"
serve_start_node "$tmp/tok.conf" "$tmp/node.log"
serve_wait_port "$http" 20
code=$(serve_http_get "$http" /api/worklist "$tmp/body")
[ "$code" = 401 ] || { echo "FAIL: no token gave $code"; exit 1; }
code=$(serve_http_get "$http" /api/worklist "$tmp/body" wrong-token-0123456789abc)
[ "$code" = 401 ] || { echo "FAIL: wrong token gave $code"; exit 1; }
[ "$(serve_http_get "$http" /api/worklist "$tmp/body" test-token-0123456789abcdef)" = 200 ] || { echo "FAIL: token refused"; exit 1; }
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"
# Off loopback without a token: refused at start-up (config error, exit 1).
{ conf; echo "http_bind = 0.0.0.0"; } >"$tmp/open.conf"
if "$FREEAIR_BIN" serve --config "$tmp/open.conf" 2>"$tmp/err.txt"; then echo "FAIL: open HTTP accepted"; exit 1; fi
grep -q "http_token" "$tmp/err.txt" || { cat "$tmp/err.txt"; echo "FAIL: message"; exit 1; }
echo "test_serve_worklist: ok (screenshot: $art/serve_worklist.png)"
