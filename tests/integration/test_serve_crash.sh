#!/usr/bin/env bash
# test_serve_crash.sh - SIGKILL of the node at random moments while storescu
# transfers: every instance storescu saw acknowledged ("Received Store
# Response (Success)") is in the database and on disk, byte-for-byte the
# pixel data that was sent (checked with pydicom right after the kill, before
# any restart); the peer then re-sends what was not acknowledged; after the
# last round every instance is stored once, scored, and exactly one SR and
# one secondary capture per instance (distinct SOP Instance UIDs) reach the
# PACS, however often scoring or sending was interrupted.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}"
tmp=$(mktemp -d)
. "$FREEAIR_ROOT/tests/ref/serve_lib.sh"
trap 'serve_cleanup; rm -rf "$tmp"' EXIT

N=40
ROUNDS=3
serve_make_checkpoint "$tmp"
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/in" --n $N --studies 20 --seed 31
port=$(serve_free_port); pacs_port=$(serve_free_port)
cat >"$tmp/serve.conf" <<CONF
ae_title = FREEAIR
port = $port
allowed_aes = MODALITY
allowed_hosts = 127.0.0.1
data_dir = $tmp/node
model = $tmp/run
destination = 127.0.0.1:$pacs_port
destination_ae = PACS
retry_initial = 0.2
retry_max = 1
heatmap_max_side = 64
quiet = true
CONF
db="$tmp/node/serve.db"
serve_start_pacs "$tmp/pacs" "$pacs_port"
: >"$tmp/acked.txt"
ls "$tmp"/in/*.dcm >"$tmp/todo.txt"

for ((r = 1; r <= ROUNDS; r++)); do
  [ -s "$tmp/todo.txt" ] || break
  serve_start_node "$tmp/serve.conf" "$tmp/node.log"
  # shellcheck disable=SC2046
  storescu -v -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" $(cat "$tmp/todo.txt") >"$tmp/scu$r.log" 2>&1 &
  scu=$!
  SERVE_PIDS+=("$scu")
  # a random moment within the transfer (0.1 .. 1.3 s)
  sleep "$(printf '0.%d' $((RANDOM % 9 + 1)))"
  sleep "$(( RANDOM % 2 ))"
  kill -9 "$SERVE_NODE_PID"
  wait "$SERVE_NODE_PID" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$scu" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$scu" 2>/dev/null || true
  wait "$scu" 2>/dev/null || true
  # files acknowledged in this round
  awk '/Sending file:/ {f=$NF} /Received Store Response \(Success\)/ {print f}' "$tmp/scu$r.log" >>"$tmp/acked.txt"
  sort -u "$tmp/acked.txt" -o "$tmp/acked.txt"
  comm -23 <(sort "$tmp/todo.txt") "$tmp/acked.txt" >"$tmp/todo2.txt"
  mv "$tmp/todo2.txt" "$tmp/todo.txt"
  echo "round $r: $(wc -l <"$tmp/acked.txt") acknowledged so far, $(wc -l <"$tmp/todo.txt") to re-send"
  # Node dead: every acknowledged instance must already be durable.
  sqlite3 "$db" "SELECT sop_uid, path FROM instances" >"$tmp/rows.txt"
  "$REF_PYTHON" - "$tmp" <<'PY'
import sys, hashlib, pydicom
tmp = sys.argv[1]
rows = dict(l.rstrip("\n").split("|") for l in open(f"{tmp}/rows.txt") if l.strip())
for src in open(f"{tmp}/acked.txt").read().split():
    a = pydicom.dcmread(src)
    assert a.SOPInstanceUID in rows, f"acknowledged {a.SOPInstanceUID} lost after SIGKILL"
    b = pydicom.dcmread(rows[a.SOPInstanceUID])
    assert hashlib.sha256(a.PixelData).digest() == hashlib.sha256(b.PixelData).digest(), "stored pixels differ"
PY
done

# Last round without a kill: the peer re-sends everything not acknowledged.
serve_start_node "$tmp/serve.conf" "$tmp/node.log"
if [ -s "$tmp/todo.txt" ]; then
  # shellcheck disable=SC2046
  storescu -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" $(cat "$tmp/todo.txt") || { echo "FAIL: final send"; exit 1; }
fi
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state='scored'" 150 "$N"
serve_wait_sql "$db" "SELECT COUNT(*) FROM outbox WHERE state='sent'" 90 "$((2 * N))"
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"
ls "$tmp"/node/spool | grep -q . && { echo "FAIL: partial files left in spool"; exit 1; }
"$REF_PYTHON" - "$tmp" "$N" <<'PY'
import collections, glob, sys, pydicom
tmp, n = sys.argv[1], int(sys.argv[2])
src = {pydicom.dcmread(f).SOPInstanceUID for f in glob.glob(f"{tmp}/in/*.dcm")}
sr, sc = collections.defaultdict(set), collections.defaultdict(set)
for f in glob.glob(f"{tmp}/pacs/*"):
    if f.endswith(".log"):
        continue
    ds = pydicom.dcmread(f)
    if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33":
        ref = [it for it in ds.ContentSequence if it.ValueType == "IMAGE"][0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        sr[ref].add(ds.SOPInstanceUID)
    else:
        sc[ds.SourceImageSequence[0].ReferencedSOPInstanceUID].add(ds.SOPInstanceUID)
assert set(sr) == src and set(sc) == src, (len(sr), len(sc), len(src))
dup = {k: v for k, v in list(sr.items()) + list(sc.items()) if len(v) != 1}
assert not dup, f"instances reported more than once: {dup}"
print(f"crash: {len(src)} instances, one SR and one SC each")
PY
[ "$(sqlite3 "$db" 'SELECT COUNT(*) FROM instances')" = "$N" ] || { echo "FAIL: row count"; exit 1; }
echo "test_serve_crash: ok"
