#!/usr/bin/env bash
# Stop what keepalived-up.sh started in DIR: the watchdog, every keepalived of DIR (pid files
# under DIR, checked against the DIR-specific config marker; never pkill/killall), the tracked
# services (marker: their DIR-specific --directory), their data files, then the namespaces NS_PREFIX names. Idempotent. PURGE=1 also deletes the node
# directories.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=keepalived-env.sh
. "$HERE/keepalived-env.sh"
DIR=${1:?usage: $0 DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
stop_watchdog "$DIR"
[ -f "$DIR/cluster.env" ] || exit 0
# shellcheck disable=SC1091
. "$DIR/cluster.env"
for i in $(seq 1 "$NODES"); do
  for p in keepalived vrrp; do stop_pid "$(cat "$DIR/k$i/$p.pid" 2>/dev/null)" "$(kmarker "$i")" KILL 10; done
  stop_pid "$(cat "$DIR/k$i/service.pid" 2>/dev/null)" "$DIR/k$i/www" KILL 10
  rm -f "$(data_file "$i")" "/tmp/keepalived_parent.$(host_ns "$i").data"
done
for i in $(seq 1 "$NODES"); do ip netns del "$(host_ns "$i")" 2>/dev/null; done
ip netns del "$(sw_ns)" 2>/dev/null
if [ "${PURGE:-0}" = 1 ]; then rm -rf "${DIR:?}"/k[0-9]*; fi
echo "stopped (DIR=$DIR)"
