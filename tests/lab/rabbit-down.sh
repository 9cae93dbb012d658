#!/usr/bin/env bash
# Stop what rabbit-up.sh started in DIR (the watchdog, every node's beam and wrapper shell,
# the private epmd). Only pids recorded under DIR are signalled, and only after
# /proc/PID/cmdline shows a DIR-specific marker (never pkill/killall). Idempotent.
# Usage: rabbit-down.sh DIR        (PURGE=1 also deletes the cluster files in DIR)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DIR=${1:?usage: $0 DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
stop_watchdog "$DIR"
# beam.smp handles SIGTERM as a graceful shutdown (Erlang/OTP >= 23); all nodes in parallel.
# The wrapper is /bin/sh running rabbitmq-server, its cmdline has no DIR: check its environment
# file instead (it is started from DIR/rabbitN/start.sh, which cds into DIR/rabbitN).
for N in "$DIR"/rabbit[0-9]*; do
  [ -d "$N" ] || continue
  ( stop_pid "$(cat "$N/beam.pid" 2>/dev/null)" "-rabbitlab_node $N " TERM 30
    W=$(cat "$N/wrapper.pid" 2>/dev/null)
    if [ -n "$W" ] && [ "$(readlink "/proc/$W/cwd" 2>/dev/null)" = "$N" ]; then stop_pid "$W" "rabbitmq-server" TERM 5; fi
  ) &
done
wait
[ -f "$DIR/epmd.pid" ] && stop_pid "$(cat "$DIR/epmd.pid")" "epmd[$DIR] -port" TERM 5
rm -f "$DIR"/rabbit[0-9]*/beam.pid "$DIR"/rabbit[0-9]*/wrapper.pid "$DIR/epmd.pid" "$DIR/watchdog.pid"
if [ "${PURGE:-0}" = 1 ]; then
  rm -rf "${DIR:?}"/rabbit[0-9]* "${DIR:?}"/home "${DIR:?}"/epmd.log "${DIR:?}"/cluster.env
fi
echo "stopped (DIR=$DIR)"
