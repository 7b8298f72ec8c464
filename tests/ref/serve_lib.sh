# serve_lib.sh - shared helpers of tests/integration/test_serve_*.sh (sourced,
# not run): a quick checkpoint, free loopback ports, starting and stopping
# the node and a storescp "PACS", bounded waits. Every process started here
# is recorded in SERVE_PIDS and killed by serve_cleanup (install it in the
# caller's EXIT trap). Only 127.0.0.1 is ever used.

SERVE_PIDS=()

serve_cleanup() {
  local p
  for p in "${SERVE_PIDS[@]:-}"; do
    [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true
  done
  for p in "${SERVE_PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
}

# A free TCP port on 127.0.0.1 (the kernel's choice, released at once).
serve_free_port() {
  "$REF_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait (at most $2 seconds, default 30) until 127.0.0.1:$1 accepts connections.
serve_wait_port() {
  local port=$1 limit=${2:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if "$REF_PYTHON" -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "FAIL: nothing listens on 127.0.0.1:$port after ${limit}s" >&2
  return 1
}

# Train the smallest useful checkpoint (resnet18, 64 px, 1 epoch, locked
# Youden operating point) into $1/run.
serve_make_checkpoint() {
  local dir=$1
  "$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/train_tiny_data.py" "$dir/tiny" --train 16 --val 16 --size 64 --seed 5 >/dev/null
  cat >"$dir/train.conf" <<CONF
arch = resnet18
image_size = 64
epochs = 1
lr = 0.01
batch_size = 8
micro_batch = 8
manifest = $dir/tiny/manifest.csv
out = $dir/run
threads = 2
seed = 3
operating_point = youden
CONF
  "$FREEAIR_BIN" train --config "$dir/train.conf" --quiet >/dev/null
  [ -s "$dir/run/best.safetensors" ] || { echo "FAIL: no checkpoint" >&2; return 1; }
}

# storescp as the PACS: serve_start_pacs DIR PORT -> SERVE_PACS_PID
serve_start_pacs() {
  mkdir -p "$1"
  storescp -aet PACS -od "$1" "$2" >"$1.log" 2>&1 &
  SERVE_PACS_PID=$!
  SERVE_PIDS+=("$SERVE_PACS_PID")
  serve_wait_port "$2" 20
}

# The node: serve_start_node CONF LOG -> SERVE_NODE_PID (waits for its port,
# read from the config's "port =" line).
serve_start_node() {
  local conf=$1 log=$2 port
  port=$(sed -n 's/^port *= *//p' "$conf")
  "$FREEAIR_BIN" serve --config "$conf" >>"$log" 2>&1 &
  SERVE_NODE_PID=$!
  SERVE_PIDS+=("$SERVE_NODE_PID")
  serve_wait_port "$port" 60 || { cat "$log" >&2; return 1; }
}

# Stop a process with SIGTERM and wait for it (at most 30 s, then SIGKILL).
serve_stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Stop the node with SIGTERM; it must exit 0 (a clean shutdown; under the
# sanitizers also no leak or error report). $2: its log, shown on failure.
serve_stop_node() {
  local pid=$1 log=$2 i rc=0
  kill -TERM "$pid" 2>/dev/null || { echo "FAIL: node $pid already gone" >&2; return 1; }
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null && { echo "FAIL: node did not stop within 60 s" >&2; return 1; }
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    tail -40 "$log" >&2
    echo "FAIL: node exited with status $rc" >&2
    return 1
  fi
}

# HTTP GET on loopback with the path sent as-is (no normalisation):
# serve_http_get PORT PATH OUT [BEARER_TOKEN] -> prints the status code,
# body in OUT.
serve_http_get() {
  "$REF_PYTHON" - "$@" <<'PY'
import http.client, sys
port, path, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
h = {"Authorization": "Bearer " + sys.argv[4]} if len(sys.argv) > 4 else {}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("GET", path, headers=h)
r = c.getresponse()
open(out, "wb").write(r.read())
print(r.status)
PY
}

# Wait (at most $3 seconds) until sqlite query $2 on database $1 prints $4.
serve_wait_sql() {
  local db=$1 sql=$2 limit=$3 want=$4 got="" i
  for ((i = 0; i < limit * 4; i++)); do
    got=$(sqlite3 "$db" "$sql" 2>/dev/null || true)
    [ "$got" = "$want" ] && return 0
    sleep 0.25
  done
  echo "FAIL: '$sql' gave '$got', want '$want' after ${limit}s" >&2
  return 1
}
