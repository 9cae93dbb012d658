#!/usr/bin/env bash
# Start an N-node RabbitMQ 3.10 cluster (Debian rabbitmq-server) with the management plugin on
# 127.0.0.1 only. Every node is isolated under DIR (own mnesia, logs, config, cookie) and the
# nodes use a private epmd port, so nothing touches a system RabbitMQ (5672/15672/25672/4369).
# Part of the project's own test harness (tests/harness/lab/rabbitmq.rs drives it).
#
# Usage:  rabbit-up.sh DIR
# Env (all optional; the Rust harness passes explicit free ports):
#   NODES=3
#   AMQP_PORTS="a1 a2 a3"   AMQP port of each node       (else AMQP_PORT_BASE+i-1, default 5673)
#   MGMT_PORTS="m1 m2 m3"   management HTTP port          (else MGMT_PORT_BASE+i-1, default 15673)
#   DIST_PORTS="d1 d2 d3"   Erlang distribution port      (else DIST_PORT_BASE+i-1, default 25673)
#   EPMD_PORT=4370          private epmd (the system one uses 4369)
#   NODE_PREFIX=            node i is ${NODE_PREFIX}${i}@localhost; default "lab<cksum of DIR>_r",
#                           so two harness directories never share node names
#   MONITOR_USER=monitor MONITOR_PASSWORD=monitor   user tagged "monitoring", read-only on vhost /
#   WAIT_TIMEOUT=150
#   OWNER_PID=              if set: a watchdog tears everything down when that process dies
#   WATCHDOG_RM_DIR=0|1     1: the watchdog also deletes DIR after teardown
#   VERBOSE=0|1
# Idempotent: if all nodes are up it does nothing; otherwise it stops leftovers of an earlier
# run in DIR (only pids recorded there), wipes the node dirs and starts fresh.
# Writes DIR/cluster.env (used by rabbit-ctl.sh).
# Prints "READY nodes=<n> booted=<s> elapsed=<s>" once every node sees all N nodes running.
# Exit codes: 0 ready, 1 failure/timeout, 2 a port is already in use (pick other ports).
set -euo pipefail
DIR=${1:?usage: $0 DIR}
NODES=${NODES:-3}
AMQP_PORT_BASE=${AMQP_PORT_BASE:-5673}
MGMT_PORT_BASE=${MGMT_PORT_BASE:-15673}
DIST_PORT_BASE=${DIST_PORT_BASE:-25673}
EPMD_PORT=${EPMD_PORT:-4370}
MONITOR_USER=${MONITOR_USER:-monitor}
MONITOR_PASSWORD=${MONITOR_PASSWORD:-monitor}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-150}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
RMQ=/usr/lib/rabbitmq/bin   # NOT /usr/sbin/*: those wrappers 'su rabbitmq' when run as root

mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
NODE_PREFIX=${NODE_PREFIX:-lab$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)_r}
port_list AP "${AMQP_PORTS:-}" "$AMQP_PORT_BASE" "$NODES"
port_list MP "${MGMT_PORTS:-}" "$MGMT_PORT_BASE" "$NODES"
port_list DP "${DIST_PORTS:-}" "$DIST_PORT_BASE" "$NODES"

all_alive() {
  for i in $(seq 1 "$NODES"); do alive "$DIR/rabbit$i/beam.pid" "-rabbitlab_node $DIR/rabbit$i " || return 1; done
}
if all_alive; then echo "already running in $DIR"; exit 0; fi
if ls -d "$DIR"/rabbit[0-9]* "$DIR"/epmd.pid "$DIR"/cluster.env >/dev/null 2>&1; then
  "$HERE/rabbit-down.sh" "$DIR" >/dev/null 2>&1 || true
fi

# shellcheck disable=SC2086
require_free_ports $EPMD_PORT ${AP[*]} ${MP[*]} ${DP[*]}

T0=$(date +%s.%N); log start
rm -rf "${DIR:?}"/rabbit[0-9]* "${DIR:?}"/home "${DIR:?}"/cluster.env
mkdir -p "$DIR/home"
# one shared cookie (clustering needs the same one everywhere); HOME=$DIR/home for nodes + CLI
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/home/.erlang.cookie"
chmod 400 "$DIR/home/.erlang.cookie"

NAMES=(); for i in $(seq 1 "$NODES"); do NAMES+=("${NODE_PREFIX}${i}@localhost"); done
cat > "$DIR/cluster.env" <<EOF
NODES=$NODES
NODE_NAMES="${NAMES[*]}"
AMQP_PORTS="${AP[*]}"
MGMT_PORTS="${MP[*]}"
DIST_PORTS="${DP[*]}"
EPMD_PORT=$EPMD_PORT
MONITOR_USER=$MONITOR_USER
MONITOR_PASSWORD=$MONITOR_PASSWORD
EOF

