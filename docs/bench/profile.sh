#!/usr/bin/env bash
# Where mcpgate's CPU goes per call: mcpgate (release build) under callgrind serves tools/call
# getPetById, without a session and then in one, and GitHub's licenses/get (a 2 KB answer, GitHub's
# document from ../shared/openapi-corpus) without one, from one wrk connection; the counters are
# zeroed before each load and dumped after, so start-up is not counted. Prints the instructions
# per call and what the steps of a call take (inclusive instructions per call). mcpgate logs at its
# default level, each call's audit line included. Needs valgrind, wrk and nginx.
#   docs/bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")"
B=/tmp/mcpgate-profile
GITHUB=$PWD/../../../shared/openapi-corpus/github-api.json
[ -f "$GITHUB" ] || { echo "$GITHUB is missing" >&2; exit 1; }
rm -rf "$B" && mkdir -p "$B"
(cd ../.. && cargo build --release --quiet)
sed "s|/tmp/mcpgate-bench|$B|g" nginx.conf >"$B/nginx.conf"
nginx -c "$B/nginx.conf" -p "$B" &
NGINX=$!
# The document paths are relative to the configuration file, which moves to $B.
sed -e "s|/tmp/mcpgate-bench|$B|g" -e "s|\.\./\.\./openapi-samples|$PWD/../../openapi-samples|" mcpgate.toml >"$B/mcpgate.toml"
cat >>"$B/mcpgate.toml" <<EOF

[[servers]]
slug = "github"
spec = "$GITHUB"
backend_url = "http://127.0.0.1:18091"
max_concurrency = 256
rate_limits = { per_user = 1000000, per_user_write = 1000000, per_tool = 1000000, per_tool_write = 1000000 }
EOF
valgrind --tool=callgrind --callgrind-out-file="$B/callgrind.%p" \
  ../../target/release/mcpgate serve --config "$B/mcpgate.toml" 2>"$B/valgrind.log" &
GATE=$!
trap 'kill $GATE $NGINX 2>/dev/null' EXIT
for _ in $(seq 600); do curl -sf http://127.0.0.1:18090/readyz >/dev/null && break; sleep 0.5; done
# A call that fails (an unknown server, a broken document) would be profiled as cheap.
curl -sf http://127.0.0.1:18090/mcp/petstore -H 'content-type: application/json' \
  -H 'accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"getPetById","arguments":{"petId":7}}}' \
  | grep -q '"isError":false'
SESSION=$(curl -s -D - -o /dev/null http://127.0.0.1:18090/mcp/petstore \
  -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
  -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"wrk","version":"1"}}}' \
  | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
profile() {
  local name=$1 requests
  shift
  callgrind_control --zero "$GATE" >/dev/null
  requests=$(wrk -t1 -c1 -d"${DURATION:-20s}" "$@" | awk '/requests in/{print $1}')
  callgrind_control --dump="$name" "$GATE" >/dev/null
  sleep 1
  local file
  file=$(ls -t "$B"/callgrind.* | head -1)
  local total
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
  echo "== $name: $requests calls, $((total / requests)) instructions per call"
  # Inclusive instructions per call of the steps of a call (a function's callees included).
  callgrind_annotate --inclusive=yes --threshold=99.9 "$file" 2>/dev/null |
    grep -E '^ *[0-9,]+ +\( *[0-9.]+%\)' | sed -E 's/ \[\/.*$//' |
    awk -v calls="$requests" '{n=$1; gsub(",","",n); $1=""; $2=""; sub(/^ +/,""); f=$0; sub(/^[^:]*:/,"",f);
      if (f ~ /\([0-9,]+x\)$/) next; if (!seen[f]++) printf "%9.0f  %s\n", n/calls, f}' |
    grep -E 'Endpoint::handle|Gateway::call::|upstream::response::outcome|reqwest::async_impl::client::PendingRequest as|upstream::request::build|direct::encode|envelope::read|url::ParseOptions::parse$|TowerRedirectPolicy|role::(Client|Server) as hyper::proto::h1::Http1Transaction>::parse|^ *[0-9]+  (malloc|free)$|__memcpy|direct::serves|CallLog::begin|policy::|response::compact|direct::json_string|Value>::deserialize$' |
    cut -c1-140 | head -25
}
profile "no session" -s call.lua http://127.0.0.1:18090/mcp/petstore
MCP_SESSIONS=$SESSION profile "in a session" -s session.lua http://127.0.0.1:18090/mcp/petstore
MCP_CALL='{"name":"licenses_get","arguments":{"license":"mit"}}' \
  profile "GitHub licenses/get, no session" -s call.lua http://127.0.0.1:18090/mcp/github
