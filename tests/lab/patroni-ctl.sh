#!/usr/bin/env bash
# Fault injection / single-component control / queries for a cluster made by patroni-up.sh
# (reads DIR/cluster.env for ports and TLS). Members are numbered 1..MEMBERS (pg1..pgN).
# Usage: patroni-ctl.sh DIR ACTION [ARGS]
#   kill-patroni N    SIGKILL member N's Patroni (its postgres keeps running: orphan primary!)
#   stop-patroni N    SIGTERM member N's Patroni (it stops its postgres, releases the leader key)
#   start-patroni N   (re)start member N's Patroni (rejoins; pg_rewind if it was the old primary)
#   kill-postgres N   SIGKILL member N's postmaster (Patroni does crash recovery and restarts it)
#   freeze-patroni N  SIGSTOP member N's Patroni (hung: its process and connections stay)
#   thaw-patroni N    SIGCONT member N's Patroni
#   stop-etcd | start-etcd (start waits until /health is true, 20 s max)
#   leader            print the leader's member name from the DCS view (/cluster), or "-"
#   status            print "leader=<name|-> streaming=<n> members=<a,b,..> running=<a,b,..>"
#   get N PATH        GET PATH on member N's REST API (client cert when TLS); prints
#                     "HTTP <code>" on the first line, then the body ("HTTP 000" = no answer)
#   request N METHOD PATH [BODY]   same, any method, JSON body (e.g. PATCH /config)
#   etcd METHOD PATH [BODY]        request to etcd's client URL, same output format
#   psql N SQL        run SQL as superuser over member N's unix socket (prints -At output)
#   patronictl ARGS   patronictl -c DIR/patronictl.yml ARGS (wrapped in timeout 20)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DIR=$(cd "${1:?usage: $0 DIR ACTION [ARGS]}" && pwd); A=${2:?action}; shift 2
[ -f "$DIR/cluster.env" ] || { echo "no $DIR/cluster.env (run patroni-up.sh first)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$DIR/cluster.env"
read -r -a PGP <<<"$PG_PORTS"; read -r -a APIP <<<"$API_PORTS"
pidof_file() { cat "$1" 2>/dev/null || echo 0; }
member() { [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$MEMBERS" ] || { echo "bad member number '${1:-}'" >&2; exit 2; }; }
CURL=(curl -sS -m "${HTTP_TIMEOUT:-5}")
[ "$TLS" = 1 ] && CURL+=(--cacert "$TLS_DIR/ca.crt" --cert "$TLS_DIR/client.crt" --key "$TLS_DIR/client.key")
ECURL=(curl -sS -m "${HTTP_TIMEOUT:-5}")
[ "$ETCD_TLS" = 1 ] && ECURL+=(--cacert "$TLS_DIR/ca.crt" --cert "$TLS_DIR/client.crt" --key "$TLS_DIR/client.key")

case $A in
  kill-patroni) N=${1:-}; member "$N"; P=$(pidof_file "$DIR/pg$N/patroni.pid")
                if owns "$P" "$DIR/pg$N/patroni.yml"; then kill -KILL "$P"; wait_gone "$P" "$DIR/pg$N/patroni.yml" 10; fi ;;
  stop-patroni) N=${1:-}; member "$N"; P=$(pidof_file "$DIR/pg$N/patroni.pid")
                if owns "$P" "$DIR/pg$N/patroni.yml"; then kill -TERM "$P"; wait_gone "$P" "$DIR/pg$N/patroni.yml" 60; fi ;;
  start-patroni) N=${1:-}; member "$N"
                 owns "$(pidof_file "$DIR/pg$N/patroni.pid")" "$DIR/pg$N/patroni.yml" || bash "$DIR/pg$N/start.sh" ;;
  freeze-patroni|thaw-patroni) N=${1:-}; member "$N"; P=$(pidof_file "$DIR/pg$N/patroni.pid")
                owns "$P" "$DIR/pg$N/patroni.yml" || { echo "member $N's Patroni is not running" >&2; exit 1; }
                if [ "$A" = freeze-patroni ]; then kill -STOP "$P"; else kill -CONT "$P"; fi ;;
  kill-postgres) N=${1:-}; member "$N"; P=$(head -1 "$DIR/pg$N/data/postmaster.pid" 2>/dev/null || echo 0)
                 if owns "$P" "$DIR/pg$N/data"; then kill -KILL "$P"; wait_gone "$P" "$DIR/pg$N/data" 10; fi ;;
  stop-etcd) P=$(pidof_file "$DIR/etcd/etcd.pid")
             if owns "$P" "$DIR/etcd/data"; then kill -TERM "$P"; wait_gone "$P" "$DIR/etcd/data" 20; fi ;;
  start-etcd) if ! owns "$(pidof_file "$DIR/etcd/etcd.pid")" "$DIR/etcd/data"; then bash "$DIR/etcd/start.sh"; fi
              etcd_healthy() { "${ECURL[@]}" "$ETCD_SCHEME://127.0.0.1:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }
              poll_until $(( $(date +%s) + 20 )) 0.1 etcd_healthy || { echo "etcd not healthy after 20 s" >&2; exit 1; } ;;
  leader|status)
    # /cluster (DCS view) from the first member that answers; Patroni 3.0.2 shows replicas as
    # "running" (not "streaming"), so count the leader's pg_stat_replication rows whose
    # application_name is a running replica (pg_basebackup's stream is "streaming" too!)
    /usr/bin/python3 - "$A" "$SCHEME" "$API_PORTS" "$TLS_DIR" "${HTTP_TIMEOUT:-2}" <<'PY'
