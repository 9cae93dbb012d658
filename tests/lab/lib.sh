# shellcheck shell=bash
# What the lab scripts (tests/lab/*.sh) share. Sourced, never run: each script sources it from
# its own directory, so the scripts work from any cwd and from a read-only copy of tests/lab
# (tests/lab/versions/in-rootfs.sh runs them at /srv/lab inside a chroot):
#   HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib.sh"
# Only functions are defined here; nothing runs on sourcing.
#
# - processes: owns, alive, wait_gone, stop_pid (only pids the scripts recorded, and only when
#   /proc/PID/cmdline shows a DIR-specific marker: never pkill/killall)
# - ports: port_list, require_free_ports, free_ports
# - waiting: poll_until, poll (a deadline, never a bare sleep)
# - output: log, el, log_tails, http (the "HTTP <code>" + body format the ctl scripts print)
# - TLS material: tls_key, tls_ca, tls_leaf (openssl, EC P-256)
# - start_watchdog / stop_watchdog: tears a cluster down when the process that owns it dies
# - two_network_hosts: namespace hosts on a service network and a management network

# ---------- processes ----------

# owns PID MARKER: PID is alive and its command line contains MARKER (zombies have an empty one).
owns() { [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$2"; }

# alive PIDFILE MARKER: the pid file names a live process of ours.
alive() { [ -s "$1" ] && owns "$(cat "$1")" "$2"; }

# wait_gone PID MARKER TIMEOUT_S: 0 once it is gone, 1 (with a message) if it is still alive.
wait_gone() {
  local _
  for _ in $(seq 1 $(($3 * 10))); do owns "$1" "$2" || return 0; sleep 0.1; done
  echo "pid $1 still alive after $3 s" >&2
  return 1
}

# stop_pid PID MARKER SIGNAL TIMEOUT_S: signals it if it is ours and waits until it is gone;
# SIGKILL when it outlives the timeout.
stop_pid() {
  local pid=$1 marker=$2 sig=$3 t=$4
  owns "$pid" "$marker" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  wait_gone "$pid" "$marker" "$t" 2>/dev/null && return 0
  echo "pid $pid ignored SIG$sig for ${t}s: SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" "$marker" 5
}

# ---------- ports ----------

# port_list ARRAY "LIST" BASE COUNT: ARRAY gets LIST (commas or spaces); entries it lacks are
# BASE+i (i from 0).
port_list() {
  local -n _ports=$1
  local i
  read -r -a _ports <<<"$(echo "${2:-}" | tr ',' ' ')"
  for i in $(seq 0 $(($4 - 1))); do _ports[i]=${_ports[i]:-$(($3 + i))}; done
}

# require_free_ports PORT...: exits 2 (the harness then retries with other ports) when a port
# repeats or something already listens on it.
require_free_ports() {
  local p
  if [ "$(printf '%s\n' "$@" | sort | uniq -d)" != "" ]; then echo "duplicate ports: $*" >&2; exit 2; fi
  for p in "$@"; do
    if ss -Hltn "sport = :$p" | grep -q .; then
      echo "port $p already in use; set the *_PORT*/*_PORTS env vars" >&2; exit 2
    fi
  done
}

# free_ports N: N free TCP ports on 127.0.0.1 (all bound at once to port 0, then released).
free_ports() {
  /usr/bin/python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# ---------- waiting ----------

# poll_until DEADLINE EVERY CMD...: runs CMD every EVERY seconds until it succeeds (0) or the
# clock passes DEADLINE, in epoch seconds (1). CMD runs in this shell: it may set variables.
poll_until() {
  local deadline=$1 every=$2
  shift 2
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep "$every"
  done
}

# poll WHAT TIMEOUT_S CMD...: CMD, silenced, every 0.25 s until it succeeds; 1 with
# "TIMEOUT (Ns): WHAT" on stderr.
poll() {
  local what=$1 t=$2
  shift 2
  poll_until $(($(date +%s) + t)) 0.25 quietly "$@" || { echo "TIMEOUT (${t}s): $what" >&2; return 1; }
}
quietly() { "$@" >/dev/null 2>&1; }

# ---------- output ----------

# log MSG: to stderr with the time of day, with VERBOSE=1 only.
log() { if [ "${VERBOSE:-0}" = 1 ]; then echo "$(date +%T.%N | cut -c1-12) $*" >&2; fi; }

# el: seconds since T0 (set by the caller from `date +%s.%N`), as "12.3s".
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }

# log_tails FILE...: the last LOG_TAIL_LINES (default 10) lines of each log, on stderr, for
# a failure message.
log_tails() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    echo "--- $f (tail)"
    tail -n "${LOG_TAIL_LINES:-10}" "$f"
  done >&2
}

# http CURL-ARRAY METHOD URL [JSON-BODY]: one request with the curl command line in the named
# array; prints "HTTP <code>" then the body ("HTTP 000": no answer).
http() {
  local -n _curl=$1
  local out code body=()
  [ -n "${4:-}" ] && body=(-H 'Content-Type: application/json' --data-binary "$4")
  out=$(mktemp)
  code=$("${_curl[@]}" -o "$out" -w '%{http_code}' -X "$2" "${body[@]}" "$3" 2>/dev/null) || true
  echo "HTTP ${code:-000}"
  cat "$out"
  rm -f "$out"
}

# ---------- TLS material (EC P-256 keys: fast to generate) ----------

# tls_key FILE
tls_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# tls_ca DIR NAME CN: a CA valid 3 days, DIR/NAME.crt + DIR/NAME.key.
tls_ca() {
  tls_key "$1/$2.key"
  openssl req -x509 -new -key "$1/$2.key" -days 3 -subj "/CN=$3" -out "$1/$2.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

# tls_leaf DIR NAME CN CA EKU [SAN]: a certificate valid 2 days signed by DIR/CA.crt.
tls_leaf() {
  local t=$1
  tls_key "$t/$2.key"
  openssl req -new -key "$t/$2.key" -subj "/CN=$3" -out "$t/$2.csr" 2>/dev/null
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$5"; [ -n "${6:-}" ] && echo "subjectAltName=$6"; } > "$t/$2.ext"
  openssl x509 -req -in "$t/$2.csr" -CA "$t/$4.crt" -CAkey "$t/$4.key" -CAcreateserial \
    -days 2 -extfile "$t/$2.ext" -out "$t/$2.crt" 2>/dev/null
  rm -f "$t/$2.csr" "$t/$2.ext"
}

# ---------- watchdog ----------

# start_watchdog DOWN_SCRIPT DIR: when OWNER_PID is set, a detached process waits for that
# process to die (pid reuse is told apart by its start time), stops this up script if it is
# still running, runs DOWN_SCRIPT DIR with PURGE=1, and removes DIR when WATCHDOG_RM_DIR=1.
# Its pid goes to DIR/watchdog.pid; the down script stops it first.
start_watchdog() {
  [ -n "${OWNER_PID:-}" ] || return 0
  local owner_start
  owner_start=$(sed 's/.*) //' "/proc/$OWNER_PID/stat" 2>/dev/null | cut -d' ' -f20)
  [ -n "$owner_start" ] || { echo "OWNER_PID $OWNER_PID not running" >&2; exit 1; }
  # shellcheck disable=SC2016
  local w='st() { sed "s/.*) //" "/proc/$1/stat" 2>/dev/null | cut -d" " -f20; }
     while [ "$(st "$1")" = "$2" ]; do sleep 1; done
     # the up script may still be running (owner killed during startup): stop it first
     if tr "\0" " " < "/proc/$6/cmdline" 2>/dev/null | grep -qF -- "$4"; then
       kill -TERM "$6" 2>/dev/null
       for _ in $(seq 1 50); do tr "\0" " " < "/proc/$6/cmdline" 2>/dev/null | grep -q . || break; sleep 0.1; done
     fi
     FROM_WATCHDOG=1 PURGE=1 "$3" "$4" >/dev/null 2>&1
     [ "$5" = 1 ] && rm -rf "$4"'
  setsid bash -c "$w" lab-watchdog "$OWNER_PID" "$owner_start" "$1" "$2" \
    "${WATCHDOG_RM_DIR:-0}" "$$" >/dev/null 2>&1 </dev/null &
  echo $! > "$2/watchdog.pid"
}

# stop_watchdog DIR: in a down script, stops the watchdog of DIR first (unless that watchdog
# is what runs this script); it is told by the down script's name and DIR on its command line.
stop_watchdog() {
  if [ "${FROM_WATCHDOG:-0}" != 1 ] && [ -f "$1/watchdog.pid" ]; then
    stop_pid "$(cat "$1/watchdog.pid")" "$(basename "$0") $1 " TERM 2
  fi
}

# ---------- namespace hosts ----------

# two_network_hosts SW NODES SVC_BR SVC_PORT SVC_NET MGMT_NET: a switch namespace SW holding two
# bridges, SVC_BR (the service's network SVC_NET.0/24) and brm (management, MGMT_NET.0/24, on
# which SW itself is MGMT_NET.254: the collector's address), and NODES host namespaces named by
# the caller's `host_ns I`, each with eth0 = SVC_NET.I on SVC_BR (switch port SVC_PORT<I>) and
# eth1 = MGMT_NET.I on brm (switch port m<I>). Cutting or blocking SVC_PORT<I> leaves the
# host's agent reporting over eth1 (lab.md §E, §H).
two_network_hosts() {
  local sw=$1 nodes=$2 svc_br=$3 svc_port=$4 svc_net=$5 mgmt_net=$6 i h br
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  for br in "$svc_br" brm; do ip -n "$sw" link add "$br" type bridge; ip -n "$sw" link set "$br" up; done
  ip -n "$sw" addr add "$mgmt_net.254/24" dev brm
  for i in $(seq 1 "$nodes"); do
    h=$(host_ns "$i")
    ip netns add "$h"
    ip -n "$h" link set lo up
    ip -n "$h" link add eth0 type veth peer name "$svc_port$i" netns "$sw"
    ip -n "$h" link add eth1 type veth peer name "m$i" netns "$sw"
    ip -n "$sw" link set "$svc_port$i" master "$svc_br" up
    ip -n "$sw" link set "m$i" master brm up
    ip -n "$h" addr add "$svc_net.$i/24" dev eth0
    ip -n "$h" addr add "$mgmt_net.$i/24" dev eth1
    ip -n "$h" link set eth0 up
    ip -n "$h" link set eth1 up
  done
}
