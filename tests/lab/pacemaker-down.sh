#!/usr/bin/env bash
# Stop what pacemaker-up.sh started in DIR: the watchdog, every process of each node (found by
# the SR_PCMK_LAB marker in its environment: corosync, pacemakerd and its daemons, resource
# agents; SIGKILL, since pacemakerd can hang on SIGTERM while a resource is blocked, lab.md
# §H; never pkill/killall), then the namespaces NS_PREFIX names (the nodes' private mounts go
# with their mount namespaces). Idempotent. PURGE=1 also deletes the node directories.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=pacemaker-env.sh
. "$HERE/pacemaker-env.sh"
DIR=${1:?usage: $0 DIR}
[ -d "$DIR" ] || exit 0
DIR=$(cd "$DIR" && pwd)
stop_watchdog "$DIR"
[ -f "$DIR/cluster.env" ] || exit 0
# shellcheck disable=SC1091
. "$DIR/cluster.env"
for i in $(seq 1 "$NODES"); do
  for _ in 1 2 3 4 5; do
    pids=$(node_pids "$i")
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    for p in $pids; do wait_gone_env "$p" "$(pmarker "$i")" 5 || true; done
  done
done
for i in $(seq 1 "$NODES"); do ip netns del "$(host_ns "$i")" 2>/dev/null; done
ip netns del "$(sw_ns)" 2>/dev/null
if [ "${PURGE:-0}" = 1 ]; then rm -rf "${DIR:?}"/n[0-9]* "$DIR/authkey"; fi
echo "stopped (DIR=$DIR)"
