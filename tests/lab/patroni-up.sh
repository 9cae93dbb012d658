#!/usr/bin/env bash
# Start 1 etcd (3.4, Debian etcd-server) + N Patroni (3.0.x, Debian patroni) members over
# PostgreSQL 15, on 127.0.0.1 only. Everything lives under one directory (DIR).
# Part of the project's own test harness (tests/harness/lab/patroni.rs drives it).
#
# Usage:  patroni-up.sh DIR
# Env (all optional; the Rust harness passes explicit free ports):
#   MEMBERS=3
#   PG_PORTS="p1 p2 p3"     PostgreSQL port of each member  (else PG_PORT_BASE+i-1, default 5433)
#   API_PORTS="a1 a2 a3"    Patroni REST port of each member (else API_PORT_BASE+i-1, default 8008)
#   ETCD_CLIENT_PORT=2379 ETCD_PEER_PORT=2380
#   ETCD_METRICS_PORT=      if set: plain-http /health + /metrics listener (useful with ETCD_TLS=1)
#   SCOPE=lab               Patroni scope; namespace is /service/
#   PG_USER=postgres        unix user running Patroni + PostgreSQL (PostgreSQL refuses root)
#   PG_BIN=/usr/lib/postgresql/15/bin
#   TLS=0|1                 1: Patroni REST over https with verify_client: required
#                           (CA, server, client and "wrong CA" material under DIR/tls)
#   ETCD_TLS=0|1            1: etcd client+peer over https with client-cert auth (default 0)
#   TTL=10 LOOP_WAIT=1 RETRY_TIMEOUT=3   Patroni DCS timings (fast failover for tests)
#   WAIT_TIMEOUT=120        seconds to wait for leader + (MEMBERS-1) streaming replicas
#   MONITOR_USER=monitor MONITOR_PASSWORD=monitor   non-superuser role (pg_monitor) created on the leader
#   OWNER_PID=              if set: a watchdog tears everything down when that process dies
#   WATCHDOG_RM_DIR=0|1     1: the watchdog also deletes DIR after teardown
#   VERBOSE=0|1
#
# Idempotent: if etcd and all members are already up, prints "already running" and exits 0.
# Otherwise stops leftovers of an earlier run in DIR (only pids recorded there), wipes the
# cluster files in DIR and starts fresh. Writes DIR/cluster.env (used by patroni-ctl.sh).
# Prints "READY leader=<name> (elected at Ns) replicas=<n> elapsed=<s>" on success.
# Exit codes: 0 ready, 1 failure/timeout, 2 a port is already in use (pick other ports).
set -euo pipefail

DIR=${1:?usage: $0 DIR}
MEMBERS=${MEMBERS:-3}
PG_PORT_BASE=${PG_PORT_BASE:-5433}
API_PORT_BASE=${API_PORT_BASE:-8008}
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-2379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-2380}
ETCD_METRICS_PORT=${ETCD_METRICS_PORT:-}
SCOPE=${SCOPE:-lab}
PG_USER=${PG_USER:-postgres}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
TLS=${TLS:-0}
ETCD_TLS=${ETCD_TLS:-0}
TTL=${TTL:-10}
LOOP_WAIT=${LOOP_WAIT:-1}
RETRY_TIMEOUT=${RETRY_TIMEOUT:-3}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-120}
MONITOR_USER=${MONITOR_USER:-monitor}
MONITOR_PASSWORD=${MONITOR_PASSWORD:-monitor}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# per-member port lists (commas or spaces), falling back to BASE+i-1
port_list PGP "${PG_PORTS:-}" "$PG_PORT_BASE" "$MEMBERS"
port_list APIP "${API_PORTS:-}" "$API_PORT_BASE" "$MEMBERS"

all_alive() {
  alive "$DIR/etcd/etcd.pid" "$DIR/etcd/data" || return 1
  for i in $(seq 1 "$MEMBERS"); do alive "$DIR/pg$i/patroni.pid" "$DIR/pg$i/patroni.yml" || return 1; done
}
if all_alive; then echo "already running in $DIR"; exit 0; fi

# leftovers of an earlier run in the same DIR: stop them (only what our pid files name)
if [ -e "$DIR/etcd" ] || [ -e "$DIR/cluster.env" ] || ls -d "$DIR"/pg[0-9]* >/dev/null 2>&1; then
  "$HERE/patroni-down.sh" "$DIR" >/dev/null 2>&1 || true
fi

# refuse to start if a port is taken by someone else
# shellcheck disable=SC2086
require_free_ports $ETCD_CLIENT_PORT $ETCD_PEER_PORT $ETCD_METRICS_PORT ${PGP[*]} ${APIP[*]}

T0=$(date +%s.%N); log start
rm -rf "${DIR:?}"/etcd "${DIR:?}"/pg[0-9]* "${DIR:?}"/tls "${DIR:?}"/cluster.env "${DIR:?}"/patronictl.yml
# PostgreSQL runs as $PG_USER: every parent of DIR must be traversable by it
# (mktemp -d makes 0700 dirs owned by root -> "could not change directory" errors).
chmod 755 "$DIR"
mkdir -p "$DIR/etcd"
if ! id "$PG_USER" >/dev/null 2>&1; then
  useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER"
