#!/usr/bin/env bash
# Stop what haproxy-up.sh started in DIR: the watchdog, haproxy and the HTTP servers (pid files
# under DIR, checked against DIR-specific markers; never pkill/killall). Idempotent.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DIR=${1:?usage: $0 DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
stop_watchdog "$DIR"
[ -f "$DIR/cluster.env" ] || exit 0
# shellcheck disable=SC1091
. "$DIR/cluster.env"
stop_pid "$(cat "$DIR/haproxy.pid" 2>/dev/null)" "$DIR/haproxy.cfg" TERM 5
for i in $(seq 1 "$SERVERS"); do
  stop_pid "$(cat "$DIR/s$i.pid" 2>/dev/null)" "--directory $DIR/s$i" KILL 5
done
echo "stopped (DIR=$DIR)"
