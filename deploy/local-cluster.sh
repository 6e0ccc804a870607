#!/usr/bin/env bash
# Several pushlog nodes on one PostgreSQL database, behind Debian's nginx as
# the load balancer, all on this machine's loopback.
#
#   deploy/local-cluster.sh start [N]   # N nodes (default 3); prints the URL
#   deploy/local-cluster.sh status      # which nodes answer /readyz
#   deploy/local-cluster.sh stop        # stops nginx and every node
#
# Settings (environment):
#   PUSHLOG_DATABASE_URL  the shared log (default: database `pushlog_cluster`
#                         on the PostgreSQL at 127.0.0.1:5432, created if
#                         missing with psql)
#   PUSHLOG_JWT_SECRET    the key every node verifies tokens with (default: a
#                         fixed development secret, with a warning)
#   PUSHLOG_BIN           the binary (default: target/release/pushlog, built
#                         when missing)
#   LB_PORT               where nginx listens (default 8080); nodes listen on
#                         LB_PORT+1 … LB_PORT+N
#   CLUSTER_DIR           state: pids, logs, nginx.conf (default
#                         deploy/.cluster)
# Any other PUSHLOG_* variable is passed to every node as it is.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
: "${LB_PORT:=8080}"
: "${CLUSTER_DIR:=$here/.cluster}"
: "${PUSHLOG_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/pushlog_cluster}"
: "${PUSHLOG_BIN:=${CARGO_TARGET_DIR:-$root/target}/release/pushlog}"
: "${NGINX:=nginx}"

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

ensure_database() {
  command -v psql >/dev/null || die "psql is needed to create the database (apt-get install postgresql-client)"
  local server="${PUSHLOG_DATABASE_URL%/*}/postgres" name="${PUSHLOG_DATABASE_URL##*/}"
  name="${name%%\?*}"
  [[ "$name" =~ ^[A-Za-z0-9_]+$ ]] || die "database name '$name' must be letters, digits and _"
  psql "$server" -v ON_ERROR_STOP=1 -Atqc "SELECT 1" >/dev/null \
    || die "PostgreSQL at $server does not answer"
  if [[ -z "$(psql "$server" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]]; then
    psql "$server" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $name" && say "created database $name"
  fi
}

ensure_binary() {
  if [[ ! -x "$PUSHLOG_BIN" ]]; then
    say "building $PUSHLOG_BIN"
    (cd "$root" && cargo build --release --bin pushlog)
  fi
}

write_nginx_conf() {
  local nodes="$1" upstreams=() i
  for ((i = 1; i <= nodes; i++)); do
    upstreams+=("127.0.0.1:$((LB_PORT + i))")
  done
  "$here/nginx/render.sh" "$CLUSTER_DIR" "127.0.0.1:$LB_PORT" 1h "${upstreams[@]}" >"$CLUSTER_DIR/nginx.conf"
}

wait_ready() {
  local url="$1" tries=150
  while ((tries-- > 0)); do
    curl -fsS "$url/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

start() {
  local nodes="${1:-3}"
  [[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "the node count must be a positive number"
  command -v "$NGINX" >/dev/null || die "nginx is needed (apt-get install nginx)"
  command -v curl >/dev/null || die "curl is needed"
  [[ -e "$CLUSTER_DIR/nodes" ]] && die "a cluster is already running here; stop it first"
  if [[ -z "${PUSHLOG_JWT_SECRET:-}" ]]; then
    export PUSHLOG_JWT_SECRET="local-cluster-development-secret-0123456789"
    say "warning: PUSHLOG_JWT_SECRET not set; using a fixed development secret"
  fi
  ensure_database
  ensure_binary
  mkdir -p "$CLUSTER_DIR/tmp"
  export PUSHLOG_DATABASE_URL
  local i port
  for ((i = 1; i <= nodes; i++)); do
    port=$((LB_PORT + i))
    PUSHLOG_ADDR="127.0.0.1:$port" "$PUSHLOG_BIN" >"$CLUSTER_DIR/node-$i.log" 2>&1 &
    echo "$! $port" >>"$CLUSTER_DIR/nodes"
  done
  while read -r pid port; do
    wait_ready "http://127.0.0.1:$port" || { stop; die "node on port $port did not become ready (see $CLUSTER_DIR)"; }
    say "node $pid ready on 127.0.0.1:$port"
  done <"$CLUSTER_DIR/nodes"
  write_nginx_conf "$nodes"
  "$NGINX" -t -q -p "$CLUSTER_DIR" -c "$CLUSTER_DIR/nginx.conf" || { stop; die "nginx refused its configuration"; }
  "$NGINX" -p "$CLUSTER_DIR" -c "$CLUSTER_DIR/nginx.conf"
  wait_ready "http://127.0.0.1:$LB_PORT" || { stop; die "nginx does not reach the nodes"; }
  say "$nodes nodes on $PUSHLOG_DATABASE_URL behind http://127.0.0.1:$LB_PORT"
  echo "http://127.0.0.1:$LB_PORT"
}

status() {
  [[ -e "$CLUSTER_DIR/nodes" ]] || { say "no cluster running"; return 1; }
  while read -r pid port; do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      say "node $pid on $port: ready"
    else
      say "node $pid on $port: NOT ready"
    fi
  done <"$CLUSTER_DIR/nodes"
}

stop() {
  if [[ -e "$CLUSTER_DIR/nginx.pid" ]]; then
    "$NGINX" -q -p "$CLUSTER_DIR" -c "$CLUSTER_DIR/nginx.conf" -s quit 2>/dev/null || true
  fi
  if [[ -e "$CLUSTER_DIR/nodes" ]]; then
    while read -r pid _; do
      kill -TERM "$pid" 2>/dev/null || true
    done <"$CLUSTER_DIR/nodes"
    while read -r pid _; do
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done <"$CLUSTER_DIR/nodes"
    rm -f "$CLUSTER_DIR/nodes"
  fi
  say "stopped"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start [N] | status | stop" ;;
esac
