#!/usr/bin/env bash
# Forwarding benchmark: MCP tools/call through mcpgate versus the same GET sent to the backend
# directly, in one run. Two backends: nginx answering a fixed JSON at once (the cost of mcpgate
# itself), and examples/bench_backend.rs answering after 5 ms (an API that does some work).
# Needs nginx and wrk (Debian packages `nginx-light` or `nginx`, and `wrk`).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p /tmp/mcpgate-bench
(cd ../.. && cargo build --release --quiet && cargo build --release --quiet --example bench_backend)
nginx -c "$PWD/nginx.conf" -p /tmp/mcpgate-bench &
NGINX=$!
../../target/release/examples/bench_backend 18092 5 &
SLOW=$!
RUST_LOG=warn ../../target/release/mcpgate serve --config mcpgate.toml 2>/tmp/mcpgate-bench/mcpgate.log &
MCPGATE=$!
trap 'kill $MCPGATE $SLOW $NGINX 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.1; done
# One session, opened as a client does (initialize, then notifications/initialized).
MCP_SESSION=$(curl -s -D - -o /dev/null http://127.0.0.1:18090/mcp/petstore \
  -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' \
  | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
export MCP_SESSION
curl -s -o /dev/null http://127.0.0.1:18090/mcp/petstore -H 'content-type: application/json' \
  -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25' \
  -H "mcp-session-id: $MCP_SESSION" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
DURATION=${DURATION:-10s}
run() { echo "== $1"; shift; wrk -t1 -d"$DURATION" --latency "$@" | grep -E ' 50%| 99%|Requests/sec'; }
for c in 64 1; do
  run "c=$c direct, instant backend" -c$c http://127.0.0.1:18091/api/v3/pet/7
  run "c=$c mcpgate, instant backend" -c$c -s call.lua http://127.0.0.1:18090/mcp/petstore
  run "c=$c mcpgate with a session, instant backend" -c$c -s session.lua http://127.0.0.1:18090/mcp/petstore
  run "c=$c direct, 5 ms backend" -c$c http://127.0.0.1:18092/api/v3/pet/7
  run "c=$c mcpgate, 5 ms backend" -c$c -s call.lua http://127.0.0.1:18090/mcp/petstore-5ms
done
