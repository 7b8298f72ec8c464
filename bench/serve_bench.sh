#!/usr/bin/env bash
# serve_bench.sh - throughput and latency of the triage node under load:
# PEERS concurrent storescu associations send IMAGES synthetic radiographs
# (SIZE px) to `freeair serve` (WORKERS scoring workers, results C-STOREd to a
# storescp PACS). Prints a table: images/min (end to end, first byte to last
# result acknowledged by the PACS) and p50/p95 of the time from the last byte
# of an image received (its durable commit) to its last result sent, plus the
# scoring time alone. Loopback only; everything runs in a temp folder.
#
# usage: bench/serve_bench.sh [IMAGES] [PEERS] [SIZE] [WORKERS]
#   defaults 300 10 64 2; BUILD (default build) names the build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGES=${1:-300}
PEERS=${2:-10}
SIZE=${3:-64}
WORKERS=${4:-2}
BUILD=${BUILD:-build}
export FREEAIR_BIN="$PWD/$BUILD/freeair" FREEAIR_ROOT="$PWD" REF_PYTHON=${REF_PYTHON:-/usr/bin/python3}
[ -x "$FREEAIR_BIN" ] || { echo "serve_bench: build $FREEAIR_BIN first (make BUILD=$BUILD)" >&2; exit 1; }
tmp=$(mktemp -d)
. tests/ref/serve_lib.sh
trap 'serve_cleanup; rm -rf "$tmp"' EXIT

serve_make_checkpoint "$tmp"
per=$(( (IMAGES + PEERS - 1) / PEERS ))
total=0
for ((p = 0; p < PEERS; p++)); do
  n=$(( IMAGES - total < per ? IMAGES - total : per ))
  [ "$n" -gt 0 ] || break
  "$REF_PYTHON" tests/ref/serve_make_dicom.py "$tmp/in/$p" --n "$n" --studies 5 --size "$SIZE" --seed $((200 + p))
  total=$((total + n))
done
port=$(serve_free_port); pacs_port=$(serve_free_port)
cat >"$tmp/serve.conf" <<CONF
ae_title = FREEAIR
port = $port
allowed_aes = MODALITY
max_associations = $((PEERS + 4))
data_dir = $tmp/node
model = $tmp/run
workers = $WORKERS
senders = 2
destination = 127.0.0.1:$pacs_port
destination_ae = PACS
heatmap_max_side = 256
quiet = true
CONF
db="$tmp/node/serve.db"
serve_start_pacs "$tmp/pacs" "$pacs_port"
serve_start_node "$tmp/serve.conf" "$tmp/node.log"
t0=$(date +%s.%N)
pids=()
for d in "$tmp"/in/*; do
  storescu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$d"/*.dcm >/dev/null 2>&1 &
  pids+=($!)
  SERVE_PIDS+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "serve_bench: a storescu peer failed" >&2; exit 1; }; done
t_recv=$(date +%s.%N)
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE reported_at IS NOT NULL" 1800 "$total"
t1=$(date +%s.%N)
rss=$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$SERVE_NODE_PID/status")
sqlite3 -separator ' ' "$db" "SELECT (reported_at - received_at) * 1000, score_ms FROM instances" >"$tmp/lat.txt"
serve_stop "$SERVE_NODE_PID"
"$REF_PYTHON" - "$tmp/lat.txt" "$t0" "$t_recv" "$t1" "$total" "$PEERS" "$SIZE" "$WORKERS" "$rss" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
t0, tr, t1 = map(float, sys.argv[2:5])
n, peers, size, workers, rss = map(int, sys.argv[5:10])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
lat = [r[0] for r in rows]
sc = [r[1] for r in rows]
print(f"| images | peers | px | workers | received/min | end-to-end/min | p50 recv->sent ms | p95 recv->sent ms | p50 score ms | p95 score ms | peak RSS MB |")
print(f"|---|---|---|---|---|---|---|---|---|---|---|")
print(f"| {n} | {peers} | {size} | {workers} | {n / (tr - t0) * 60:.0f} | {n / (t1 - t0) * 60:.0f} | "
      f"{pct(lat, .5):.0f} | {pct(lat, .95):.0f} | {pct(sc, .5):.0f} | {pct(sc, .95):.0f} | {rss} |")
PY
