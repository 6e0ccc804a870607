#!/usr/bin/env bash
# Renders pushlog.conf.template to stdout.
#
#   deploy/nginx/render.sh PREFIX LISTEN READ_TIMEOUT UPSTREAM...
#   deploy/nginx/render.sh /tmp/lb 127.0.0.1:8080 1h 127.0.0.1:8081 127.0.0.1:8082
set -euo pipefail
(($# >= 4)) || { echo "usage: $0 PREFIX LISTEN READ_TIMEOUT UPSTREAM..." >&2; exit 2; }
prefix="$1" listen="$2" timeout="$3"
shift 3
upstreams=""
for upstream in "$@"; do
  upstreams+="        server $upstream max_fails=0;\\n"
done
user=""
[[ "$(id -u)" == 0 ]] && user="user root;"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LISTEN@|$listen|g" -e "s|@READ_TIMEOUT@|$timeout|g" \
  -e "s|@USER@|$user|g" -e "s|@UPSTREAMS@|${upstreams%\\n}|g" \
  "$(dirname "${BASH_SOURCE[0]}")/pushlog.conf.template"
