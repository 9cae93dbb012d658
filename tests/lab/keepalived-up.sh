#!/usr/bin/env bash
# Two real keepalived 2.2.7 nodes (lab.md §H) on network-namespace hosts sharing one VRRP
# instance VI_1 with the VIP 10.205.0.100 (node 1 priority 150, node 2 priority 100: node 1
# becomes MASTER). Everything lives in DIR.
# Usage: NS_PREFIX=srkXXX keepalived-up.sh DIR
# Env: NODES (2), WAIT_TIMEOUT (s, 60), OWNER_PID (starts the watchdog, see lib.sh).
# With CHECK_PORT, CHECK_NAME and SERVICE_PORT: each host also runs a tiny real HTTP server
# (the service the VIP fronts) on 127.0.0.1:SERVICE_PORT in its namespace, and VI_1 tracks a
# vrrp_script that asks the host's agent: `curl -fsS --max-time 1
# http://127.0.0.1:CHECK_PORT/check/CHECK_NAME` every second (fall 2, rise 2, no weight: a
# failing check puts the node in FAULT and the VIP moves). No agent answers yet when this
# script ends, so every node starts in FAULT: then it does not wait for the VIP.
# Prints "READY nodes=N master=1 elapsed=Ns" (tracked: "READY nodes=N tracked=CHECK_NAME
# elapsed=Ns"). Exit 2 when NS_PREFIX's namespaces already exist.
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
printf 'NODES=%s\nNS_PREFIX=%s\nSERVICE_PORT=%s\n' "$NODES" "$NS_PREFIX" "${SERVICE_PORT:-}" > "$DIR/cluster.env"
start_watchdog "$HERE/keepalived-down.sh" "$DIR"

# ---- network: a switch namespace with two bridges, one host namespace per node ----
two_network_hosts "$(sw_ns)" "$NODES" brv v "$VRRP_NET" "$MGMT_NET"

TRACKED=${CHECK_PORT:+1}
for i in $(seq 1 "$NODES"); do
  K=$DIR/k$i
  mkdir -p "$K"
  if [ -n "$TRACKED" ]; then
    SCRIPT="vrrp_script chk_agent {
  script \"/usr/bin/curl -fsS --max-time 1 -o /dev/null http://127.0.0.1:$CHECK_PORT/check/${CHECK_NAME:?CHECK_NAME is required with CHECK_PORT}\"
  interval 1
  timeout 2
  fall 2
  rise 2
}"
    TRACK="track_script {
    chk_agent
  }"
  else
    SCRIPT=""; TRACK=""
  fi
  cat > "$K/keepalived.conf" <<CONF
global_defs {
  router_id ka$i
  data_use_instance
  vrrp_garp_master_delay 1
  script_user root
}
$SCRIPT
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority $((150 - (i - 1) * 50))
  advert_int 1
  virtual_ipaddress {
    $VIP/24 dev eth0
  }
  $TRACK
}
CONF
done

# start_service I: host I's service (python3 -m http.server on loopback in its namespace);
# its --directory (under DIR) is the marker the ctl and down scripts check.
start_service() {
  local K=$DIR/k$1
  mkdir -p "$K/www"; echo "k$1" > "$K/www/index.html"
  setsid ip netns exec "$(host_ns "$1")" /usr/bin/python3 -m http.server "${SERVICE_PORT:?}" \
    --bind 127.0.0.1 --directory "$K/www" >> "$K/service.log" 2>&1 < /dev/null &
  echo $! > "$K/service.pid"
}
if [ -n "$TRACKED" ]; then
  for i in $(seq 1 "$NODES"); do start_service "$i"; done
fi

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
if [ -n "$TRACKED" ]; then
  # keepalived up in each namespace (its pid file written) is all that can be waited for here.
  started() { alive "$DIR/k$1/vrrp.pid" "$(kmarker "$1")"; }
  for i in $(seq 1 "$NODES"); do
    poll "node $i's VRRP process" "$WAIT_TIMEOUT" started "$i" || { log_tails "$DIR"/k*/keepalived.log; exit 1; }
  done
  echo "READY nodes=$NODES tracked=$CHECK_NAME elapsed=$(el)"
  exit 0
fi
poll "node 1 holds the VIP" "$WAIT_TIMEOUT" holds_vip 1 || { log_tails "$DIR"/k*/keepalived.log; exit 1; }
echo "READY nodes=$NODES master=1 elapsed=$(el)"
