#!/usr/bin/env bash
# Forwarding through two replicas on one PostgreSQL store, behind nginx round-robin, beside one
# replica asked alone and the backend directly, in one run: tools/call getPetById at 64
# connections, without a session and with a session per connection (opened through nginx, so
# each session's calls land on both replicas). Starts a throwaway PostgreSQL 15 cluster
# (Debian's binaries); needs nginx, wrk, python3.
#   DURATION=5s ROUNDS=3 docs/bench/replicas.sh
set -euo pipefail
cd "$(dirname "$0")"
B=/tmp/mcpgate-replicas
PG=/usr/lib/postgresql/15/bin
rm -rf "$B" && mkdir -p "$B/pg"
(cd ../.. && cargo build --release --quiet)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres "$B/pg"; fi
as_pg "$PG/initdb" -D "$B/pg/data" -U mcpgate --auth=trust -E UTF8 --no-sync >/dev/null
as_pg "$PG/pg_ctl" -D "$B/pg/data" -l "$B/pg/log" -w \
  -o "-p 18099 -c listen_addresses=127.0.0.1 -k $B/pg -c fsync=off" start >/dev/null
PET='{"id":7,"name":"doggie","category":{"id":1,"name":"Dogs"},"photoUrls":["https://example.com/d.png"],"tags":[{"id":1,"name":"good"}],"status":"available"}'
cat >"$B/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $B/nginx.pid;
error_log $B/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $B; proxy_temp_path $B; fastcgi_temp_path $B; uwsgi_temp_path $B; scgi_temp_path $B;
    server {
        listen 127.0.0.1:18091;
        location /api/v3/pet/ { default_type application/json; return 200 '$PET'; }
    }
    upstream replicas { server 127.0.0.1:18096; server 127.0.0.1:18097; keepalive 64; }
    server {
        listen 127.0.0.1:18095;
        location / {
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_buffering off;
        }
    }
}
CONF
nginx -c "$B/nginx.conf" -p "$B" &
NGINX=$!
KEY=$(head -c 32 /dev/urandom | base64)
replica() {
  cat >"$B/replica-$1.toml" <<CONF
[http]
listen = "127.0.0.1:$1"
[sessions]
per_subject = 1000
[store]
data_dir = "$B/data-$1"
url = "postgres://mcpgate@127.0.0.1:18099/postgres?sslmode=disable"
secret_keys = [{ id = "bench", key = "$KEY" }]
[auth]
mode = "none"
[[servers]]
slug = "petstore"
spec = "$PWD/../../openapi-samples/swagger-petstore-v3.yaml"
backend_url = "http://127.0.0.1:18091/api/v3"
max_concurrency = 256
rate_limits = { per_user = 1000000, per_user_write = 1000000, per_tool = 1000000, per_tool_write = 1000000 }
CONF
  RUST_LOG=warn ../../target/release/mcpgate serve --config "$B/replica-$1.toml" 2>"$B/replica-$1.log" &
}
replica 18096
A=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18096/readyz >/dev/null && break; sleep 0.1; done
replica 18097
R=$!
trap 'kill $A $R $NGINX 2>/dev/null; as_pg "$PG/pg_ctl" -D "$B/pg/data" -m fast -w stop >/dev/null' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18097/readyz >/dev/null && break; sleep 0.1; done
open_sessions() {
  local ids=() id
  for _ in $(seq "$2"); do
    id=$(curl -s -D - -o /dev/null "$1" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' \
      | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
    ids+=("$id")
  done
  echo "${ids[@]}"
}
SESSIONS=$(open_sessions http://127.0.0.1:18095/mcp/petstore 64)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
OUT="$B/results.txt"
: >"$OUT"
case_() {
  local name=$1 c=$2
  shift 2
  local before after report
  before=$(( $(ticks $A) + $(ticks $R) ))
  report=$(wrk -t1 -c"$c" -d"${DURATION:-5s}" --latency "$@")
  after=$(( $(ticks $A) + $(ticks $R) ))
  { echo "== $name|$c|$((after - before))|$(getconf CLK_TCK)"; echo "$report"; } >>"$OUT"
}
for round in $(seq "${ROUNDS:-3}"); do
  echo "round $round" >&2
  case_ "backend directly" 64 http://127.0.0.1:18091/api/v3/pet/7
  case_ "one replica, no session" 64 -s call.lua http://127.0.0.1:18096/mcp/petstore
  case_ "two replicas behind nginx, no session" 64 -s call.lua http://127.0.0.1:18095/mcp/petstore
  MCP_SESSIONS=$SESSIONS case_ "two replicas behind nginx, a session per connection" 64 \
    -s session.lua http://127.0.0.1:18095/mcp/petstore
done
python3 summary.py "$OUT"
