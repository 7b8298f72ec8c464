#!/usr/bin/env bash
# test_serve_load.sh - 20 concurrent storescu associations sending 500 small
# images in total: every image acknowledged is stored, scored and reported
# (SR + SC at the storescp PACS, one each), no association is refused below
# the configured cap, and the node's memory stays bounded (peak RSS sampled
# during the run below SERVE_RSS_LIMIT_MB, default 1500, and growth after
# warm-up below 300 MB). Prints throughput and latency (not asserted).
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}"
tmp=$(mktemp -d)
. "$FREEAIR_ROOT/tests/ref/serve_lib.sh"
trap 'serve_cleanup; rm -rf "$tmp"' EXIT

PEERS=${SERVE_LOAD_PEERS:-20}
PER=${SERVE_LOAD_PER:-25}
N=$((PEERS * PER))
serve_make_checkpoint "$tmp"
for ((p = 0; p < PEERS; p++)); do
  "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/in/$p" --n $PER --studies 5 --size 48 --seed $((100 + p))
done
port=$(serve_free_port); pacs_port=$(serve_free_port)
cat >"$tmp/serve.conf" <<CONF
ae_title = FREEAIR
port = $port
allowed_aes = MODALITY
allowed_hosts = 127.0.0.1
max_associations = 24
data_dir = $tmp/node
model = $tmp/run
workers = 2
senders = 2
destination = 127.0.0.1:$pacs_port
destination_ae = PACS
retry_initial = 0.2
retry_max = 1
heatmap_max_side = 48
quiet = true
CONF
db="$tmp/node/serve.db"
serve_start_pacs "$tmp/pacs" "$pacs_port"
serve_start_node "$tmp/serve.conf" "$tmp/node.log"
rss() { awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$SERVE_NODE_PID/status"; }
# warm-up: one image through the whole pipeline
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/warm" --n 1 --seed 99 --size 48
storescu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$tmp/warm/img_0000.dcm"
serve_wait_sql "$db" "SELECT COUNT(*) FROM outbox WHERE state='sent'" 60 2
rss0=$(rss)

t0=$(date +%s.%N)
pids=()
for ((p = 0; p < PEERS; p++)); do
  storescu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$tmp"/in/$p/*.dcm >"$tmp/scu$p.log" 2>&1 &
  pids+=($!)
  SERVE_PIDS+=($!)
done
peak=$rss0
fails=0
for ((i = 0; i < 1800; i++)); do   # at most 180 s
  r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
  done_n=$(sqlite3 "$db" "SELECT COUNT(*) FROM instances WHERE reported_at IS NOT NULL" 2>/dev/null || echo 0)
  [ "$done_n" = "$((N + 1))" ] && break
  sleep 0.1
done
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
t1=$(date +%s.%N)
[ "$fails" = 0 ] || { cat "$tmp"/scu*.log | grep -E "^[EF]:" | head; echo "FAIL: $fails storescu peers failed"; exit 1; }
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state='scored' AND reported_at IS NOT NULL" 60 "$((N + 1))"
if grep '"assoc_rejected"' "$tmp/node/serve.jsonl"; then echo "FAIL: associations refused below the cap"; exit 1; fi

"$REF_PYTHON" - "$tmp" "$N" <<'PY'
import collections, glob, sys, pydicom
tmp, n = sys.argv[1], int(sys.argv[2])
src = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in glob.glob(f"{tmp}/in/*/*.dcm")}
assert len(src) == n
sr, sc = collections.Counter(), collections.Counter()
for f in glob.glob(f"{tmp}/pacs/*"):
    if f.endswith(".log"):
        continue
    ds = pydicom.dcmread(f, stop_before_pixels=True)
    if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33":
        sr[[it for it in ds.ContentSequence if it.ValueType == "IMAGE"][0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID] += 1
    else:
        sc[ds.SourceImageSequence[0].ReferencedSOPInstanceUID] += 1
missing = src - set(sr) | src - set(sc)
assert not missing, f"{len(missing)} instances without results"
assert all(v == 1 for v in list(sr.values()) + list(sc.values())), "duplicate results"
PY

limit=${SERVE_RSS_LIMIT_MB:-1500}
echo "RSS: after warm-up ${rss0} MB, peak ${peak} MB (limit ${limit} MB)"
[ "$peak" -lt "$limit" ] || { echo "FAIL: peak RSS ${peak} MB"; exit 1; }
[ $((peak - rss0)) -lt 300 ] || { echo "FAIL: RSS grew by $((peak - rss0)) MB under load"; exit 1; }
sqlite3 "$db" "SELECT (reported_at - received_at) * 1000 FROM instances WHERE sop_uid NOT LIKE '%.99.3.%' ORDER BY 1" >"$tmp/lat.txt"
"$REF_PYTHON" - "$tmp/lat.txt" "$t0" "$t1" "$N" <<'PY'
import sys
lat = [float(x) for x in open(sys.argv[1])]
t = float(sys.argv[3]) - float(sys.argv[2])
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"load: {int(sys.argv[4])} images from 20 peers in {t:.1f} s = {int(sys.argv[4]) / t * 60:.0f} images/min; "
      f"received->reported p50 {q(0.5):.0f} ms, p95 {q(0.95):.0f} ms")
PY
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"
echo "test_serve_load: ok"
