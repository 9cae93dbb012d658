#!/usr/bin/env bash
# A real MariaDB Galera cluster of NODES (default 3) nodes, each on its own network-namespace
# host (lab.md §E, §H), with Debian 12's mariadb-server and galera-4. Everything lives in DIR.
# Usage: NS_PREFIX=srgXXX galera-up.sh DIR
# Env: NODES (3), WAIT_TIMEOUT (s, 120), MONITOR_USER/MONITOR_PASSWORD (created with USAGE
# only: reading status needs no privilege), OWNER_PID (starts the watchdog, see lib.sh).
# With LB_CHECK_PORT (OpenStack's clustercheck pattern): a real HAProxy in the switch namespace
# (admin stats socket DIR/haproxy.sock) listens on $MGMT_NET.254:3306 in front of the nodes'
# MariaDB (g<i> = $GAL_NET.<i>:3306), each checked by `option httpchk GET /check/galera?strict`
# on $MGMT_NET.<i>:LB_CHECK_PORT over the management network: the agent's check endpoint there.
# Prints "READY nodes=N elapsed=Ns". Exit 2 when NS_PREFIX's namespaces already exist.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=galera-env.sh
. "$HERE/galera-env.sh"
DIR=$(cd "${1:?usage: $0 DIR}" && pwd)
: "${NS_PREFIX:?NS_PREFIX is required}"
NODES=${NODES:-3}; WAIT_TIMEOUT=${WAIT_TIMEOUT:-120}
MONITOR_USER=${MONITOR_USER:-monitor}; MONITOR_PASSWORD=${MONITOR_PASSWORD:-monitor}
T0=$(date +%s.%N)
ip netns list | grep -q "^$(sw_ns)\b" && { echo "namespace $(sw_ns) exists" >&2; exit 2; }
printf 'NODES=%s\nNS_PREFIX=%s\n' "$NODES" "$NS_PREFIX" > "$DIR/cluster.env"
start_watchdog "$HERE/galera-down.sh" "$DIR"

# ---- network: a switch namespace with two bridges, one host namespace per node ----
two_network_hosts "$(sw_ns)" "$NODES" brc c "$GAL_NET" "$MGMT_NET"

# ---- one datadir and my.cnf per node ----
ADDRS=$(seq -s, -f "$GAL_NET.%g" 1 "$NODES")
chmod 755 "$DIR"
for i in $(seq 1 "$NODES"); do
  G=$DIR/g$i
  mkdir -p "$G/data"
  cat > "$G/my.cnf" <<CNF
[mysqld]
user=mysql
datadir=$G/data
socket=$G/mysqld.sock
pid-file=$G/mysqld.pid
log-error=$G/error.log
bind-address=$GAL_NET.$i
port=3306
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=16M
innodb_log_file_size=8M
performance_schema=OFF
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_provider_options="gcache.size=16M;evs.inactive_timeout=PT6S;evs.suspect_timeout=PT3S"
wsrep_cluster_name=srlab
wsrep_cluster_address=gcomm://$ADDRS
wsrep_node_address=$GAL_NET.$i
wsrep_node_name=g$i
wsrep_sst_method=rsync
CNF
  chown -R mysql:mysql "$G"
  mariadb-install-db --defaults-file="$G/my.cnf" --user=mysql --auth-root-authentication-method=socket \
    > "$G/install.log" 2>&1 || { log_tails "$G/install.log"; exit 1; }
done

# start_node I [EXTRA]: mariadbd inside host I's namespace, in the background (its pid file is
# written by mariadbd itself; the harness's ctl reads it).
start_node() {
  local G=$DIR/g$1
  setsid ip netns exec "$(host_ns "$1")" mariadbd "$(gmarker "$1")" ${2:-} >> "$G/stdout.log" 2>&1 < /dev/null &
}
synced() { [ "$(sql "$1" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ]; }
size_is() { [ "$(sql "$1" "SHOW STATUS LIKE 'wsrep_cluster_size'" 2>/dev/null | cut -f2)" = "$2" ]; }

start_node 1 --wsrep-new-cluster
poll "g1 synced" "$WAIT_TIMEOUT" synced 1 || { log_tails "$DIR/g1/error.log"; exit 1; }
for i in $(seq 2 "$NODES"); do
  start_node "$i"
  poll "g$i synced" "$WAIT_TIMEOUT" synced "$i" || { log_tails "$DIR/g$i/error.log"; exit 1; }
done
poll "cluster size $NODES" 30 size_is 1 "$NODES" || exit 1
sql 1 "CREATE USER IF NOT EXISTS '$MONITOR_USER'@'%' IDENTIFIED BY '$MONITOR_PASSWORD';
       CREATE USER IF NOT EXISTS '$MONITOR_USER'@'localhost' IDENTIFIED BY '$MONITOR_PASSWORD'"

# ---- optional: HAProxy in front of the nodes, checked through the agents' /check/galera ----
if [ -n "${LB_CHECK_PORT:-}" ]; then
  # The switch gets an address on the Galera bridge too, so HAProxy can forward to the nodes.
  ip -n "$(sw_ns)" addr add "$GAL_NET.254/24" dev brc
  {
    cat <<CFG
global
    stats socket $DIR/haproxy.sock mode 600 level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
listen galera
    bind $MGMT_NET.254:3306
    option httpchk GET /check/galera?strict
CFG
    for i in $(seq 1 "$NODES"); do
      echo "    server g$i $GAL_NET.$i:3306 check addr $MGMT_NET.$i port $LB_CHECK_PORT inter 500ms fall 2 rise 2"
    done
  } > "$DIR/haproxy.cfg"
  haproxy -c -q -f "$DIR/haproxy.cfg" >> "$DIR/haproxy.log" 2>&1 || { log_tails "$DIR/haproxy.log"; exit 1; }
  # setsid and ip netns exec both exec: $! is haproxy's pid (-db: no daemon fork).
  setsid ip netns exec "$(sw_ns)" haproxy -db -f "$DIR/haproxy.cfg" >> "$DIR/haproxy.log" 2>&1 < /dev/null &
  echo $! > "$DIR/haproxy.pid"
  lb_answers() { echo "show info" | timeout 5 socat - "UNIX-CONNECT:$DIR/haproxy.sock" | grep -q '^Name: HAProxy'; }
  poll "HAProxy answers on its stats socket" 15 lb_answers || { log_tails "$DIR/haproxy.log"; exit 1; }
fi
echo "READY nodes=$NODES elapsed=$(el)"