fi

# ---------- TLS material (openssl; EC P-256 keys: fast to generate) ----------
T=$DIR/tls
if [ "$TLS" = 1 ] || [ "$ETCD_TLS" = 1 ]; then
  mkdir -p "$T"
  tls_ca "$T" ca lab-ca
  # server cert (also used as the members' client cert: Patroni calls the other members' APIs)
  tls_leaf "$T" server localhost ca serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
  # a client-only cert for tests/the agent
  tls_leaf "$T" client monitor ca clientAuth
  # an unrelated CA and a client cert signed by it (must be rejected)
  tls_ca "$T" wrong-ca wrong-lab-ca
  tls_leaf "$T" wrong-client monitor wrong-ca clientAuth
  tls_leaf "$T" wrong-server localhost wrong-ca serverAuth "IP:127.0.0.1,DNS:localhost"
  rm -f "$T"/*.srl
  chown -R "$PG_USER" "$T"; chmod 600 "$T"/*.key; chmod 644 "$T"/*.crt
fi

SCHEME=http; [ "$TLS" = 1 ] && SCHEME=https
ESCHEME=http; [ "$ETCD_TLS" = 1 ] && ESCHEME=https

# ---------- cluster.env: everything patroni-ctl.sh needs ----------
cat > "$DIR/cluster.env" <<EOF
MEMBERS=$MEMBERS
SCOPE=$SCOPE
SCHEME=$SCHEME
ETCD_SCHEME=$ESCHEME
TLS=$TLS
ETCD_TLS=$ETCD_TLS
TLS_DIR=$T
ETCD_CLIENT_PORT=$ETCD_CLIENT_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
ETCD_METRICS_PORT=$ETCD_METRICS_PORT
PG_PORTS="${PGP[*]}"
API_PORTS="${APIP[*]}"
PG_BIN=$PG_BIN
MONITOR_USER=$MONITOR_USER
MONITOR_PASSWORD=$MONITOR_PASSWORD
EOF

# ---------- watchdog: tear down if the owning process dies (e.g. a killed test run) ----------
start_watchdog "$HERE/patroni-down.sh" "$DIR"

# ---------- etcd ----------
ETCD_URL="$ESCHEME://127.0.0.1:$ETCD_CLIENT_PORT"
ETCD_ARGS=(--name etcd1 --data-dir "$DIR/etcd/data"
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL"
  --listen-peer-urls "$ESCHEME://127.0.0.1:$ETCD_PEER_PORT"
  --initial-advertise-peer-urls "$ESCHEME://127.0.0.1:$ETCD_PEER_PORT"
  --initial-cluster "etcd1=$ESCHEME://127.0.0.1:$ETCD_PEER_PORT"
  --initial-cluster-state new --initial-cluster-token "$SCOPE-etcd"
  --heartbeat-interval 50 --election-timeout 500)  # single member: elects itself fast
[ -n "$ETCD_METRICS_PORT" ] && ETCD_ARGS+=(--listen-metrics-urls "http://127.0.0.1:$ETCD_METRICS_PORT")
if [ "$ETCD_TLS" = 1 ]; then
  # etcd 3.4: once --trusted-ca-file is given, clients MUST present a cert from that CA
  ETCD_ARGS+=(--cert-file "$T/server.crt" --key-file "$T/server.key" --trusted-ca-file "$T/ca.crt" --client-cert-auth
    --peer-cert-file "$T/server.crt" --peer-key-file "$T/server.key" --peer-trusted-ca-file "$T/ca.crt"
    --peer-client-cert-auth)
fi
# start.sh per component so tests can stop/restart single pieces (see patroni-ctl.sh)
{ echo '#!/usr/bin/env bash'
  printf 'setsid etcd'; printf ' %q' "${ETCD_ARGS[@]}"
  printf ' >>%q 2>&1 </dev/null &\necho $! > %q\n' "$DIR/etcd/etcd.log" "$DIR/etcd/etcd.pid"
} > "$DIR/etcd/start.sh"
bash "$DIR/etcd/start.sh"; log etcd started

ECURL=()
[ "$ETCD_TLS" = 1 ] && ECURL=(--cacert "$T/ca.crt" --cert "$T/server.crt" --key "$T/server.key")
etcd_healthy() { curl -fsS -m 2 "${ECURL[@]}" "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'; }
poll_until $(( $(date +%s) + 20 )) 0.1 etcd_healthy || {
  echo "etcd not healthy after 20s (see $DIR/etcd/etcd.log)" >&2; log_tails "$DIR/etcd/etcd.log"; exit 1
}
log etcd healthy

# ---------- Patroni members ----------
for i in $(seq 1 "$MEMBERS"); do
  M=$DIR/pg$i; PGPORT=${PGP[i-1]}; APIPORT=${APIP[i-1]}
  mkdir -p "$M/data" "$M/log"; chmod 700 "$M/data"
  {
    cat <<EOF
scope: $SCOPE
namespace: /service/
name: pg$i

log:
  level: INFO

restapi:
  listen: 127.0.0.1:$APIPORT
  connect_address: 127.0.0.1:$APIPORT
EOF
    if [ "$TLS" = 1 ]; then cat <<EOF
  certfile: $T/server.crt
  keyfile: $T/server.key
  cafile: $T/ca.crt
  verify_client: required
ctl:
  cacert: $T/ca.crt
  certfile: $T/server.crt
  keyfile: $T/server.key
EOF
    fi
    cat <<EOF

etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT_PORT
  protocol: $ESCHEME
EOF
    if [ "$ETCD_TLS" = 1 ]; then cat <<EOF
  cacert: $T/ca.crt
  cert: $T/server.crt
  key: $T/server.key
EOF
    fi
    cat <<EOF

bootstrap:
  dcs:
    ttl: $TTL
    loop_wait: $LOOP_WAIT
    retry_timeout: $RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 32MB
  initdb:
    - no-sync
    - encoding: UTF8
    - locale: C.UTF-8
    - auth-host: scram-sha-256
    - auth-local: trust

postgresql:
  listen: 127.0.0.1:$PGPORT
  connect_address: 127.0.0.1:$PGPORT
  data_dir: $M/data
  bin_dir: $PG_BIN
  pgpass: $M/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: rewinder
      password: rewinder
  basebackup:
    - checkpoint: fast
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
  parameters:
    unix_socket_directories: $M
    max_connections: 50
    shared_buffers: 32MB
    min_wal_size: 32MB
    max_wal_size: 128MB
    fsync: "off"
    synchronous_commit: "off"
    logging_collector: "on"
    log_directory: $M/log
    log_filename: postgresql.log

watchdog:
  mode: "off"

tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
EOF
  } > "$M/patroni.yml"
  chown -R "$PG_USER" "$M"
  # Run the whole member as $PG_USER with setpriv: it exec()s, so $! is Patroni itself
  # (runuser/su would stay as a root parent and a kill of the recorded pid would miss Patroni).
  cat > "$M/start.sh" <<EOS
#!/usr/bin/env bash
setsid setpriv --reuid=$PG_USER --regid=$PG_USER --init-groups env HOME=$M /usr/bin/patroni $M/patroni.yml >>$M/patroni.log 2>&1 </dev/null &
echo \$! > $M/patroni.pid
EOS
  bash "$M/start.sh"
done
# patronictl config (any member's file works: it needs scope + etcd3 (+ ctl))
cp "$DIR/pg1/patroni.yml" "$DIR/patronictl.yml"; log patroni members started

# ---------- wait: 1 leader + (MEMBERS-1) streaming replicas ----------
deadline=$(( $(date +%s) + WAIT_TIMEOUT ))
TL=
leader_and_replicas() {
  res=$("$HERE/patroni-ctl.sh" "$DIR" status 2>/dev/null || true)   # "leader=pgX streaming=N ..."
  leader=$(sed -n 's/.*leader=\([^ ]*\).*/\1/p' <<<"$res"); leader=${leader:--}
  streaming=$(sed -n 's/.*streaming=\([0-9]*\).*/\1/p' <<<"$res"); streaming=${streaming:-0}
  if [ "$leader" != "-" ] && [ -z "$TL" ]; then TL=$(el); log "leader $leader"; fi
  [ "$leader" != "-" ] && [ "$streaming" -ge $((MEMBERS-1)) ]
}
poll_until "$deadline" 0.2 leader_and_replicas || {
  echo "TIMEOUT waiting for leader + $((MEMBERS-1)) streaming replicas (last: ${res:-no answer})" >&2
  log_tails "$DIR"/pg[0-9]*/patroni.log; exit 1
}

# ---------- monitoring role (never let probes use the superuser) ----------
psql_m() { # member-number sql...
  local n=$1; shift
  "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR/pg$n" -p "${PGP[n-1]}" -U postgres -d postgres "$@"
}
L=${leader#pg}
psql_m "$L" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$MONITOR_USER') THEN
    CREATE ROLE "$MONITOR_USER" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$MONITOR_PASSWORD';
  END IF;
END \$\$;
GRANT pg_monitor TO "$MONITOR_USER";
SQL
# ...and wait until every replica has replayed it
for i in $(seq 1 "$MEMBERS"); do
  [ "$i" = "$L" ] && continue
  has_role() { [ "$(psql_m "$1" -c "SELECT count(*) FROM pg_roles WHERE rolname = '$MONITOR_USER'" 2>/dev/null)" = 1 ]; }
  poll_until "$deadline" 0.1 has_role "$i" || { echo "TIMEOUT: role $MONITOR_USER not replicated to pg$i" >&2; exit 1; }
done
log "monitor role ready"
echo "READY leader=$leader (elected at ${TL}) replicas=$streaming elapsed=$(el)"
