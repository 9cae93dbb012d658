#!/usr/bin/env bash
# Fault injection and queries for the HAProxy made by haproxy-up.sh (reads DIR/cluster.env).
# Servers are numbered 1..SERVERS.
# Usage: haproxy-ctl.sh DIR ACTION [ARGS]
#   kill N               SIGKILL HTTP server N (waits until it is gone)
#   start N              start HTTP server N again
#   state N ready|maint|drain   `set server app/sN state ...` over the stats socket
#   cmd COMMAND...       any stats socket command (`show stat`, `show servers state app`)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DIR=$(cd "${1:?usage: $0 DIR ACTION}" && pwd); A=${2:?action}; shift 2
# shellcheck disable=SC1091
. "$DIR/cluster.env"
read -r -a P <<<"$PORTS"
sock() { echo "$*" | timeout 5 socat - "UNIX-CONNECT:$DIR/haproxy.sock"; }
num() { [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$SERVERS" ] || { echo "bad server number '${1:-}'" >&2; exit 2; }; }
case $A in
  kill) num "${1:-}"; stop_pid "$(cat "$DIR/s$1.pid" 2>/dev/null)" "--directory $DIR/s$1" KILL 5 ;;
  start) num "${1:-}"
    setsid /usr/bin/python3 -m http.server "${P[$1]}" --bind 127.0.0.1 --directory "$DIR/s$1" \
      >> "$DIR/s$1.log" 2>&1 < /dev/null &
    echo $! > "$DIR/s$1.pid" ;;
  state) num "${1:-}"; out=$(sock "set server app/s$1 state ${2:?ready|maint|drain}")
    [ -z "$(echo "$out" | tr -d '[:space:]')" ] || { echo "$out" >&2; exit 1; } ;;
  cmd) sock "$*" ;;
  *) echo "unknown action $A" >&2; exit 2 ;;
esac
