#!/usr/bin/env bash
# Stop what patroni-up.sh started in DIR: the watchdog, the Patroni members, any PostgreSQL
# they left behind (after a SIGKILL of Patroni the postmaster keeps running), then etcd.
# Only pids recorded under DIR are signalled, and only after /proc/PID/cmdline shows a
# DIR-specific marker (never pkill/killall). Idempotent.
# Usage: patroni-down.sh DIR        (PURGE=1 also deletes the cluster files in DIR)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DIR=${1:?usage: $0 DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)

# 0. the watchdog (unless it is the one running us)
stop_watchdog "$DIR"
# 1. Patroni (SIGTERM: Patroni stops its PostgreSQL cleanly, fast mode), in parallel
for pf in "$DIR"/pg[0-9]*/patroni.pid; do
  [ -f "$pf" ] || continue
  M=$(dirname "$pf")
  stop_pid "$(cat "$pf")" "$M/patroni.yml" TERM 30 &
done
wait
# 2. orphaned postmasters (SIGQUIT = immediate shutdown)
for pm in "$DIR"/pg[0-9]*/data/postmaster.pid; do
  [ -f "$pm" ] || continue
  M=$(dirname "$(dirname "$pm")")
  stop_pid "$(head -1 "$pm")" "$M/data" QUIT 10
done
# 3. etcd
[ -f "$DIR/etcd/etcd.pid" ] && stop_pid "$(cat "$DIR/etcd/etcd.pid")" "$DIR/etcd/data" TERM 10
rm -f "$DIR"/pg[0-9]*/patroni.pid "$DIR/etcd/etcd.pid" "$DIR/watchdog.pid"
if [ "${PURGE:-0}" = 1 ]; then
  rm -rf "${DIR:?}"/etcd "${DIR:?}"/pg[0-9]* "${DIR:?}"/tls "${DIR:?}"/patronictl.yml "${DIR:?}"/cluster.env
fi
echo "stopped (DIR=$DIR)"
