#!/usr/bin/env bash
# Several nodes on one PostgreSQL: the figures of the shared log, each step on
# a fresh local cluster (deploy/local-cluster.sh) and a fresh database, all in
# one run so that they compare.
#
#   loadtests/cluster/run.sh                 # every step
#   STEPS="publish fanout" loadtests/cluster/run.sh
#
# Steps:
#   publish  durable publishes/s, 64 publishers, one event per request: one
#            node alone, then three nodes (a third of the publishers straight
#            to each node, and all of them through nginx)
#   fanout   publish→receive latency, 1,000 subscribers at 10 events/s: one
#            node, then three nodes through nginx (subscribers spread over
#            the nodes, the publisher on any of them)
#   storm    5,000 clients 200 events behind reconnect at once through nginx
#            to three nodes
#   conns    100,000 subscribers held over six nodes (each process here may
#            open 20,000 files), one loadgen per node, an event every 4 s to
#            each node's subscribers for a minute, heartbeats on (an event
#            every 5 s would race the server's 5 s keep-alive on the
#            publisher's idle connection, and loadgen stops publishing when a
#            publish goes unanswered)
#
# Needs: PostgreSQL on 127.0.0.1:5432 (psql), nginx, release binaries
# (PUSHLOG_BIN, LOADGEN_BIN; built when missing). Results: one loadgen JSON
# line per run in loadtests/results/<UTC date>/cluster.jsonl, each with a
# `cluster` field naming the run, and the human summaries in cluster.log.
# Only loopback addresses are used.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
: "${STEPS:=publish fanout storm conns}"
: "${TARGET_DIR:=${CARGO_TARGET_DIR:-$root/target}}"
: "${PUSHLOG_BIN:=$TARGET_DIR/release/pushlog}"
: "${LOADGEN_BIN:=$TARGET_DIR/release/loadgen}"
: "${LB_PORT:=18300}"
: "${OUT:=$root/loadtests/results/$(date -u +%F)}"
: "${PUBLISH_DURATION:=10s}" "${FANOUT_DURATION:=20s}" "${HOLD_EVENTS_EVERY:=0.25}"
: "${CONNS_NODES:=6}" "${CONNS_PER_NODE:=16700}" "${CONNS_DURATION:=60s}"
export PUSHLOG_JWT_SECRET="${PUSHLOG_JWT_SECRET:-loadtests-cluster-secret-0123456789abcdef}"
export LOADGEN_SECRET="$PUSHLOG_JWT_SECRET"
export PUSHLOG_BIN LB_PORT RUST_LOG="${RUST_LOG:-warn}"
export PUSHLOG_DATABASE_URL="postgres://postgres@127.0.0.1:5432/pushlog_loadtest"
export CLUSTER_DIR="$here/.cluster"

say() { printf '[cluster-figures] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

command -v psql >/dev/null || die "psql is needed"
command -v nginx >/dev/null || die "nginx is needed"
if [[ ! -x "$PUSHLOG_BIN" || ! -x "$LOADGEN_BIN" ]]; then
  (cd "$root" && cargo build --release -p pushlog -p loadgen)
fi
mkdir -p "$OUT"
jsonl="$OUT/cluster.jsonl" log="$OUT/cluster.log"

# A fresh database and N nodes; nodes' pids in $pids, ports in $ports.
up() {
  local nodes="$1"
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS pushlog_loadtest WITH (FORCE)" 2>/dev/null
  "$root/deploy/local-cluster.sh" start "$nodes" >/dev/null
  mapfile -t pids < <(cut -d' ' -f1 "$CLUSTER_DIR/nodes")
  mapfile -t ports < <(cut -d' ' -f2 "$CLUSTER_DIR/nodes")
}
down() { "$root/deploy/local-cluster.sh" stop >/dev/null 2>&1 || true; }
trap down EXIT

# Runs loadgen with a name; its JSON line goes to cluster.jsonl with the
# name added (a failed run's too), its summary to cluster.log and stderr.
# A failed run is remembered in $OUT/.failed and fails the script at the end.
run() {
  local name="$1"; shift
  say "$name: loadgen $*"
  local result status=0
  result="$("$LOADGEN_BIN" "$@" 2> >(tee -a "$log" >&2))" || status=$?
  if [[ -n "$result" ]]; then
    printf '%s\n' "$result" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["cluster"]=sys.argv[1]; print(json.dumps(r))' "$name" >>"$jsonl"
  fi
  if ((status != 0)); then
    say "$name: loadgen failed ($status)"
    echo "$name" >>"$OUT/.failed"
  fi
}

for step in $STEPS; do
  case "$step" in
    publish)
      up 1
      run publish-1-node publish --url "http://127.0.0.1:${ports[0]}" --server-pid "${pids[0]}" \
        --publishers 64 --duration "$PUBLISH_DURATION"
      down
      up 3
      for i in 0 1 2; do
        run "publish-3-nodes-direct-$i" publish --url "http://127.0.0.1:${ports[$i]}" --server-pid "${pids[$i]}" \
          --publishers 21 --duration "$PUBLISH_DURATION" &
      done
      wait
      run publish-3-nodes-nginx publish --url "http://127.0.0.1:$LB_PORT" --publishers 64 --duration "$PUBLISH_DURATION"
      down
      ;;
    fanout)
      up 1
      run fanout-1-node fanout --url "http://127.0.0.1:${ports[0]}" --server-pid "${pids[0]}" \
        -n 1000 --rate 10 --duration "$FANOUT_DURATION"
      down
      up 3
      run fanout-3-nodes-nginx fanout --url "http://127.0.0.1:$LB_PORT" -n 1000 --rate 10 --duration "$FANOUT_DURATION"
      down
      ;;
    storm)
      up 3
      run storm-3-nodes-nginx storm --url "http://127.0.0.1:$LB_PORT" -n 5000 --behind 200
      down
      ;;
    conns)
      export PUSHLOG_MAX_CONNECTIONS=19500
      up "$CONNS_NODES"
      unset PUSHLOG_MAX_CONNECTIONS
      for ((i = 0; i < CONNS_NODES; i++)); do
        run "conns-$CONNS_NODES-nodes-node-$i" fanout --url "http://127.0.0.1:${ports[$i]}" --server-pid "${pids[$i]}" \
          -n "$CONNS_PER_NODE" --rate "$HOLD_EVENTS_EVERY" --duration "$CONNS_DURATION" --connect-timeout 60s &
      done
      wait
      down
      ;;
    *) die "unknown step $step" ;;
  esac
done
say "results in $jsonl"
if [[ -s "$OUT/.failed" ]]; then
  say "failed runs: $(tr '\n' ' ' <"$OUT/.failed")"
  rm -f "$OUT/.failed"
  exit 1
fi
