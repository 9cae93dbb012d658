#!/usr/bin/env bash
# Fault injection and queries for a cluster made by galera-up.sh (reads DIR/cluster.env).
# Nodes are numbered 1..NODES.
# Usage: galera-ctl.sh DIR ACTION N [ARGS]
#   kill N          SIGKILL node N's mariadbd (waits until it is gone)
#   cut N / heal N  take node N's Galera link down / up (the management link stays up)
#   desync N on|off SET GLOBAL wsrep_desync (the node becomes Donor/Desynced)
#   status N        node N's `SHOW GLOBAL STATUS LIKE 'wsrep_%'` and read_only, tab-separated
#                   (the fixtures' form, probes/fixtures/galera-10.11)
#   sql N STATEMENT one statement as root over node N's socket
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=galera-env.sh
. "$HERE/galera-env.sh"
DIR=$(cd "${1:?usage: $0 DIR ACTION N}" && pwd); A=${2:?action}; I=${3:?node number}; shift 3
# shellcheck disable=SC1091
. "$DIR/cluster.env"
[[ "$I" =~ ^[0-9]+$ ]] && [ "$I" -ge 1 ] && [ "$I" -le "$NODES" ] || { echo "bad node number '$I'" >&2; exit 2; }
case $A in
  kill) stop_pid "$(cat "$DIR/g$I/mysqld.pid" 2>/dev/null)" "$(gmarker "$I")" KILL 10 ;;
  cut) ip -n "$(sw_ns)" link set "c$I" down ;;
  heal) ip -n "$(sw_ns)" link set "c$I" up ;;
  desync) sql "$I" "SET GLOBAL wsrep_desync=$( [ "${1:-on}" = on ] && echo ON || echo OFF )" ;;
  status) sql "$I" "SHOW GLOBAL STATUS LIKE 'wsrep_%'; SELECT 'read_only', @@read_only" ;;
  sql) sql "$I" "${1:?statement}" ;;
  *) echo "unknown action $A" >&2; exit 2 ;;
esac
