#!/usr/bin/env bash
# A real HAProxy (Debian 12's 2.6) on 127.0.0.1 in front of SERVERS (default 3) tiny real HTTP
# servers (python3 -m http.server), with an admin stats socket at DIR/haproxy.sock (lab.md §H).
# Everything lives in DIR.
# Usage: PORTS="FRONT S1 S2 S3" haproxy-up.sh DIR
# Backend `app`: servers s1..sN, `check inter 500ms fall 2 rise 2` (a killed server is DOWN
# with L4CON about 1 s later). With CHECK_PORT (and CHECK_NAME, default `haproxy`), a second
# backend `checked` has one server `n1` (the s1 HTTP server) checked by
# `option httpchk GET /check/CHECK_NAME` on 127.0.0.1:CHECK_PORT: the agent's check endpoint.
# Env: WAIT_TIMEOUT (s, 30), OWNER_PID (starts the watchdog, see lib.sh).
# Prints "READY servers=N elapsed=Ns"; exit 2 when a port is taken.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DIR=$(cd "${1:?usage: $0 DIR}" && pwd)
SERVERS=${SERVERS:-3}; WAIT_TIMEOUT=${WAIT_TIMEOUT:-30}
T0=$(date +%s.%N)
port_list P "${PORTS:-}" 18400 $((SERVERS + 1))
require_free_ports "${P[@]}"
printf 'SERVERS=%s\nPORTS="%s"\n' "$SERVERS" "${P[*]}" > "$DIR/cluster.env"
start_watchdog "$HERE/haproxy-down.sh" "$DIR"

# start_server I: the I-th HTTP server; its --directory (under DIR) is the marker the ctl and
# down scripts check before signalling it.
start_server() {
  mkdir -p "$DIR/s$1"
  echo "s$1" > "$DIR/s$1/index.html"
  setsid /usr/bin/python3 -m http.server "${P[$1]}" --bind 127.0.0.1 --directory "$DIR/s$1" \
    >> "$DIR/s$1.log" 2>&1 < /dev/null &
  echo $! > "$DIR/s$1.pid"
}
for i in $(seq 1 "$SERVERS"); do start_server "$i"; done

{
  cat <<CFG
global
    stats socket $DIR/haproxy.sock mode 600 level admin
    pidfile $DIR/haproxy.pid
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend web
    bind 127.0.0.1:${P[0]}
    default_backend app
backend app
    balance roundrobin
CFG
  for i in $(seq 1 "$SERVERS"); do
    echo "    server s$i 127.0.0.1:${P[$i]} check inter 500ms fall 2 rise 2"
  done
  if [ -n "${CHECK_PORT:-}" ]; then
    cat <<CFG
backend checked
    option httpchk GET /check/${CHECK_NAME:-haproxy}
    server n1 127.0.0.1:${P[1]} check port $CHECK_PORT inter 500ms fall 2 rise 2
CFG
  fi
} > "$DIR/haproxy.cfg"
haproxy -c -q -f "$DIR/haproxy.cfg" >> "$DIR/haproxy.log" 2>&1 || { log_tails "$DIR/haproxy.log"; exit 1; }
setsid haproxy -db -f "$DIR/haproxy.cfg" >> "$DIR/haproxy.log" 2>&1 < /dev/null &
echo $! > "$DIR/haproxy.pid"

stat() { echo "show stat" | timeout 5 socat - "UNIX-CONNECT:$DIR/haproxy.sock"; }
all_up() { [ "$(stat | grep -c '^app,s[0-9]*,.*,UP,')" = "$SERVERS" ]; }
poll "every app server UP" "$WAIT_TIMEOUT" all_up || { log_tails "$DIR/haproxy.log" "$DIR"/s*.log; exit 1; }
echo "READY servers=$SERVERS elapsed=$(el)"
