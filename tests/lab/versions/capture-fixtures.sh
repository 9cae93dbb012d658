#!/usr/bin/env bash
# Capture probe fixtures from the second version set (Patroni 4.0.7 or 4.1.x, etcd 3.5,
# PostgreSQL 17, RabbitMQ 4.0 with Khepri). Runs INSIDE the trixie rootfs, started through
# in-rootfs.sh, which also picks the Patroni build (PATRONI=4.0|4.1):
#
#   tests/lab/versions/in-rootfs.sh versions/capture-fixtures.sh probes/fixtures
#   PATRONI=4.1 ONLY=patroni tests/lab/versions/in-rootfs.sh versions/capture-fixtures.sh probes/fixtures
#
# Writes OUT/<service>-<version>/ (patroni-4.0.7, etcd-3.5.16, postgresql-17, rabbitmq-4.0.5...)
# with a MANIFEST.tsv in each (file, status, request, note), the same scenarios and file names
# as tests/lab/capture-fixtures.sh plus what the new versions add (etcd /livez and /readyz,
# PostgreSQL down under Patroni, the RabbitMQ 4 health checks, quorum-critical, a cut link with
# Khepri). The clusters are started with the unchanged tests/lab scripts on free loopback ports
# under /tmp (a tmpfs private to this run) and stopped at the end, also on failure.
# Env: ONLY=patroni|rabbitmq  (default both)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$(cd "$HERE/.." && pwd)
OUT=${1:?usage: $0 OUT}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
ONLY=${ONLY:-}
P=$LAB/patroni-ctl.sh
R=$LAB/rabbit-ctl.sh
T0=$(date +%s.%N)
say() { awk -v a="$T0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN{printf "[%6.1fs] %s\n", b-a, m}' >&2; }
free_ports() {
  python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
poll() { # description timeout_s cmd...
  local what=$1 t=$2; shift 2
  local deadline=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "TIMEOUT (${t}s): $what" >&2; return 1; }
    sleep 0.2
  done
}
js() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }   # expression over d

# cap DIRNAME FILE expected-status "request" "note" cmd...   (cmd prints "HTTP <code>" then the body)
cap() {
  local sub=$1 rel=$2 want=$3 req=$4 note=$5; shift 5
  local tmp code; tmp=$(mktemp)
  "$@" > "$tmp" || true
  code=$(head -1 "$tmp" | sed -n 's/^HTTP //p')
  mkdir -p "$OUT/$sub"
  tail -n +2 "$tmp" > "$OUT/$sub/$rel"; rm -f "$tmp"
  [ "$want" = - ] || [ "$code" = "$want" ] || say "WARNING $sub/$rel: HTTP ${code:-?}, expected $want"
  [ -f "$OUT/$sub/MANIFEST.tsv" ] || printf 'file\tstatus\trequest\tnote\n' > "$OUT/$sub/MANIFEST.tsv"
  grep -v "^$rel	" "$OUT/$sub/MANIFEST.tsv" > "$OUT/$sub/MANIFEST.tmp" || true
  printf '%s\t%s\t%s\t%s\n' "$rel" "${code:-?}" "$req" "$note" >> "$OUT/$sub/MANIFEST.tmp"
  { head -1 "$OUT/$sub/MANIFEST.tmp"; tail -n +2 "$OUT/$sub/MANIFEST.tmp" | sort; } > "$OUT/$sub/MANIFEST.tsv"
  rm -f "$OUT/$sub/MANIFEST.tmp"
  say "captured $sub/$rel (HTTP ${code:-?}, $(wc -c < "$OUT/$sub/$rel") bytes)"
}
sql() { # member sql -> "HTTP 200" + psql output (for cap)
  local o; o=$("$P" "$D" psql "$1" "$2" 2>&1) && echo "HTTP 200" || echo "HTTP 500"; echo "$o"
}
http() { # METHOD URL [BODY]
  local o c; o=$(mktemp)
  c=$(curl -sS -m 10 -o "$o" -w '%{http_code}' -X "$1" ${3:+-d "$3"} "$2" 2>/dev/null) || true
  echo "HTTP ${c:-000}"; cat "$o"; rm -f "$o"
}

