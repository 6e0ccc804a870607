#!/usr/bin/env bash
# pushlog against nginx+nchan, in one run: the same loadgen scenarios
# (`conns`, `fanout` at a set rate, `fanout` at saturation, `publish`) against each
# server, one server at a time and a fresh server process per scenario, then
# a table of the figures side by side with the ratios pushlog/nchan.
#
#   loadtests/compare/run.sh                # full size (see README.md)
#   SMALL=1 loadtests/compare/run.sh        # a few hundred connections, seconds
#
# Sizes: CONNS, HOLD, FANOUT_SUBS, RATE, FANOUT_DURATION, SAT_SUBS,
# SAT_DURATION, PUBLISHERS, PUBLISH_DURATION, SAT_BATCH (events per pushlog publish at saturation, default
# 1 like nchan), TRANSPORT (both|sse|ws). Binaries: PUSHLOG_BIN, LOADGEN_BIN
# (built in release mode when not given), NGINX. Results go to
# loadtests/compare/out/<UTC date>.jsonl (one loadgen result line per run,
# with a `compare` field naming it), logs to out/<UTC date>.log. Only
# loopback addresses are used; the system's nginx is never touched.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

SMALL="${SMALL:-0}"
if [[ "$SMALL" == 1 ]]; then
  : "${CONNS:=400}" "${HOLD:=3s}"
  : "${FANOUT_SUBS:=200}" "${FANOUT_DURATION:=3s}"
  : "${SAT_SUBS:=100}" "${SAT_DURATION:=3s}"
  : "${PUBLISH_DURATION:=3s}"
  : "${RUN_TIMEOUT:=120}"
  # Short heartbeats, so that a few seconds' hold sees some.
  : "${HEARTBEAT_SECS:=1}" "${WS_PING_SECS:=2}"
else
  : "${CONNS:=19000}" "${HOLD:=30s}"
  : "${FANOUT_SUBS:=5000}" "${FANOUT_DURATION:=30s}"
  : "${SAT_SUBS:=1000}" "${SAT_DURATION:=10s}"
  : "${PUBLISH_DURATION:=10s}"
  : "${RUN_TIMEOUT:=900}"
fi
: "${RATE:=10}" "${TRANSPORT:=both}" "${SAT_BATCH:=1}"
: "${SERVERS:=pushlog nchan}" "${SCENARIOS:=conns fanout saturation publish}"
: "${PUBLISHERS:=64}"
: "${PUSHLOG_PORT:=18080}" "${NCHAN_PORT:=18090}"
# Both servers get the same heartbeats: SSE every 15 s, WebSocket pings
# every 30 s (pushlog's defaults).
: "${HEARTBEAT_SECS:=15}" "${WS_PING_SECS:=30}"
: "${SETTLE_SECS:=2}" "${BUILD_TIMEOUT:=3600}" "${START_TIMEOUT:=30}"
: "${NGINX:=nginx}" "${NCHAN_MODULE:=/usr/lib/nginx/modules/ngx_nchan_module.so}"
: "${TARGET_DIR:=${CARGO_TARGET_DIR:-$root/target}}"
# Extra flags for every loadgen run (e.g. `--max-failed-pct 0.1`).
: "${LOADGEN_ARGS:=}"
# A fixed test secret for the throwaway pushlog (HS256 takes >= 32 bytes).
: "${PUSHLOG_JWT_SECRET:=loadtests-compare-secret-0123456789abcdef}"

say() { printf '[compare] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

# --- Preflight --------------------------------------------------------------
command -v python3 >/dev/null || die "python3 is needed for the table"
command -v curl >/dev/null || die "curl is needed to see the servers come up"
command -v timeout >/dev/null || die "timeout (coreutils) is needed"
for server in $SERVERS; do
  case "$server" in
    pushlog) ;;
    nchan)
      command -v "$NGINX" >/dev/null || die "no $NGINX: apt-get install nginx libnginx-mod-nchan"
      [[ -f "$NCHAN_MODULE" ]] || die "no $NCHAN_MODULE: apt-get install libnginx-mod-nchan"
      ;;
    *) die "unknown server $server in SERVERS (pushlog, nchan)" ;;
  esac
done
for scenario in $SCENARIOS; do
  case "$scenario" in conns | fanout | saturation | publish) ;; *) die "unknown scenario $scenario" ;; esac
done

# Is anything answering on this loopback port?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$PUSHLOG_PORT" "$NCHAN_PORT"; do
  ! port_open "$port" || die "127.0.0.1:$port is already in use; set PUSHLOG_PORT / NCHAN_PORT"
