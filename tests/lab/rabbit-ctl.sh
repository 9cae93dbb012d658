#!/usr/bin/env bash
# Single-node control / fault injection / queries for a cluster made by rabbit-up.sh (reads
# DIR/cluster.env). Nodes are numbered 1..NODES.
# Usage: rabbit-ctl.sh DIR ACTION N [ARGS]
#   stop-node N        graceful stop (SIGTERM to beam.smp), waits until it is gone (60 s, then SIGKILL)
#   kill-node N        SIGKILL beam.smp
#   start-node N       start it again (it rejoins the cluster from its own mnesia); no wait
#   wait-node N [S]    wait (S s, default 90) until node N's management API answers and node N
#                      sees every node that is alive (pid-wise) as running
#   running N          print how many nodes node N's /api/nodes reports running ("-" = no answer)
#   stop-app N / start-app N   rabbitmqctl stop_app/start_app (VM stays up, app down)
#   ctl N ARGS...      run rabbitmqctl ARGS against node N (or 'rabbitmq-diagnostics ARGS ...')
#   get N PATH [USER:PASS]     GET on node N's management API (default: the monitor user);
#                      prints "HTTP <code>" then the body ("HTTP 000" = no answer)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DIR=$(cd "${1:?usage: $0 DIR ACTION N [ARGS]}" && pwd); A=${2:?action}; I=${3:?node number}; shift 3
[ -f "$DIR/cluster.env" ] || { echo "no $DIR/cluster.env (run rabbit-up.sh first)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$DIR/cluster.env"
read -r -a MP <<<"$MGMT_PORTS"
[[ "$I" =~ ^[0-9]+$ ]] && [ "$I" -ge 1 ] && [ "$I" -le "$NODES" ] || { echo "bad node number '$I'" >&2; exit 2; }
N=$DIR/rabbit$I
beam_alive() { alive "$DIR/rabbit$1/beam.pid" "-rabbitlab_node $DIR/rabbit$1 "; }
running() { # node -> count of running nodes in its /api/nodes, or "-"
  local out
  out=$(curl -fsS -m 3 -u guest:guest "http://127.0.0.1:${MP[$1-1]}/api/nodes?columns=name,running" 2>/dev/null) || { echo -; return; }
  grep -o '"running":true' <<<"$out" | wc -l
}
case $A in
  stop-node|kill-node)
    stop_pid "$(cat "$N/beam.pid" 2>/dev/null || true)" "-rabbitlab_node $N " "$([ "$A" = stop-node ] && echo TERM || echo KILL)" 60 ;;
  start-node) beam_alive "$I" || { rm -f "$N/beam.pid"; bash "$N/start.sh"; } ;;
  wait-node)
    sees_all_alive() {
      alive=0; for j in $(seq 1 "$NODES"); do beam_alive "$j" && alive=$((alive+1)); done
      r=$(running "$I"); [ "$r" != - ] && [ "$r" -ge "$alive" ]
    }
    poll_until $(( $(date +%s) + ${1:-90} )) 0.25 sees_all_alive \
      || { echo "TIMEOUT: node $I sees ${r} running of $alive alive" >&2; exit 1; } ;;
  running) running "$I" ;;
  stop-app) "$N/ctl.sh" stop_app ;;
  start-app) "$N/ctl.sh" start_app ;;
  ctl) "$N/ctl.sh" "$@" ;;
  get) CURL=(curl -sS -m "${HTTP_TIMEOUT:-5}" -u "${2:-$MONITOR_USER:$MONITOR_PASSWORD}")
       http CURL GET "http://127.0.0.1:${MP[I-1]}${1:?path}" ;;
  *) echo "unknown action $A" >&2; exit 2 ;;
esac
