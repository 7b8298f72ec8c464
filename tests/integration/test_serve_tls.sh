#!/usr/bin/env bash
# test_serve_tls.sh - the DICOM listener over TLS (DCMTK dcmtls, BCP 195)
# with required client certificates: a modality holding a certificate signed
# by the configured CA echoes and stores (storescu/echoscu +tls); a plain TCP
# peer, a peer with a self-signed certificate and one without a certificate
# are all turned away; the node keeps running and logs the failures. Keys and
# certificates are made here with openssl.
set -euo pipefail
: "${FREEAIR_BIN:?}" "${REF_PYTHON:?}" "${FREEAIR_ROOT:?}"
command -v openssl >/dev/null || { echo "FAIL: openssl is required"; exit 1; }
tmp=$(mktemp -d)
. "$FREEAIR_ROOT/tests/ref/serve_lib.sh"
trap 'serve_cleanup; rm -rf "$tmp"' EXIT

pki="$tmp/pki"
mkdir -p "$pki"
ossl() { openssl "$@" >/dev/null 2>&1 || { echo "FAIL: openssl $1"; exit 1; }; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=freeair test CA" -keyout "$pki/ca.key" -out "$pki/ca.crt"
for who in server client; do
  ossl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$pki/$who.key" -out "$pki/$who.csr"
  ossl x509 -req -in "$pki/$who.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 2 -out "$pki/$who.crt"
done
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rogue" -keyout "$pki/rogue.key" -out "$pki/rogue.crt"

serve_make_checkpoint "$tmp"
"$REF_PYTHON" "$FREEAIR_ROOT/tests/ref/serve_make_dicom.py" "$tmp/in" --n 2 --seed 51
port=$(serve_free_port)
cat >"$tmp/serve.conf" <<CONF
ae_title = FREEAIR
port = $port
allowed_aes = MODALITY
data_dir = $tmp/node
model = $tmp/run
tls_key = $pki/server.key
tls_cert = $pki/server.crt
tls_ca = $pki/ca.crt
acse_timeout = 5
quiet = true
CONF
db="$tmp/node/serve.db"
serve_start_node "$tmp/serve.conf" "$tmp/node.log"

tls=(+tls "$pki/client.key" "$pki/client.crt" +cf "$pki/ca.crt")
echoscu "${tls[@]}" -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" || { echo "FAIL: TLS echo"; exit 1; }
storescu "${tls[@]}" -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" "$tmp"/in/*.dcm || { echo "FAIL: TLS store"; exit 1; }
serve_wait_sql "$db" "SELECT COUNT(*) FROM instances WHERE state='scored'" 60 2

if timeout 30 echoscu -to 5 -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" >/dev/null 2>&1; then
  echo "FAIL: plain TCP accepted"; exit 1; fi
if timeout 30 echoscu +tls "$pki/rogue.key" "$pki/rogue.crt" +cf "$pki/ca.crt" -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" >/dev/null 2>&1; then
  echo "FAIL: self-signed client certificate accepted"; exit 1; fi
if timeout 30 echoscu +tla +cf "$pki/ca.crt" -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" >/dev/null 2>&1; then
  echo "FAIL: client without certificate accepted"; exit 1; fi
# A client that does not trust our CA refuses us too (server certificate checked).
if timeout 30 echoscu +tls "$pki/client.key" "$pki/client.crt" +cf "$pki/rogue.crt" -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" >/dev/null 2>&1; then
  echo "FAIL: server certificate not verifiable yet accepted by the client"; exit 1; fi
echoscu "${tls[@]}" -aet MODALITY -aec FREEAIR 127.0.0.1 "$port" || { echo "FAIL: node stopped answering"; exit 1; }
serve_stop_node "$SERVE_NODE_PID" "$tmp/node.log"
n_fail=$(grep -c '"assoc_failed"' "$tmp/node/serve.jsonl" || true)
grep "\"assoc_failed\"" "$tmp/node/serve.jsonl" | head -5
[ "$n_fail" -ge 3 ] || { cat "$tmp/node/serve.jsonl"; echo "FAIL: refused TLS handshakes not logged ($n_fail)"; exit 1; }
[ "$(sqlite3 "$db" 'SELECT COUNT(*) FROM instances')" = 2 ] || { echo "FAIL: row count"; exit 1; }
echo "test_serve_tls: ok"