import json, ssl, sys, urllib.request, urllib.error
action, scheme, ports, tdir, tmo = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4], float(sys.argv[5])
ctx = None
if scheme == "https":
    ctx = ssl.create_default_context(cafile=tdir + "/ca.crt")
    ctx.load_cert_chain(tdir + "/client.crt", tdir + "/client.key")
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=tmo, context=ctx) as r: return json.load(r)
    except urllib.error.HTTPError as e: return json.load(e)
c = None
for p in ports:
    try: c = get("%s://127.0.0.1:%s/cluster" % (scheme, p)); break
    except Exception: pass
ms = (c or {}).get("members", [])
lead = [m for m in ms if m.get("role") == "leader" and m.get("state") == "running"]
name = lead[0]["name"] if lead else "-"
if action == "leader": print(name); sys.exit(0)
running = {m["name"] for m in ms if m.get("role") in ("replica", "sync_standby") and m.get("state") in ("running", "streaming")}
streaming = 0
if lead:
    try:
        p = get(lead[0]["api_url"])
        streaming = sum(1 for r in p.get("replication", [])
                        if r.get("state") == "streaming" and r.get("application_name") in running)
    except Exception: pass
print("leader=%s streaming=%d members=%s running=%s" % (name, streaming,
      ",".join(m["name"] for m in ms) or "-", ",".join(sorted(running)) or "-"))
PY
    ;;
  get) N=${1:-}; member "$N"; http CURL GET "$SCHEME://127.0.0.1:${APIP[N-1]}${2:?path}" ;;
  request) N=${1:-}; member "$N"; http CURL "${2:?method}" "$SCHEME://127.0.0.1:${APIP[N-1]}${3:?path}" "${4:-}" ;;
  etcd) http ECURL "${1:?method}" "$ETCD_SCHEME://127.0.0.1:$ETCD_CLIENT_PORT${2:?path}" "${3:-}" ;;
  psql) N=${1:-}; member "$N"
        "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR/pg$N" -p "${PGP[N-1]}" -U postgres -d postgres -c "${2:?sql}" ;;
  patronictl) timeout 20 /usr/bin/patronictl -c "$DIR/patronictl.yml" "$@" ;;
  *) echo "unknown action $A" >&2; exit 2 ;;
esac