# environment shared by server and CLI for node $1
node_env() {
  local i=$1 N=$DIR/rabbit$1
  echo "export HOME=$DIR/home ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1"
  echo "export RABBITMQ_NODENAME=${NAMES[i-1]}"
  echo "export RABBITMQ_CONF_ENV_FILE=$N/rabbitmq-env.conf"   # ignore /etc/rabbitmq/rabbitmq-env.conf
  echo "export RABBITMQ_CONFIG_FILE=$N/rabbitmq.conf RABBITMQ_ADVANCED_CONFIG_FILE=$N/advanced.config"
  echo "export RABBITMQ_ENABLED_PLUGINS_FILE=$N/enabled_plugins"
  echo "export RABBITMQ_MNESIA_BASE=$N/mnesia RABBITMQ_LOG_BASE=$N/log RABBITMQ_PID_FILE=$N/beam.pid"
  echo "export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=${AP[i-1]}"
  echo "export RABBITMQ_DIST_PORT=${DP[i-1]}"
  # - bind the distribution port to loopback too (default is 0.0.0.0)
  # - -rabbitlab_node is an inert marker: beam's command line names neither the node nor its
  #   mnesia dir (3.10 passes them via env), so the scripts find "their" beam by this marker
  echo "export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1} -rabbitlab_node $N'"
  # CLI (rabbitmqctl & co.): by default it listens on a fixed range 35672-35682 (shared by every
  # harness on the box); let the OS pick a free port instead, on loopback only
  echo "export RABBITMQ_CTL_DIST_PORT_MIN=0 RABBITMQ_CTL_DIST_PORT_MAX=0"
  echo "export RABBITMQ_CTL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'"
  echo "export ERL_CRASH_DUMP=$N/erl_crash.dump"
}

# ---------- watchdog: tear down if the owning process dies (e.g. a killed test run) ----------
start_watchdog "$HERE/rabbit-down.sh" "$DIR"

# private epmd, loopback only, started by us so we know its pid; argv[0] carries DIR so that
# rabbit-down.sh can recognise it in /proc/PID/cmdline ("epmd[DIR] -port N ...")
# shellcheck disable=SC2016
setsid bash -c 'exec -a "epmd[$0]" epmd -port "$1" -address 127.0.0.1' "$DIR" "$EPMD_PORT" >"$DIR/epmd.log" 2>&1 </dev/null &
echo $! > "$DIR/epmd.pid"

for i in $(seq 1 "$NODES"); do
  N=$DIR/rabbit$i; mkdir -p "$N/mnesia" "$N/log"; : > "$N/rabbitmq-env.conf"
  cat > "$N/rabbitmq.conf" <<EOF
# listeners.tcp.default = PORT would bind all interfaces (ignores NODE_IP_ADDRESS)
listeners.tcp.1 = 127.0.0.1:${AP[i-1]}
management.tcp.ip = 127.0.0.1
management.tcp.port = ${MP[i-1]}
# guest/guest is only accepted from loopback (the default); keep it so
loopback_users.guest = true
log.file.level = info
log.console = false
cluster_formation.peer_discovery_backend = classic_config
EOF
  for j in $(seq 1 "$NODES"); do echo "cluster_formation.classic_config.nodes.$j = ${NAMES[j-1]}"; done >> "$N/rabbitmq.conf"
  echo '[rabbitmq_management].' > "$N/enabled_plugins"
  node_env "$i" > "$N/env.sh"
  cat > "$N/start.sh" <<EOF
#!/usr/bin/env bash
. $N/env.sh
cd $N
setsid $RMQ/rabbitmq-server >>$N/stdout.log 2>&1 </dev/null &
echo \$! > $N/wrapper.pid
EOF
  cat > "$N/ctl.sh" <<EOF
#!/usr/bin/env bash
# rabbitmqctl / rabbitmq-diagnostics for this node: ctl.sh [rabbitmqctl|rabbitmq-diagnostics|...] ARGS
. $N/env.sh
case "\${1:-}" in rabbitmq-*|rabbitmqctl) t=\$1; shift;; *) t=rabbitmqctl;; esac
exec $RMQ/\$t -n \$RABBITMQ_NODENAME "\$@"
EOF
  chmod +x "$N/start.sh" "$N/ctl.sh"
  bash "$N/start.sh"
done
log "nodes started"

deadline=$(( $(date +%s) + WAIT_TIMEOUT ))
wait_until() { # what cmd...   (the whole start shares one deadline)
  local what=$1; shift
  poll_until "$deadline" 0.25 "$@" && return 0
  echo "TIMEOUT after ${WAIT_TIMEOUT}s: $what (logs: $DIR/rabbit*/log)" >&2
  log_tails "$DIR"/rabbit*/log/*.log
  exit 1
}
mgmt_ok() { curl -fsS -m 2 -u guest:guest "http://127.0.0.1:$1/api/overview" >/dev/null 2>&1; }
for i in $(seq 1 "$NODES"); do wait_until "node $i management API" mgmt_ok "${MP[i-1]}"; done
log "all nodes booted (management API answers)"
TB=$(el)

all_running() {
  local i n
  for i in $(seq 1 "$NODES"); do
    n=$(curl -fsS -m 2 -u guest:guest "http://127.0.0.1:${MP[i-1]}/api/nodes?columns=name,running" 2>/dev/null \
        | grep -o '"running":true' | wc -l) || return 1
    [ "${n:-0}" -ge "$NODES" ] || return 1
  done
}
wait_until "all $NODES nodes running in every node's /api/nodes" all_running

# monitoring user (cluster-wide: users live in mnesia), through the management API
api() { curl -fsS -m 5 -u guest:guest -H 'content-type: application/json' -X "$1" "http://127.0.0.1:${MP[0]}$2" -d "$3"; }
api PUT "/api/users/$MONITOR_USER" "{\"password\":\"$MONITOR_PASSWORD\",\"tags\":\"monitoring\"}"
api PUT "/api/permissions/%2F/$MONITOR_USER" '{"configure":"","write":"","read":".*"}'
for i in $(seq 1 "$NODES"); do
  wait_until "user $MONITOR_USER on node $i" curl -fsS -m 2 -o /dev/null -u "$MONITOR_USER:$MONITOR_PASSWORD" "http://127.0.0.1:${MP[i-1]}/api/whoami"
done
echo "READY nodes=$NODES booted=$TB elapsed=$(el) names=${NAMES[*]}"