done

# --- Binaries ---------------------------------------------------------------
# Both are members of one workspace: one release build, one target dir.
if [[ -z "${PUSHLOG_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
  say "building pushlog and loadgen (release) in $TARGET_DIR"
  (cd "$root" && CARGO_TARGET_DIR="$TARGET_DIR" \
    timeout "$BUILD_TIMEOUT" cargo build --release -p pushlog -p loadgen)
  : "${PUSHLOG_BIN:=$TARGET_DIR/release/pushlog}" "${LOADGEN_BIN:=$TARGET_DIR/release/loadgen}"
fi
[[ -x "$LOADGEN_BIN" ]] || die "LOADGEN_BIN=$LOADGEN_BIN is not an executable"
[[ " $SERVERS " != *" pushlog "* || -x "${PUSHLOG_BIN:-}" ]] ||
  die "PUSHLOG_BIN=${PUSHLOG_BIN:-} is not an executable"

# --- Output and clean-up ----------------------------------------------------
stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
out="$here/out"
mkdir -p "$out"
results="$out/$stamp.jsonl"
log="$out/$stamp.log"
: >"$results"
: >"$log"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/pushlog-compare.XXXXXX")"
# nginx's workers run as nobody when started by root; let them in.
chmod 755 "$tmp"
server_pid=""
loadgen_pid=""

# Stops the server this script started, by its pid: SIGTERM (nginx: fast
# shutdown of master and workers; pushlog: graceful), SIGKILL after 15 s.
stop_server() {
  [[ -n "$server_pid" ]] || return 0
  local pid="$server_pid" children
  server_pid=""
  children="$(ps -o pid= --ppid "$pid" 2>/dev/null || true)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "server $pid did not stop within 15 s; killing it"
    # shellcheck disable=SC2086 # one pid per word
    kill -KILL "$pid" $children 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$loadgen_pid" ]]; then
    # `timeout` passes the signal on to loadgen; its workers exit when
    # their parent is gone.
    kill -TERM "$loadgen_pid" 2>/dev/null || true
    wait "$loadgen_pid" 2>/dev/null || true
  fi
  stop_server
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# The servers hold tens of thousands of sockets: the soft open-file limit
# goes to the hard one (20,000 per process on these machines).
ulimit -n "$(ulimit -Hn)"

# Waits until `url` answers with a 2xx while the server process lives, at
# most START_TIMEOUT seconds.
wait_ready() {
  local url=$1 name=$2
  local deadline=$((SECONDS + START_TIMEOUT))
  until curl -fs -o /dev/null --max-time 1 "$url"; do
    kill -0 "$server_pid" 2>/dev/null || die "$name exited at start; see $log"
    ((SECONDS < deadline)) || die "$name did not answer at $url within ${START_TIMEOUT}s; see $log"
    sleep 0.2
  done
}

start_pushlog() {
  local dir="$tmp/pushlog-$1"
  mkdir -p "$dir"
  local max=$((CONNS > FANOUT_SUBS ? CONNS : FANOUT_SUBS))
  max=$((max + 1000 > 19000 ? max + 1000 : 19000))
  say "starting pushlog on 127.0.0.1:$PUSHLOG_PORT (fresh database in $dir)"
  echo "=== pushlog for $1" >>"$log"
  PUSHLOG_ADDR="127.0.0.1:$PUSHLOG_PORT" \
    PUSHLOG_DATABASE_URL="sqlite://$dir/pushlog.db" \
    PUSHLOG_JWT_SECRET="$PUSHLOG_JWT_SECRET" \
    PUSHLOG_MAX_CONNECTIONS="$max" \
    PUSHLOG_HEARTBEAT_SECS="$HEARTBEAT_SECS" \
    PUSHLOG_WS_PING_SECS="$WS_PING_SECS" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$PUSHLOG_BIN" >>"$log" 2>&1 &
  server_pid=$!
  wait_ready "http://127.0.0.1:$PUSHLOG_PORT/readyz" pushlog
}

start_nchan() {
  local dir="$tmp/nginx-$1"
  mkdir -p "$dir/tmp"
  chmod 755 "$dir" "$dir/tmp"
  # The config with this run's port and ping intervals; each must have been
  # found, or the copy would silently differ from what the run claims.
  sed -e "s/127\.0\.0\.1:18090/127.0.0.1:$NCHAN_PORT/" \
    -e "s/nchan_eventsource_ping_interval [0-9]*;/nchan_eventsource_ping_interval $HEARTBEAT_SECS;/" \
    -e "s/nchan_websocket_ping_interval [0-9]*;/nchan_websocket_ping_interval $WS_PING_SECS;/" \
    -e "s#^load_module .*#load_module $NCHAN_MODULE;#" \
    "$here/nginx-nchan.conf" >"$dir/nginx.conf"
  grep -q "listen 127.0.0.1:$NCHAN_PORT " "$dir/nginx.conf" &&
    grep -q "nchan_eventsource_ping_interval $HEARTBEAT_SECS;" "$dir/nginx.conf" &&
    grep -q "nchan_websocket_ping_interval $WS_PING_SECS;" "$dir/nginx.conf" ||
    die "nginx-nchan.conf no longer has the port or ping lines run.sh rewrites"
  say "starting nginx+nchan on 127.0.0.1:$NCHAN_PORT (prefix $dir)"
  echo "=== nginx+nchan for $1" >>"$log"
  # -e: the error log from the start, so nginx never opens the system's.
  "$NGINX" -e stderr -p "$dir/" -c "$dir/nginx.conf" >>"$log" 2>&1 &
  server_pid=$!
  wait_ready "http://127.0.0.1:$NCHAN_PORT/ready" nginx
}

# Runs one loadgen scenario against the running server and appends its
# result line, with a `compare` field in front, to the results file.
run_loadgen() {
  local label=$1 server=$2 url=$3
  shift 3
  local -a env=()
  [[ "$server" == pushlog ]] && env=(LOADGEN_SECRET="$PUSHLOG_JWT_SECRET")
  say "$label against $server: loadgen $*"
  echo "=== loadgen $label against $server: $*" >>"$log"
  local result="$tmp/result.json" line rc=0
  # In the background and waited for, so that a signal to this script is
  # handled at once rather than when loadgen is done.
  # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
  env "${env[@]}" timeout --kill-after=10 "$RUN_TIMEOUT" "$LOADGEN_BIN" "$@" \
    --server "$server" --url "$url" --server-pid "$server_pid" $LOADGEN_ARGS \
    >"$result" 2> >(tee -a "$log" >&2) &
  loadgen_pid=$!
  wait "$loadgen_pid" || rc=$?
  loadgen_pid=""
  line="$(tail -n 1 "$result")"
  local tag="{\"compare\":{\"label\":\"$label\",\"server\":\"$server\",\"exit\":$rc}"
  if [[ "$line" == "{"*"}" ]]; then
    echo "$tag,${line#\{}" >>"$results"
  else
    say "$label against $server produced no result line (exit $rc)"
    echo "$tag,\"ok\":false,\"error\":\"no result line (exit $rc)\"}" >>"$results"
  fi
}

run_scenario() {
  local scenario=$1 server=$2 url
  case "$server" in
    pushlog) url="http://127.0.0.1:$PUSHLOG_PORT" ;;
    nchan) url="http://127.0.0.1:$NCHAN_PORT" ;;
  esac
  case "$scenario" in
    conns)
      run_loadgen conns "$server" "$url" conns \
        --connections "$CONNS" --transport "$TRANSPORT" --hold "$HOLD" ;;
    fanout)
      run_loadgen fanout "$server" "$url" fanout \
        --subscribers "$FANOUT_SUBS" --transport "$TRANSPORT" \
        --rate "$RATE" --duration "$FANOUT_DURATION" ;;
    publish)
      run_loadgen publish "$server" "$url" publish \
        --publishers "$PUBLISHERS" --duration "$PUBLISH_DURATION" ;;
    saturation)
      # nchan publishes one message per request; pushlog may take batches
      # (SAT_BATCH), since one durable commit per request is what limits a
      # single publisher, not the fan-out.
      local -a batch=()
      [[ "$server" == pushlog ]] && batch=(--batch "$SAT_BATCH")
      run_loadgen saturation "$server" "$url" fanout \
        --subscribers "$SAT_SUBS" --transport "$TRANSPORT" \
        --rate max --duration "$SAT_DURATION" "${batch[@]}" ;;
  esac
}

# --- The runs ---------------------------------------------------------------
say "results: $results"
say "log: $log"
for scenario in $SCENARIOS; do
  for server in $SERVERS; do
    "start_$server" "$scenario"
    sleep "$SETTLE_SECS"
    run_scenario "$scenario" "$server"
    stop_server
  done
done

python3 "$here/table.py" "$results"
say "results: $results (table again: python3 $here/table.py $results)"
