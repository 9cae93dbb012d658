#!/usr/bin/env bash
# Fault injection and queries for the pair made by pacemaker-up.sh (reads DIR/cluster.env).
# Nodes are numbered 1..2; every command runs inside the named node's namespaces.
# Usage: pacemaker-ctl.sh DIR ACTION N [ARGS]
#   xml N               node N's `crm_mon --output-as=xml` (the fixtures' form,
#                       probes/fixtures/pacemaker-2.1)
#   pid N               node N's pacemakerd pid (what `nsenter -t` takes)
#   fail N RESOURCE     `crm_resource --fail` RESOURCE's monitor on node N: a failed action
#                       and a fail count; Pacemaker then restarts it
#   cleanup N           `crm_resource --cleanup` (all resources): forget failures
#   standby N on|off    put node N in standby, or take it out
#   maintenance N on|off   the cluster property maintenance-mode (set through node N)
#   kill N              SIGKILL every process of node N (corosync, pacemakerd and its
#                       daemons), found by its environment marker; waits until they are gone
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=pacemaker-env.sh
. "$HERE/pacemaker-env.sh"
DIR=$(cd "${1:?usage: $0 DIR ACTION N}" && pwd); A=${2:?action}; I=${3:?node number}; shift 3
# shellcheck disable=SC1091
. "$DIR/cluster.env"
[[ "$I" =~ ^[0-9]+$ ]] && [ "$I" -ge 1 ] && [ "$I" -le "$NODES" ] || { echo "bad node number '$I'" >&2; exit 2; }
onoff() { case ${1:-} in on|off) echo "$1" ;; *) echo "expected on or off, got '${1:-}'" >&2; exit 2 ;; esac; }
case $A in
  xml) in_node "$I" crm_mon --output-as=xml ;;
  pid) p=$(pcmk_pid "$I"); [ -n "$p" ] || { echo "node $I: pacemakerd is not running" >&2; exit 1; }; echo "$p" ;;
  fail) in_node "$I" crm_resource --fail -r "${1:?resource}" -N "$(node_name "$I")" ;;
  cleanup) in_node "$I" crm_resource --cleanup ;;
  standby) v=$(onoff "${1:-}"); in_node "$I" crm_attribute --node "$(node_name "$I")" --name standby --update "$v" ;;
  maintenance) v=$(onoff "${1:-}"); [ "$v" = on ] && v=true || v=false
    in_node "$I" crm_attribute --type crm_config --name maintenance-mode --update "$v" ;;
  kill) m=$(pmarker "$I")
    for _ in 1 2 3 4 5; do
      pids=$(node_pids "$I"); [ -n "$pids" ] || break
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      for p in $pids; do wait_gone_env "$p" "$m" 5 || true; done
    done
    [ -z "$(node_pids "$I")" ] || { echo "node $I: processes left: $(node_pids "$I")" >&2; exit 1; } ;;
  *) echo "unknown action $A" >&2; exit 2 ;;
esac
