#!/usr/bin/env bash
# Conformance: schemathesis generates requests from openapi/openapi.yaml and
# checks every answer of the real binary against it (status codes, content
# types, headers, response schemas, valid data accepted, invalid data refused,
# auth not ignored, 405 for undeclared methods) plus the contract checks of
# tests/conformance/hooks.py.
#
# Starts one pushlog ($PUSHLOG_BIN, default target/debug/pushlog) on a free
# loopback port with a fresh SQLite log, mints a publisher token, runs a
# bounded schemathesis (examples per operation and a wall clock), and always
# stops the server. Exits non-zero on any failure, on a run that tested fewer
# operations than the spec has, or when something it needs is missing.
#
#   PUSHLOG_BIN=target/debug/pushlog bash tests/conformance/schemathesis.sh
#
# Knobs: SCHEMATHESIS_MAX_EXAMPLES (default 30 per operation and phase),
# SCHEMATHESIS_SEED (default fixed, so CI runs the same cases; `random` for a
# new seed), SCHEMATHESIS_BUDGET_SECS (wall clock of the run, default 240).
set -euo pipefail
# A PUSHLOG_BIN relative to the caller's directory stays valid after the cd.
if [ -n "${PUSHLOG_BIN:-}" ] && [ -e "$PUSHLOG_BIN" ]; then
  PUSHLOG_BIN=$(realpath "$PUSHLOG_BIN")
fi
cd "$(dirname "$0")/../.."
root=$PWD
here="$root/tests/conformance"

# The version this was tested with, pinned with its dependencies in
# requirements.txt; bump both deliberately.
SCHEMATHESIS_VERSION=4.32.5
PUSHLOG_BIN="${PUSHLOG_BIN:-target/debug/pushlog}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-30}"
seed="${SCHEMATHESIS_SEED:-20261205}"
budget="${SCHEMATHESIS_BUDGET_SECS:-240}"

fail() { echo "conformance: $*" >&2; exit 1; }
[ -x "$PUSHLOG_BIN" ] || fail "$PUSHLOG_BIN is not an executable (build it with cargo build, or set PUSHLOG_BIN)"
for tool in python3 curl timeout; do
  command -v "$tool" >/dev/null 2>&1 || fail "required tool '$tool' is missing"
done

# schemathesis in its own virtualenv, outside the clone, kept between runs
# and made anew whenever requirements.txt (every version pinned) changes.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/pushlog-schemathesis"
st="$venv/bin/schemathesis"
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" || [ ! -x "$st" ]; then
  echo "conformance: installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv --clear "$venv" \
    || fail "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || fail "pip could not install tests/conformance/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
[ "$("$st" --version)" = "schemathesis, version $SCHEMATHESIS_VERSION" ] \
  || fail "$st is not schemathesis $SCHEMATHESIS_VERSION (requirements.txt and this script disagree)"

work=$(mktemp -d /tmp/pushlog-conformance.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export PUSHLOG_JWT_SECRET="conformance-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# No RUST_LOG: the default filter is the one that keeps malformed requests
# out of the error log, and an ERROR line fails the run below.
PUSHLOG_ADDR="127.0.0.1:$port" \
PUSHLOG_DATABASE_URL="sqlite://$work/c.db" \
  env -u RUST_LOG "$PUSHLOG_BIN" >"$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ready=
for _ in $(seq 1 150); do
  if curl -fsS -o /dev/null --max-time 1 "$base/readyz" 2>/dev/null; then ready=1; break; fi
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; fail "pushlog exited at start"; }
  sleep 0.1
done
[ -n "$ready" ] || { cat "$work/server.log" >&2; fail "pushlog never became ready on $base"; }

# `pushlog token` signs with PUSHLOG_JWT_SECRET from the environment.
token=$("$PUSHLOG_BIN" token --sub schemathesis --roles publisher --ttl 1h)
[ -n "$token" ] || fail "pushlog token printed no token"

# Every operation of the spec is tested, the endless GET /events/stream
# included: schemathesis reads a text/event-stream until the request timeout
# (1 s for that operation, in schemathesis.toml) and checks what arrived.
# Every check is on: schemathesis.toml enables them all by default (the
# stateful use_after_free and ensure_resource_availability find no links in
# this spec and do nothing) and hooks.py adds the contract's own. No
# `--checks` on the command line: checks named there would override the few
# per-operation settings of schemathesis.toml, each explained there.
# One worker: with two, CPython 3.11.7's ast.parse (called by hypothesis from
# several threads) failed with "AST constructor recursion depth mismatch".
operations=$("$venv/bin/python" - "$root/openapi/openapi.yaml" <<'EOF'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
print(sum(1 for item in spec["paths"].values() for method in item if method in methods))
EOF
)
[ "$operations" -gt 0 ] || fail "found no operations in openapi/openapi.yaml"

args=(
  run "$root/openapi/openapi.yaml"
  --url "$base"
  --max-examples "$max_examples"
  --request-timeout 10
  --workers 1
  --generation-database none
  --report junit --report-junit-path "$work/junit.xml"
  --no-color
)
[ "$seed" = random ] || args+=(--seed "$seed")

echo "conformance: schemathesis $SCHEMATHESIS_VERSION against $PUSHLOG_BIN on $base, $operations operations, at most ${budget}s"
echo "conformance: schemathesis --config-file tests/conformance/schemathesis.toml ${args[*]} --header 'Authorization: Bearer <publisher token>'"
status=0
# Run from the scratch directory: hypothesis keeps a cache in `.hypothesis`
# under the working directory, which must not land in the clone.
(
  cd "$work"
  SCHEMATHESIS_HOOKS="$here/hooks.py" exec timeout --kill-after=10 "$budget" \
    "$st" --config-file "$here/schemathesis.toml" "${args[@]}" \
    --header "Authorization: Bearer $token"
) || status=$?

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  fail "schemathesis did not finish within ${budget}s (raise SCHEMATHESIS_BUDGET_SECS or lower SCHEMATHESIS_MAX_EXAMPLES)"
fi
if ! kill -0 "$server" 2>/dev/null; then
  tail -50 "$work/server.log" >&2
  fail "pushlog died during the run"
fi
if grep -qE ' (ERROR|panicked)' "$work/server.log"; then
  grep -E ' (ERROR|panicked)' "$work/server.log" | head -20 >&2
  fail "pushlog logged errors during the run"
fi

# One JUnit test case per operation: each must have run and passed.
[ -s "$work/junit.xml" ] || fail "schemathesis (exit $status) wrote no JUnit report"
counts=$(python3 - "$work/junit.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("skipped") is not None:
        skipped += 1
    elif case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    else:
        passed += 1
print(passed, failed, skipped)
EOF
) || fail "schemathesis's JUnit report cannot be read"
read -r passed failed skipped <<<"$counts"
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "conformance: $passed passed, $failed failed"
[ "$status" -eq 0 ] || fail "schemathesis reported failures (exit $status)"
[ "$skipped" -eq 0 ] || fail "$skipped operations were skipped"
[ "$passed" -eq "$operations" ] || fail "$passed operations passed, the spec has $operations"