DIRS=()
cleanup() {
  local d pf pid
  for d in "${DIRS[@]}"; do
    [ -f "$d/cluster.env" ] && grep -q '^MEMBERS=' "$d/cluster.env" && "$LAB/patroni-down.sh" "$d" >/dev/null 2>&1
    [ -f "$d/cluster.env" ] && grep -q '^NODES=' "$d/cluster.env" && "$LAB/rabbit-down.sh" "$d" >/dev/null 2>&1
    for pf in "$d"/etcdq/e*/etcd.pid; do
      [ -f "$pf" ] || continue
      pid=$(cat "$pf")
      if tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$(dirname "$pf")/data"; then kill -TERM "$pid"; fi
    done
  done
}
trap cleanup EXIT
newdir() { NEWDIR=$(mktemp -d "/tmp/sr-lab-v2-$1-XXXXXX"); chmod 755 "$NEWDIR"; DIRS+=("$NEWDIR"); }

# =============================================================================================
capture_patroni() {
  newdir patroni; D=$NEWDIR
  read -r -a PT <<<"$(free_ports 9)"
  say "patroni: starting in $D"
  local TU; TU=$(date +%s.%N)
  PG_PORTS="${PT[0]} ${PT[1]} ${PT[2]}" API_PORTS="${PT[3]} ${PT[4]} ${PT[5]}" \
    ETCD_CLIENT_PORT=${PT[6]} ETCD_PEER_PORT=${PT[7]} ETCD_METRICS_PORT=${PT[8]} OWNER_PID=$$ \
    "$LAB/patroni-up.sh" "$D" >&2
  say "patroni-up.sh done"
  local L; L=$("$P" "$D" leader); L=${L#pg}
  local S=$(( L % 3 + 1 )); local S2=$(( S % 3 + 1 )); [ "$S2" = "$L" ] && S2=$(( S2 % 3 + 1 ))
  local PV EV GV; PV=$("$P" "$D" get "$L" /patroni | tail -n +2 | js 'd["patroni"]["version"]')
  EV=$("$P" "$D" etcd GET /version | tail -n +2 | js 'd["etcdserver"]')
  GV=$("$P" "$D" get "$L" /patroni | tail -n +2 | js 'd["server_version"]//10000')
  local PD=patroni-$PV ED=etcd-$EV GD=postgresql-$GV
  say "Patroni $PV, etcd $EV, PostgreSQL $GV; leader pg$L, replicas pg$S pg$S2"

  "$P" "$D" psql "$L" "CREATE TABLE fixture(x int); INSERT INTO fixture SELECT generate_series(1, 1000)"
  poll "pg$S replayed_timestamp" 30 bash -c "'$P' '$D' get $S /patroni | grep -q '\"replayed_timestamp\": \"'"
  poll "pg$S2 replayed_timestamp" 30 bash -c "'$P' '$D' get $S2 /patroni | grep -q '\"replayed_timestamp\": \"'"
  cap $PD leader-patroni.json 200 "GET /patroni (leader)" "healthy 3-member cluster, 2 streaming replicas" "$P" "$D" get "$L" /patroni
  cap $PD replica-patroni.json 200 "GET /patroni (replica)" "healthy replica after some writes" "$P" "$D" get "$S" /patroni
  cap $PD leader-cluster.json 200 "GET /cluster (leader)" "healthy 3-member cluster" "$P" "$D" get "$L" /cluster
  cap $PD config.json 200 "GET /config" "ttl 10, loop_wait 1, retry_timeout 3 (harness settings)" "$P" "$D" get "$L" /config
  cap $PD replica-readiness.txt 200 "GET /readiness (replica)" "healthy streaming replica" "$P" "$D" get "$S" /readiness
  cap $PD replica-primary.json 503 "GET /primary (replica)" "a replica answers 503 with its /patroni body" "$P" "$D" get "$S" /primary
  if [ "$PATRONI_SET" = main ]; then
    cap $ED health-ok.json 200 "GET /health (etcd client port)" "single-member etcd, healthy" "$P" "$D" etcd GET /health
    cap $ED maintenance-status.json 200 "POST /v3/maintenance/status {}" "single-member etcd, it is the leader" "$P" "$D" etcd POST /v3/maintenance/status '{}'
    cap $ED livez.txt 200 "GET /livez?verbose" "single-member etcd, healthy" "$P" "$D" etcd GET '/livez?verbose'
    cap $ED readyz.txt 200 "GET /readyz?verbose" "single-member etcd, healthy" "$P" "$D" etcd GET '/readyz?verbose'
    cap $ED version.json 200 "GET /version" "" "$P" "$D" etcd GET /version
    cap $ED member-list.json 200 "POST /v3/cluster/member/list {}" "single member" "$P" "$D" etcd POST /v3/cluster/member/list '{}'
    # PostgreSQL 17 itself: what the postgres probe asks, and the new slot columns
    cap $GD primary-probe-queries.txt 200 "psql (leader): the postgres probe's queries" "pg_is_in_recovery, rolsuper; pg_stat_replication with lag bytes" \
      sql "$L" "SELECT pg_is_in_recovery(), COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false); SELECT application_name, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication ORDER BY application_name"
    cap $GD replica-probe-queries.txt 200 "psql (replica): the postgres probe's queries" "receive/replay LSN, paused, wal receiver status" \
      sql "$S" "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, pg_is_wal_replay_paused(), (SELECT status FROM pg_stat_wal_receiver LIMIT 1)"
    cap $GD replication-slots.json 200 "psql (leader): SELECT json_agg(s) FROM pg_replication_slots s" "Patroni's physical slots, one per replica (use_slots: true)" \
      sql "$L" "SELECT json_agg(s) FROM pg_replication_slots s"
    cap $GD stat-checkpointer.json 200 "psql (leader): SELECT row_to_json(c) FROM pg_stat_checkpointer c" "new in 17; pg_stat_bgwriter lost the checkpoint columns" \
      sql "$L" "SELECT row_to_json(c) FROM pg_stat_checkpointer c"
  fi

  # --- WAL replay paused
  "$P" "$D" psql "$S" "SELECT pg_wal_replay_pause()" >/dev/null
  # (once, on a loaded box, Patroni 4.1.5 did not show "paused": true within 20 s: capture
  # anyway and say so in the manifest rather than abort the whole run)
  local pn="after SELECT pg_wal_replay_pause() on it"
  poll "pg$S paused" 20 bash -c "'$P' '$D' get $S /patroni | grep -q '\"paused\": true'" || pn="$pn; /patroni did NOT show paused: true within 20 s"
  cap $PD replica-patroni-paused.json 200 "GET /patroni (replica)" "$pn" "$P" "$D" get "$S" /patroni
  cap $PD replica-pause-state.txt 200 "psql (replica): SELECT pg_get_wal_replay_pause_state()" "same moment" sql "$S" "SELECT pg_get_wal_replay_pause_state()"
  "$P" "$D" psql "$S" "SELECT pg_wal_replay_resume()" >/dev/null
  poll "pg$S resumed" 20 bash -c "'$P' '$D' get $S /patroni | grep -q '\"paused\": false'"

  # --- synchronous_mode: true, then quorum (Patroni 4)
  "$P" "$D" request "$L" PATCH /config '{"synchronous_mode": true}' >/dev/null
  poll "a sync standby" 40 bash -c "'$P' '$D' get $L /patroni | grep -q '\"sync_state\": \"sync\"' && '$P' '$D' get $L /cluster | grep -q sync_standby"
  cap $PD leader-patroni-sync.json 200 "GET /patroni (leader)" "synchronous_mode: true (PATCH /config)" "$P" "$D" get "$L" /patroni
  cap $PD cluster-sync.json 200 "GET /cluster (leader)" "synchronous_mode: true: one member has role sync_standby" "$P" "$D" get "$L" /cluster
  cap $PD config-sync.json 200 "GET /config" "synchronous_mode: true" "$P" "$D" get "$L" /config
  "$P" "$D" request "$L" PATCH /config '{"synchronous_mode": "quorum"}' >/dev/null
  if poll "quorum standbys" 40 bash -c "'$P' '$D' get $L /cluster | grep -q quorum_standby"; then
    cap $PD leader-patroni-quorum.json 200 "GET /patroni (leader)" "synchronous_mode: quorum (PATCH /config)" "$P" "$D" get "$L" /patroni
    cap $PD cluster-quorum.json 200 "GET /cluster (leader)" "synchronous_mode: quorum: members have role quorum_standby" "$P" "$D" get "$L" /cluster
    cap $PD config-quorum.json 200 "GET /config" "synchronous_mode: quorum" "$P" "$D" get "$L" /config
  fi
  "$P" "$D" request "$L" PATCH /config '{"synchronous_mode": false}' >/dev/null
  poll "no sync standby" 40 bash -c "! '$P' '$D' get $L /cluster | grep -qE 'sync_standby|quorum_standby'"

  # --- a replica's Patroni stopped
  "$P" "$D" stop-patroni "$S2"
  cap $PD cluster-member-stopped.json 200 "GET /cluster (leader)" "right after SIGTERM to pg$S2's Patroni (stopped cleanly, with its PostgreSQL)" "$P" "$D" get "$L" /cluster
  "$P" "$D" start-patroni "$S2"
  poll "cluster ready again" 90 bash -c "'$P' '$D' status | grep -q 'streaming=2'"

  # --- PostgreSQL down under a running Patroni: the postgres binary replaced by /bin/false
  # in this run's private mount namespace, then the replica's postmaster killed; Patroni's
  # restarts fail and it keeps reporting.
  local PGB; PGB=$(. "$D/cluster.env"; echo "$PG_BIN")
  mount --bind /bin/false "$PGB/postgres"
  "$P" "$D" kill-postgres "$S"
  poll "pg$S postgres down in /patroni" 60 bash -c "'$P' '$D' get $S /patroni | tail -n +2 | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d[\"state\"] in (\"running\",\"streaming\",\"starting\"))'"
  sleep 3   # let it settle into its steady "down" body (not a synchronisation: the poll above was)
  cap $PD replica-patroni-pg-down.json 200 "GET /patroni (replica)" "pg$S's postmaster SIGKILLed and its restarts failing (postgres binary replaced by /bin/false): PostgreSQL down under a running Patroni" "$P" "$D" get "$S" /patroni
  cap $PD replica-health-pg-down.json 503 "GET /health (replica)" "same moment" "$P" "$D" get "$S" /health
  cap $PD cluster-pg-down.json 200 "GET /cluster (leader)" "same moment" "$P" "$D" get "$L" /cluster
  umount "$PGB/postgres"
  poll "cluster ready after pg restart" 90 bash -c "'$P' '$D' status | grep -q 'streaming=2'"

  # --- etcd stopped
  "$P" "$D" stop-etcd
  poll "pg$L demoted itself" 60 bash -c "'$P' '$D' get $L /patroni | grep -q '\"role\": \"replica\"'"
  cap $PD patroni-etcd-down.json 200 "GET /patroni (former leader)" "etcd stopped; the leader demoted itself, dcs_last_seen frozen" "$P" "$D" get "$L" /patroni
  cap $PD replica-patroni-etcd-down.json 200 "GET /patroni (replica)" "etcd stopped" "$P" "$D" get "$S" /patroni
  "$P" "$D" start-etcd
  poll "cluster ready after etcd restart" 90 bash -c "'$P' '$D' status | grep -q 'streaming=2'"

  # --- failover: SIGKILL the leader's Patroni
  L=$("$P" "$D" leader); L=${L#pg}
  "$P" "$D" kill-patroni "$L"
  local t0; t0=$(date +%s.%N)
  poll "a new leader" 60 bash -c "l=\$('$P' '$D' leader); [ \"\$l\" != - ] && [ \"\$l\" != pg$L ]"
  local NL; NL=$("$P" "$D" leader); NL=${NL#pg}
  say "failover pg$L -> pg$NL in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
  cap $PD cluster-failover-instant.json 200 "GET /cluster (new leader)" "the moment pg$NL holds the leader key after pg$L's Patroni was SIGKILLed" "$P" "$D" get "$NL" /cluster
  poll "failover settled (same timeline everywhere)" 60 bash -c "'$P' '$D' get $NL /cluster | tail -n +2 | python3 -c '
import json, sys
ms = json.load(sys.stdin)[\"members\"]
sys.exit(0 if len(ms) == 2 and len({m.get(\"timeline\") for m in ms}) == 1 and all(m[\"state\"] in (\"running\", \"streaming\") for m in ms) else 1)'"
  cap $PD cluster-after-failover.json 200 "GET /cluster (new leader)" "settled after pg$L's Patroni was SIGKILLed and pg$NL promoted" "$P" "$D" get "$NL" /cluster
  cap $PD leader-cluster-after-failover.json 200 "GET /cluster (new leader)" "same moment (name kept from the 3.0.2 set)" "$P" "$D" get "$NL" /cluster
  cap $PD leader-patroni-after-failover.json 200 "GET /patroni (new leader)" "same moment" "$P" "$D" get "$NL" /patroni

  if [ "$PATRONI_SET" = main ]; then
    # --- etcd quorum lost: a separate 3-member etcd, 2 members stopped
    read -r -a EP <<<"$(free_ports 6)"
    local init="" i
    for i in 1 2 3; do init+="${init:+,}e$i=http://127.0.0.1:${EP[i+2]}"; done
    for i in 1 2 3; do
      local E=$D/etcdq/e$i; mkdir -p "$E"
      setsid etcd --name "e$i" --data-dir "$E/data" \
        --listen-client-urls "http://127.0.0.1:${EP[i-1]}" --advertise-client-urls "http://127.0.0.1:${EP[i-1]}" \
        --listen-peer-urls "http://127.0.0.1:${EP[i+2]}" --initial-advertise-peer-urls "http://127.0.0.1:${EP[i+2]}" \
        --initial-cluster "$init" --initial-cluster-state new --initial-cluster-token fixture-q \
        --heartbeat-interval 50 --election-timeout 500 >>"$E/etcd.log" 2>&1 </dev/null &
      echo $! > "$E/etcd.pid"
    done
    for i in 1 2 3; do poll "etcd e$i healthy" 30 bash -c "curl -fsS -m 2 http://127.0.0.1:${EP[i-1]}/health | grep -q '\"health\":\"true\"'"; done
    cap $ED maintenance-status-follower.json 200 "POST /v3/maintenance/status {} (3-member etcd)" "healthy 3-member etcd, asked on member 1" http POST "http://127.0.0.1:${EP[0]}/v3/maintenance/status" '{}'
    for i in 2 3; do
      local pid; pid=$(cat "$D/etcdq/e$i/etcd.pid"); kill -TERM "$pid"
      poll "etcd e$i stopped" 20 bash -c "! tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -qF '$D/etcdq/e$i/data'"
    done
    poll "e1 unhealthy" 30 bash -c "! curl -fsS -m 5 http://127.0.0.1:${EP[0]}/health"
    cap $ED health-fail.json 503 "GET /health (etcd client port)" "3-member etcd with 2 members stopped: quorum lost" http GET "http://127.0.0.1:${EP[0]}/health"
    cap $ED maintenance-status-no-leader.json 200 "POST /v3/maintenance/status {}" "3-member etcd with 2 members stopped" http POST "http://127.0.0.1:${EP[0]}/v3/maintenance/status" '{}'
    cap $ED livez-no-quorum.txt - "GET /livez?verbose" "3-member etcd with 2 members stopped" http GET "http://127.0.0.1:${EP[0]}/livez?verbose"
    cap $ED readyz-no-quorum.txt - "GET /readyz?verbose" "3-member etcd with 2 members stopped" http GET "http://127.0.0.1:${EP[0]}/readyz?verbose"
    kill -TERM "$(cat "$D/etcdq/e1/etcd.pid")"
  fi
  say "patroni: tearing down"
  "$LAB/patroni-down.sh" "$D" >&2
}

# =============================================================================================
capture_rabbitmq() {
  newdir rabbit; local D=$NEWDIR
  read -r -a PT <<<"$(free_ports 10)"
  say "rabbitmq: starting in $D"
  AMQP_PORTS="${PT[0]} ${PT[1]} ${PT[2]}" MGMT_PORTS="${PT[3]} ${PT[4]} ${PT[5]}" DIST_PORTS="${PT[6]} ${PT[7]} ${PT[8]}" \
    EPMD_PORT=${PT[9]} NODE_PREFIX=rabbit OWNER_PID=$$ "$LAB/rabbit-up.sh" "$D" >&2
  say "rabbit-up.sh done; enabling khepri_db"
  "$R" "$D" ctl 1 enable_feature_flag --opt-in khepri_db >&2
  say "khepri_db enabled"
  local V; V=$("$R" "$D" get 1 /api/overview | tail -n +2 | js 'd["rabbitmq_version"]')
  local RD=rabbitmq-$V
  local COLS="name,running,partitions,mem_alarm,disk_free_alarm,mem_used,mem_limit,disk_free,disk_free_limit,fd_used,fd_total,sockets_used,sockets_total,uptime"
  poll "stats for all nodes" 60 bash -c "[ \$('$R' '$D' get 1 /api/nodes | grep -o '\"mem_used\":' | wc -l) -ge 3 ]"
  cap $RD overview.json 200 "GET /api/overview?columns=node,cluster_name,listeners (node 1)" "what the probe asks" "$R" "$D" get 1 '/api/overview?columns=node,cluster_name,listeners'
  cap $RD overview-full.json 200 "GET /api/overview (node 1)" "" "$R" "$D" get 1 /api/overview
  cap $RD nodes-healthy.json 200 "GET /api/nodes (node 1, user monitor)" "3 nodes running, stats present, Khepri on" "$R" "$D" get 1 /api/nodes
  cap $RD nodes-healthy-columns.json 200 "GET /api/nodes?columns=<the probe's> (node 1)" "what the probe asks" "$R" "$D" get 1 "/api/nodes?columns=$COLS"
  cap $RD local-alarms-ok.json 200 "GET /api/health/checks/local-alarms (node 1)" "no alarms" "$R" "$D" get 1 /api/health/checks/local-alarms
  cap $RD alarms-ok.json 200 "GET /api/health/checks/alarms (node 1)" "no alarms" "$R" "$D" get 1 /api/health/checks/alarms
  cap $RD port-listener-ok.json 200 "GET /api/health/checks/port-listener/${PT[0]} (node 1)" "node 1's own AMQP port" "$R" "$D" get 1 "/api/health/checks/port-listener/${PT[0]}"
  cap $RD virtual-hosts-ok.json 200 "GET /api/health/checks/virtual-hosts (node 1)" "all vhosts running" "$R" "$D" get 1 /api/health/checks/virtual-hosts
  cap $RD protocol-listener-amqp-ok.json 200 "GET /api/health/checks/protocol-listener/amqp (node 1)" "" "$R" "$D" get 1 /api/health/checks/protocol-listener/amqp
  cap $RD node-is-quorum-critical-ok.json 200 "GET /api/health/checks/node-is-quorum-critical (node 1)" "no quorum queue yet" "$R" "$D" get 1 /api/health/checks/node-is-quorum-critical
  cap $RD metadata-store-initialized.json - "GET /api/health/checks/metadata-store/initialized (node 1)" "added in 4.0.6: 4.0.5 does not have it" "$R" "$D" get 1 /api/health/checks/metadata-store/initialized
  cap $RD node-is-mirror-sync-critical.json - "GET /api/health/checks/node-is-mirror-sync-critical (node 1)" "removed in 4.0 with classic mirroring" "$R" "$D" get 1 /api/health/checks/node-is-mirror-sync-critical
  cap $RD healthchecks-node.json - "GET /api/healthchecks/node (node 1)" "deprecated; what Cloudify 5.0.5 calls" "$R" "$D" get 1 /api/healthchecks/node
  cap $RD aliveness-test.json - "GET /api/aliveness-test/%2F (node 1, guest)" "deprecated" "$R" "$D" get 1 /api/aliveness-test/%2F guest:guest
  cap $RD feature-flags.json 200 "GET /api/feature-flags (node 1, guest)" "khepri_db state" "$R" "$D" get 1 /api/feature-flags guest:guest

  # --- a quorum queue on all 3 nodes
  curl -fsS -m 10 -u guest:guest -H 'content-type: application/json' -X PUT \
    "http://127.0.0.1:${PT[3]}/api/queues/%2F/fixture-qq" -d '{"durable":true,"arguments":{"x-queue-type":"quorum"}}' >&2
  poll "quorum queue with 3 members" 60 bash -c "curl -fsS -m 5 -u guest:guest 'http://127.0.0.1:${PT[3]}/api/queues/%2F/fixture-qq' | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(len(d.get(\"members\",[]))!=3 or not d.get(\"leader\"))'"
  cap $RD queue-quorum.json 200 "GET /api/queues/%2F/fixture-qq (node 1, guest)" "quorum queue, 3 members, leader elected" "$R" "$D" get 1 /api/queues/%2F/fixture-qq guest:guest

  # --- memory alarm on node 2
  "$R" "$D" ctl 2 set_vm_memory_high_watermark 0.0001 >/dev/null
  poll "node 2 memory alarm" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 503' ]"
  cap $RD local-alarms-memory.json 503 "GET /api/health/checks/local-alarms (node 2)" "node 2: set_vm_memory_high_watermark 0.0001" "$R" "$D" get 2 /api/health/checks/local-alarms
  poll "mem_alarm true in /api/nodes" 30 bash -c "'$R' '$D' get 1 /api/nodes | grep -q '\"mem_alarm\":true'"
  cap $RD nodes-memory-alarm.json 200 "GET /api/nodes (node 1)" "node 2 in memory alarm" "$R" "$D" get 1 /api/nodes
  cap $RD local-alarms-memory-other-node.json 200 "GET /api/health/checks/local-alarms (node 1)" "node 2 in memory alarm: node 1's local check stays ok" "$R" "$D" get 1 /api/health/checks/local-alarms
  cap $RD alarms-cluster-memory.json 503 "GET /api/health/checks/alarms (node 1)" "node 2 in memory alarm: the cluster-wide check fails on every node" "$R" "$D" get 1 /api/health/checks/alarms
  "$R" "$D" ctl 2 set_vm_memory_high_watermark 0.4 >/dev/null
  poll "node 2 memory alarm cleared" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 200' ]"
  "$R" "$D" ctl 2 set_disk_free_limit 100000GB >/dev/null
  poll "node 2 disk alarm" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 503' ]"
  cap $RD local-alarms-disk.json 503 "GET /api/health/checks/local-alarms (node 2)" "node 2: set_disk_free_limit 100000GB" "$R" "$D" get 2 /api/health/checks/local-alarms
  "$R" "$D" ctl 2 set_disk_free_limit 50MB >/dev/null
  poll "node 2 disk alarm cleared" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 200' ]"
  poll "no alarm flags in /api/nodes" 30 bash -c "! '$R' '$D' get 1 /api/nodes | grep -qE '\"(mem|disk_free)_alarm\":true'"

  # --- node 3 stopped: node 1 and 2 become quorum-critical for the quorum queue
  "$R" "$D" stop-node 3
  cap $RD nodes-one-stopped.json 200 "GET /api/nodes (node 1)" "node 3 stopped (SIGTERM to its beam)" "$R" "$D" get 1 /api/nodes
  poll "node 1 quorum-critical" 30 bash -c "[ \"\$('$R' '$D' get 1 /api/health/checks/node-is-quorum-critical | head -1)\" = 'HTTP 503' ]" || true
  cap $RD node-is-quorum-critical-fail.json 503 "GET /api/health/checks/node-is-quorum-critical (node 1)" "node 3 stopped: a 3-member quorum queue would lose its majority if node 1 stopped too" "$R" "$D" get 1 /api/health/checks/node-is-quorum-critical
  cap $RD virtual-hosts-one-stopped.json - "GET /api/health/checks/virtual-hosts (node 1)" "node 3 stopped" "$R" "$D" get 1 /api/health/checks/virtual-hosts
  "$R" "$D" start-node 3
  poll "node 3 running in node 1's view" 90 bash -c "[ \$('$R' '$D' running 1) = 3 ]"
  cap $RD nodes-just-booted.json 200 "GET /api/nodes (node 1)" "the moment node 3 is running again after a restart" "$R" "$D" get 1 /api/nodes
  "$R" "$D" wait-node 3 >/dev/null

  # --- a quorum queue without its majority: nodes 2 and 3 stopped
  "$R" "$D" stop-node 3; "$R" "$D" stop-node 2
  poll "node 1 sees 1 running" 60 bash -c "[ \$('$R' '$D' running 1) = 1 ]" || true
  cap $RD nodes-two-stopped.json - "GET /api/nodes (node 1)" "nodes 2 and 3 stopped: Khepri has no majority" "$R" "$D" get 1 /api/nodes
  cap $RD queue-quorum-no-majority.json - "GET /api/queues/%2F/fixture-qq (node 1, guest)" "nodes 2 and 3 stopped: the quorum queue has 1 of 3 members" "$R" "$D" get 1 /api/queues/%2F/fixture-qq guest:guest
  cap $RD local-alarms-minority.json - "GET /api/health/checks/local-alarms (node 1)" "nodes 2 and 3 stopped" "$R" "$D" get 1 /api/health/checks/local-alarms
  cap $RD virtual-hosts-minority.json - "GET /api/health/checks/virtual-hosts (node 1)" "nodes 2 and 3 stopped" "$R" "$D" get 1 /api/health/checks/virtual-hosts
  cap $RD overview-minority.json - "GET /api/overview?columns=node,cluster_name,listeners (node 1)" "nodes 2 and 3 stopped" "$R" "$D" get 1 '/api/overview?columns=node,cluster_name,listeners'
  "$R" "$D" start-node 2; "$R" "$D" start-node 3
  "$R" "$D" wait-node 2 120 >/dev/null; "$R" "$D" wait-node 3 120 >/dev/null
  poll "node 1 sees 3 running" 90 bash -c "[ \$('$R' '$D' running 1) = 3 ]"

  # --- a cut link with Khepri on: node 3 cut from nodes 1 and 2 at the Erlang distribution
  # level (net_kernel:allow keeps the link from being re-established; loopback cannot be cut)
  local N1 N2 N3; read -r N1 N2 N3 <<<"$(. "$D/cluster.env"; echo "$NODE_NAMES")"
  "$R" "$D" ctl 1 eval "net_kernel:allow(['$N2']), erlang:disconnect_node('$N3')." >&2
  "$R" "$D" ctl 2 eval "net_kernel:allow(['$N1']), erlang:disconnect_node('$N3')." >&2
  "$R" "$D" ctl 3 eval "net_kernel:allow([]), erlang:disconnect_node('$N1'), erlang:disconnect_node('$N2')." >&2
  poll "node 1 sees node 3 down" 60 bash -c "[ \$('$R' '$D' running 1) = 2 ]" || true
  poll "node 3 sees 1 running" 60 bash -c "[ \$('$R' '$D' running 3) = 1 ]" || true
  sleep 2
  cap $RD nodes-link-cut-majority.json 200 "GET /api/nodes (node 1)" "node 3's distribution links to nodes 1 and 2 cut (Khepri on): node 1's side" "$R" "$D" get 1 /api/nodes
  cap $RD nodes-link-cut-minority.json 200 "GET /api/nodes (node 3)" "same cut: node 3's side" "$R" "$D" get 3 /api/nodes
  cap $RD nodes-link-cut-minority-columns.json - "GET /api/nodes?columns=<the probe's> (node 3)" "same cut: node 3's side" "$R" "$D" get 3 "/api/nodes?columns=$COLS"
  cap $RD local-alarms-link-cut-minority.json - "GET /api/health/checks/local-alarms (node 3)" "same cut" "$R" "$D" get 3 /api/health/checks/local-alarms
  cap $RD virtual-hosts-link-cut-minority.json - "GET /api/health/checks/virtual-hosts (node 3)" "same cut" "$R" "$D" get 3 /api/health/checks/virtual-hosts
  cap $RD node-is-quorum-critical-link-cut.json - "GET /api/health/checks/node-is-quorum-critical (node 1)" "same cut" "$R" "$D" get 1 /api/health/checks/node-is-quorum-critical
  say "rabbitmq: tearing down"
  "$LAB/rabbit-down.sh" "$D" >&2
}

PATRONI_SET=${PATRONI_SET:-main}
case $ONLY in
  "") capture_patroni; capture_rabbitmq ;;
  patroni) capture_patroni ;;
  rabbitmq) capture_rabbitmq ;;
  *) echo "ONLY must be patroni or rabbitmq" >&2; exit 2 ;;
esac
say "done"
