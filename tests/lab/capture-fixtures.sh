#!/usr/bin/env bash
# Re-capture the probe fixtures from REAL services (Patroni 3.0.2 + etcd 3.4 + PostgreSQL 15,
# RabbitMQ 3.10), using this directory's harness scripts on free loopback ports.
#
# Usage:  tests/lab/capture-fixtures.sh [OUT]          (default OUT: <repo>/probes/fixtures)
# Env:    ONLY=patroni|rabbitmq   capture only one part (etcd fixtures belong to "patroni")
#         KEEP=1                  keep the temporary cluster directories (processes are stopped anyway)
# Needs root (PostgreSQL runs as postgres via setpriv). Takes about 2-3 minutes.
#
# Bodies are written byte for byte as the services sent them. The HTTP status of every
# fixture, the request and a note go to OUT/MANIFEST.tsv (file, status, request, note).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"   # free_ports, poll, owns
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:-$REPO/probes/fixtures}
ONLY=${ONLY:-}
P=$HERE/patroni-ctl.sh
R=$HERE/rabbit-ctl.sh
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*" >&2; }
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)

MAN=()   # manifest lines of this run
cap() { # relpath expected-status "request" "note" cmd...   (cmd prints "HTTP <code>" then the body)
  local rel=$1 want=$2 req=$3 note=$4; shift 4
  local tmp code; tmp=$(mktemp)
  "$@" > "$tmp" || true
  code=$(head -1 "$tmp" | sed -n 's/^HTTP //p')
  mkdir -p "$OUT/$(dirname "$rel")"
  tail -n +2 "$tmp" > "$OUT/$rel"; rm -f "$tmp"
  [ "$want" = - ] || [ "$code" = "$want" ] || say "WARNING $rel: HTTP ${code:-?}, expected $want"
  MAN+=("$rel	${code:-?}	$req	$note")
  say "captured $rel (HTTP ${code:-?}, $(wc -c < "$OUT/$rel") bytes)"
}
body() { "$@" | tail -n +2; }          # body only of a ctl "get"
status() { "$@" | head -1 | sed -n 's/^HTTP //p'; }

DIRS=()
cleanup() {
  local d
  for d in "${DIRS[@]}"; do
    [ -d "$d" ] || continue
    [ -f "$d/cluster.env" ] && grep -q '^MEMBERS=' "$d/cluster.env" && "$HERE/patroni-down.sh" "$d" >/dev/null 2>&1
    [ -f "$d/cluster.env" ] && grep -q '^NODES=' "$d/cluster.env" && "$HERE/rabbit-down.sh" "$d" >/dev/null 2>&1
    # the 3-member etcd used for the quorum-loss fixture
    for pf in "$d"/etcdq/e*/etcd.pid; do
      [ -f "$pf" ] || continue
      local pid; pid=$(cat "$pf"); local m; m=$(dirname "$pf")/data
      if owns "$pid" "$m"; then kill -TERM "$pid"; fi
    done
    if [ "${KEEP:-0}" = 1 ]; then say "kept $d"; else rm -rf "$d"; fi
  done
}
trap cleanup EXIT
newdir() { NEWDIR=$(mktemp -d "/tmp/sr-lab-fixtures-$1-XXXXXX"); chmod 755 "$NEWDIR"; DIRS+=("$NEWDIR"); }

