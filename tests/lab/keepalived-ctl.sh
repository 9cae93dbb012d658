#!/usr/bin/env bash
# Fault injection and queries for the pair made by keepalived-up.sh (reads DIR/cluster.env).
# Nodes are numbered 1..NODES.
# Usage: keepalived-ctl.sh DIR ACTION N [ARGS]
#   stop N SIGNAL   signal node N's keepalived (TERM or KILL) and wait until it is gone; with
#                   KILL its VRRP child dies too, and the VIP stays on the interface (lab.md §H)
#   start N         start node N's keepalived again
#   isolate N / join N   bridge port state 0 / 3 (forwarding) for node N's VRRP port: adverts
#                   are dropped with the carrier kept, so both become MASTER (split brain)
#   fault N / unfault N  take node N's VRRP port down / up: its eth0 loses carrier (FAULT)
#   dump N          USR1 node N's keepalived and print its data file once rewritten (the
#                   fixtures' form, probes/fixtures/keepalived-2.2)
#   addrs N         node N's `ip -j addr show`
#   service-stop N / service-start N   stop (SIGTERM) / start node N's tracked service, the
#                   HTTP server on 127.0.0.1:SERVICE_PORT (with CHECK_PORT, see keepalived-up.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=keepalived-env.sh
. "$HERE/keepalived-env.sh"
DIR=$(cd "${1:?usage: $0 DIR ACTION N}" && pwd); A=${2:?action}; I=${3:?node number}; shift 3
# shellcheck disable=SC1091
. "$DIR/cluster.env"
[[ "$I" =~ ^[0-9]+$ ]] && [ "$I" -ge 1 ] && [ "$I" -le "$NODES" ] || { echo "bad node number '$I'" >&2; exit 2; }
K=$DIR/k$I
case $A in
  stop) sig=${1:-TERM}; main=$(cat "$K/keepalived.pid" 2>/dev/null || true); vrrp=$(cat "$K/vrrp.pid" 2>/dev/null || true)
    # KILL hits both processes, the VRRP child first (the parent's death alone lets the child
    # remove its VIP; even so the child sometimes gets to, see tests/keepalived_vip.rs step 4);
    # TERM goes to the parent only, which stops its child as `systemctl stop` would.
    if [ "$sig" = KILL ]; then
      for p in "$vrrp" "$main"; do owns "$p" "$(kmarker "$I")" || continue; kill -KILL "$p" 2>/dev/null || true; done
    fi
    stop_pid "$main" "$(kmarker "$I")" "$sig" 10
    stop_pid "$vrrp" "$(kmarker "$I")" "$sig" 10 ;;
  start)
    rm -f "$K/keepalived.pid" "$K/vrrp.pid"
    setsid keepalived -n -l -D -P -s "$(host_ns "$I")" -f "$(kmarker "$I")" \
      -p "$K/keepalived.pid" -r "$K/vrrp.pid" >> "$K/keepalived.log" 2>&1 < /dev/null & ;;
  isolate) bridge -n "$(sw_ns)" link set dev "v$I" state 0 ;;
  join) bridge -n "$(sw_ns)" link set dev "v$I" state 3 ;;
  fault) ip -n "$(sw_ns)" link set "v$I" down ;;
  unfault) ip -n "$(sw_ns)" link set "v$I" up ;;
  dump) F=$(data_file "$I"); before=$(stat -c %Y.%y "$F" 2>/dev/null || echo none)
    kill -USR1 "$(cat "$K/keepalived.pid")"
    changed() { [ "$(stat -c %Y.%y "$F" 2>/dev/null || echo none)" != "$before" ] && [ -s "$F" ]; }
    poll "data file $F rewritten" 5 changed
    cat "$F" ;;
  addrs) ip -n "$(host_ns "$I")" -j addr show ;;
  service-stop) stop_pid "$(cat "$K/service.pid" 2>/dev/null)" "$K/www" TERM 10 ;;
  service-start)
    alive "$K/service.pid" "$K/www" && exit 0
    setsid ip netns exec "$(host_ns "$I")" /usr/bin/python3 -m http.server "${SERVICE_PORT:?}" \
      --bind 127.0.0.1 --directory "$K/www" >> "$K/service.log" 2>&1 < /dev/null &
    echo $! > "$K/service.pid" ;;
  *) echo "unknown action $A" >&2; exit 2 ;;
esac
