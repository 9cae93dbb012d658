#!/usr/bin/env bash
# Two real keepalived 2.2.7 nodes (lab.md §H) on network-namespace hosts sharing one VRRP
# instance VI_1 with the VIP 10.205.0.100 (node 1 priority 150, node 2 priority 100: node 1
# becomes MASTER). Everything lives in DIR.
# Usage: NS_PREFIX=srkXXX keepalived-up.sh DIR
# Env: NODES (2), WAIT_TIMEOUT (s, 60), OWNER_PID (starts the watchdog, see lib.sh).
# Prints "READY nodes=N master=1 elapsed=Ns". Exit 2 when NS_PREFIX's namespaces already exist.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=keepalived-env.sh
. "$HERE/keepalived-env.sh"
DIR=$(cd "${1:?usage: $0 DIR}" && pwd)
: "${NS_PREFIX:?NS_PREFIX is required}"
NODES=${NODES:-2}; WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
T0=$(date +%s.%N)
ip netns list | grep -q "^$(sw_ns)\b" && { echo "namespace $(sw_ns) exists" >&2; exit 2; }
printf 'NODES=%s\nNS_PREFIX=%s\n' "$NODES" "$NS_PREFIX" > "$DIR/cluster.env"
start_watchdog "$HERE/keepalived-down.sh" "$DIR"

# ---- network: a switch namespace with two bridges, one host namespace per node ----
two_network_hosts "$(sw_ns)" "$NODES" brv v "$VRRP_NET" "$MGMT_NET"

for i in $(seq 1 "$NODES"); do
  K=$DIR/k$i
  mkdir -p "$K"
  cat > "$K/keepalived.conf" <<CONF
global_defs {
  router_id ka$i
  data_use_instance
  vrrp_garp_master_delay 1
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $((150 - (i - 1) * 50))
  advert_int 1
  virtual_ipaddress {
    $VIP/24 dev eth0
  }
}
CONF
done

# start_node I: keepalived for host I (-s enters the namespace), in the background; it writes
# its own pid files.
start_node() {
  local K=$DIR/k$1
  rm -f "$K/keepalived.pid" "$K/vrrp.pid"
  setsid keepalived -n -l -D -P -s "$(host_ns "$1")" -f "$(kmarker "$1")" \
    -p "$K/keepalived.pid" -r "$K/vrrp.pid" >> "$K/keepalived.log" 2>&1 < /dev/null &
}
holds_vip() { ip -n "$(host_ns "$1")" -o addr show dev eth0 | grep -qF " $VIP/"; }
for i in $(seq 1 "$NODES"); do start_node "$i"; done
poll "node 1 holds the VIP" "$WAIT_TIMEOUT" holds_vip 1 || { log_tails "$DIR"/k*/keepalived.log; exit 1; }
echo "READY nodes=$NODES master=1 elapsed=$(el)"
