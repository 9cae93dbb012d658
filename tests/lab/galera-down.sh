#!/usr/bin/env bash
# Stop what galera-up.sh started in DIR: the watchdog, every mariadbd of DIR (pid files under
# DIR, checked against the DIR-specific --defaults-file marker; never pkill/killall), the
# HAProxy of LB_CHECK_PORT if any (its DIR-specific config path is the marker), then the
# namespaces NS_PREFIX names. Idempotent. PURGE=1 also deletes the node directories.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=galera-env.sh
. "$HERE/galera-env.sh"
DIR=${1:?usage: $0 DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
stop_watchdog "$DIR"
[ -f "$DIR/cluster.env" ] || exit 0
# shellcheck disable=SC1091
. "$DIR/cluster.env"
for i in $(seq 1 "$NODES"); do
  # SIGKILL: a graceful shutdown of a partitioned node can wait for the group for minutes
  stop_pid "$(cat "$DIR/g$i/mysqld.pid" 2>/dev/null)" "$(gmarker "$i")" KILL 10 &
done
wait
stop_pid "$(cat "$DIR/haproxy.pid" 2>/dev/null)" "$DIR/haproxy.cfg" TERM 10
for i in $(seq 1 "$NODES"); do ip netns del "$(host_ns "$i")" 2>/dev/null; done
ip netns del "$(sw_ns)" 2>/dev/null
if [ "${PURGE:-0}" = 1 ]; then rm -rf "${DIR:?}"/g[0-9]*; fi
echo "stopped (DIR=$DIR)"