# =============================================================================================
capture_patroni() {
  newdir patroni; local D=$NEWDIR
  read -r -a PT <<<"$(free_ports 9)"
  say "patroni: starting in $D"
  PG_PORTS="${PT[0]} ${PT[1]} ${PT[2]}" API_PORTS="${PT[3]} ${PT[4]} ${PT[5]}" \
    ETCD_CLIENT_PORT=${PT[6]} ETCD_PEER_PORT=${PT[7]} ETCD_METRICS_PORT=${PT[8]} OWNER_PID=$$ \
    "$HERE/patroni-up.sh" "$D" >&2
  local L; L=$("$P" "$D" leader); L=${L#pg}
  local S=$(( L % 3 + 1 ))          # a replica
  local S2=$(( S % 3 + 1 )); [ "$S2" = "$L" ] && S2=$(( S2 % 3 + 1 ))   # the other replica
  say "leader pg$L, replicas pg$S pg$S2"

  # some writes, so the replicas have a replayed_timestamp
  "$P" "$D" psql "$L" "CREATE TABLE fixture(x int); INSERT INTO fixture SELECT generate_series(1, 1000)"
  poll "replica pg$S replayed_timestamp" 30 bash -c "'$P' '$D' get $S /patroni | grep -q '\"replayed_timestamp\": \"'"
  poll "replica pg$S2 replayed_timestamp" 30 bash -c "'$P' '$D' get $S2 /patroni | grep -q '\"replayed_timestamp\": \"'"

  cap patroni/leader-patroni.json 200 "GET /patroni (leader)" "healthy 3-member cluster, 2 streaming replicas" "$P" "$D" get "$L" /patroni
  cap patroni/replica-patroni.json 200 "GET /patroni (replica)" "healthy replica after some writes" "$P" "$D" get "$S" /patroni
  cap patroni/leader-cluster.json 200 "GET /cluster (leader)" "healthy 3-member cluster" "$P" "$D" get "$L" /cluster
  cap patroni/config.json 200 "GET /config" "ttl 10, loop_wait 1, retry_timeout 3 (harness settings)" "$P" "$D" get "$L" /config
  cap etcd/health-ok.json 200 "GET /health (etcd client port)" "single-member etcd, healthy" "$P" "$D" etcd GET /health
  cap etcd/maintenance-status.json 200 "POST /v3/maintenance/status {}" "single-member etcd, it is the leader" "$P" "$D" etcd POST /v3/maintenance/status '{}'

  # --- WAL replay paused on a replica (superuser over the unix socket)
  "$P" "$D" psql "$S" "SELECT pg_wal_replay_pause()" >/dev/null
  poll "pg$S paused" 20 bash -c "'$P' '$D' get $S /patroni | grep -q '\"paused\": true'"
  cap patroni/replica-patroni-paused.json 200 "GET /patroni (replica)" "after SELECT pg_wal_replay_pause() on it" "$P" "$D" get "$S" /patroni
  "$P" "$D" psql "$S" "SELECT pg_wal_replay_resume()" >/dev/null
  poll "pg$S resumed" 20 bash -c "'$P' '$D' get $S /patroni | grep -q '\"paused\": false'"

  # --- synchronous_mode
  "$P" "$D" request "$L" PATCH /config '{"synchronous_mode": true}' >/dev/null
  poll "a sync standby" 40 bash -c "'$P' '$D' get $L /patroni | grep -q '\"sync_state\": \"sync\"' && '$P' '$D' get $L /cluster | grep -q sync_standby"
  cap patroni/leader-patroni-sync.json 200 "GET /patroni (leader)" "synchronous_mode: true (PATCH /config)" "$P" "$D" get "$L" /patroni
  cap patroni/cluster-sync.json 200 "GET /cluster (leader)" "synchronous_mode: true: one member has role sync_standby" "$P" "$D" get "$L" /cluster
  "$P" "$D" request "$L" PATCH /config '{"synchronous_mode": false}' >/dev/null
  poll "no sync standby" 40 bash -c "! '$P' '$D' get $L /cluster | grep -q sync_standby"

  # --- a replica's Patroni stopped (SIGTERM: it stops its PostgreSQL too)
  "$P" "$D" stop-patroni "$S2"
  cap patroni/cluster-member-stopped.json 200 "GET /cluster (leader)" "right after SIGTERM to pg$S2's Patroni (stopped cleanly, with its PostgreSQL)" "$P" "$D" get "$L" /cluster
  "$P" "$D" start-patroni "$S2"
  poll "cluster ready again" 90 bash -c "'$P' '$D' status | grep -q 'streaming=2'"

  # --- etcd stopped
  "$P" "$D" stop-etcd
  poll "pg$L demoted itself" 60 bash -c "'$P' '$D' get $L /patroni | grep -q '\"role\": \"replica\"'"
  cap patroni/patroni-etcd-down.json 200 "GET /patroni (former leader)" "etcd stopped; the leader demoted itself after ~retry_timeout, dcs_last_seen frozen" "$P" "$D" get "$L" /patroni
  cap patroni/replica-patroni-etcd-down.json 200 "GET /patroni (replica)" "etcd stopped" "$P" "$D" get "$S" /patroni
  "$P" "$D" start-etcd
  poll "cluster ready after etcd restart" 90 bash -c "'$P' '$D' status | grep -q 'streaming=2'"

  # --- failover: SIGKILL the leader's Patroni
  L=$("$P" "$D" leader); L=${L#pg}
  "$P" "$D" kill-patroni "$L"
  local t0; t0=$(date +%s)
  poll "a new leader" 60 bash -c "l=\$('$P' '$D' leader); [ \"\$l\" != - ] && [ \"\$l\" != pg$L ]"
  local NL; NL=$("$P" "$D" leader); NL=${NL#pg}
  say "failover pg$L -> pg$NL in $(( $(date +%s) - t0 ))s"
  cap patroni/cluster-failover-instant.json 200 "GET /cluster (new leader)" "the moment pg$NL holds the leader key after pg$L's Patroni was SIGKILLed: pg$L's member key expired with the TTL, the new leader is on a new timeline, the replica's timeline in the DCS is still the old one" "$P" "$D" get "$NL" /cluster
  # settled: the remaining replica follows the new timeline
  poll "failover settled (same timeline everywhere)" 60 bash -c "'$P' '$D' get $NL /cluster | tail -n +2 | /usr/bin/python3 -c '
import json, sys
ms = json.load(sys.stdin)[\"members\"]
sys.exit(0 if len(ms) == 2 and len({m.get(\"timeline\") for m in ms}) == 1 and all(m[\"state\"] == \"running\" for m in ms) else 1)'"
  cap patroni/cluster-after-failover.json 200 "GET /cluster (new leader)" "settled after pg$L's Patroni was SIGKILLed and pg$NL promoted: 2 members on one timeline, pg$L gone from the DCS (its orphaned postgres still runs as a primary)" "$P" "$D" get "$NL" /cluster

  # --- etcd quorum lost: a separate 3-member etcd, 2 members stopped
  say "etcd: 3-member cluster for the quorum-loss fixture"
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
  for i in 2 3; do
    local pid; pid=$(cat "$D/etcdq/e$i/etcd.pid"); kill -TERM "$pid"
    poll "etcd e$i stopped" 20 bash -c "! tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -qF '$D/etcdq/e$i/data'"
  done
  poll "e1 unhealthy" 30 bash -c "! curl -fsS -m 5 http://127.0.0.1:${EP[0]}/health"
  local ecurl=(bash -c 'o=$(mktemp); c=$(curl -sS -m 10 -o "$o" -w "%{http_code}" -X "$1" ${3:+-d "$3"} "$2" 2>/dev/null); echo "HTTP ${c:-000}"; cat "$o"; rm -f "$o"' ecurl)
  cap etcd/health-fail.json 503 "GET /health (etcd client port)" "3-member etcd with 2 members stopped: quorum lost" "${ecurl[@]}" GET "http://127.0.0.1:${EP[0]}/health"
  cap etcd/maintenance-status-no-leader.json 200 "POST /v3/maintenance/status {}" "3-member etcd with 2 members stopped: answered locally, no leader field, errors[]?" "${ecurl[@]}" POST "http://127.0.0.1:${EP[0]}/v3/maintenance/status" '{}'
  kill -TERM "$(cat "$D/etcdq/e1/etcd.pid")"
  say "patroni: tearing down"
  "$HERE/patroni-down.sh" "$D" >&2
}

# =============================================================================================
capture_rabbitmq() {
  newdir rabbit; local D=$NEWDIR
  read -r -a PT <<<"$(free_ports 10)"
  say "rabbitmq: starting in $D"
  AMQP_PORTS="${PT[0]} ${PT[1]} ${PT[2]}" MGMT_PORTS="${PT[3]} ${PT[4]} ${PT[5]}" DIST_PORTS="${PT[6]} ${PT[7]} ${PT[8]}" \
    EPMD_PORT=${PT[9]} NODE_PREFIX=rabbit OWNER_PID=$$ "$HERE/rabbit-up.sh" "$D" >&2
  # (NODE_PREFIX=rabbit: stable node names rabbitN@localhost in the fixtures; safe because the
  # cluster has its own epmd port)
  # the first stats arrive some seconds after boot: wait until every node entry has mem_used
  poll "stats for all nodes" 60 bash -c "[ \$('$R' '$D' get 1 /api/nodes | grep -o '\"mem_used\":' | wc -l) -ge 3 ]"
  cap rabbitmq/nodes-healthy.json 200 "GET /api/nodes (node 1, user monitor)" "3 nodes running, stats present" "$R" "$D" get 1 /api/nodes
  cap rabbitmq/local-alarms-ok.json 200 "GET /api/health/checks/local-alarms (node 1)" "no alarms" "$R" "$D" get 1 /api/health/checks/local-alarms
  cap rabbitmq/port-listener-ok.json 200 "GET /api/health/checks/port-listener/${PT[0]} (node 1)" "node 1's own AMQP port" "$R" "$D" get 1 "/api/health/checks/port-listener/${PT[0]}"
  cap rabbitmq/virtual-hosts-ok.json 200 "GET /api/health/checks/virtual-hosts (node 1)" "all vhosts running" "$R" "$D" get 1 /api/health/checks/virtual-hosts

  # --- memory alarm on node 2
  "$R" "$D" ctl 2 set_vm_memory_high_watermark 0.0001 >/dev/null
  poll "node 2 memory alarm" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 503' ]"
  cap rabbitmq/local-alarms-memory.json 503 "GET /api/health/checks/local-alarms (node 2)" "node 2: set_vm_memory_high_watermark 0.0001" "$R" "$D" get 2 /api/health/checks/local-alarms
  poll "mem_alarm true in /api/nodes" 30 bash -c "'$R' '$D' get 1 /api/nodes | grep -q '\"mem_alarm\":true'"
  cap rabbitmq/nodes-memory-alarm.json 200 "GET /api/nodes (node 1)" "node 2 in memory alarm (mem_alarm true in its entry)" "$R" "$D" get 1 /api/nodes
  cap rabbitmq/local-alarms-memory-other-node.json 200 "GET /api/health/checks/local-alarms (node 1)" "node 2 in memory alarm: node 1's local check stays ok" "$R" "$D" get 1 /api/health/checks/local-alarms
  cap rabbitmq/alarms-cluster-memory.json 503 "GET /api/health/checks/alarms (node 1)" "node 2 in memory alarm: the cluster-wide check fails on every node" "$R" "$D" get 1 /api/health/checks/alarms
  "$R" "$D" ctl 2 set_vm_memory_high_watermark 0.4 >/dev/null
  poll "node 2 memory alarm cleared" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 200' ]"

  # --- disk alarm on node 2
  "$R" "$D" ctl 2 set_disk_free_limit 100000GB >/dev/null
  poll "node 2 disk alarm" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 503' ]"
  cap rabbitmq/local-alarms-disk.json 503 "GET /api/health/checks/local-alarms (node 2)" "node 2: set_disk_free_limit 100000GB" "$R" "$D" get 2 /api/health/checks/local-alarms
  "$R" "$D" ctl 2 set_disk_free_limit 50MB >/dev/null
  poll "node 2 disk alarm cleared" 30 bash -c "[ \"\$('$R' '$D' get 2 /api/health/checks/local-alarms | head -1)\" = 'HTTP 200' ]"
  poll "no alarm flags in /api/nodes" 30 bash -c "! '$R' '$D' get 1 /api/nodes | grep -qE '\"(mem|disk_free)_alarm\":true'"

  # --- node 3 stopped, then restarted
  "$R" "$D" stop-node 3
  cap rabbitmq/nodes-one-stopped.json 200 "GET /api/nodes (node 1)" "node 3 stopped (SIGTERM to its beam)" "$R" "$D" get 1 /api/nodes
  "$R" "$D" start-node 3
  poll "node 3 running in node 1's view" 90 bash -c "[ \$('$R' '$D' running 1) = 3 ]"
  cap rabbitmq/nodes-just-booted.json 200 "GET /api/nodes (node 1)" "the moment node 3 is running again after a restart: its entry has no stats yet" "$R" "$D" get 1 /api/nodes
  "$R" "$D" wait-node 3 >/dev/null
  say "rabbitmq: tearing down"
  "$HERE/rabbit-down.sh" "$D" >&2
}

case $ONLY in
  "") capture_patroni; capture_rabbitmq ;;
  patroni|etcd) capture_patroni ;;
  rabbitmq) capture_rabbitmq ;;
  *) echo "ONLY must be patroni or rabbitmq" >&2; exit 2 ;;
esac

# MANIFEST.tsv: keep the other parts' lines on a partial run
M=$OUT/MANIFEST.tsv
{
  printf 'file\tstatus\trequest\tnote\n'
  if [ -f "$M" ] && [ -n "$ONLY" ]; then
    keep='^(rabbitmq)/'; [ "$ONLY" = rabbitmq ] && keep='^(patroni|etcd)/'
    tail -n +2 "$M" | grep -E "$keep" || true
  fi
  printf '%s\n' "${MAN[@]}"
} > "$M.tmp"
{ head -1 "$M.tmp"; tail -n +2 "$M.tmp" | sort; } > "$M"; rm -f "$M.tmp"
say "done: $(( ${#MAN[@]} )) fixtures in $OUT (see MANIFEST.tsv)"
