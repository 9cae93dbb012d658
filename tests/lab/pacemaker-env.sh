# shellcheck shell=bash
# What pacemaker-up.sh, -ctl.sh and -down.sh share (sourced after lib.sh): the namespace names,
# addresses and markers of the pair in DIR. NS_PREFIX names every namespace (unique per pair:
# the harness passes one with its pid); it is saved in DIR/cluster.env by pacemaker-up.sh.
# Hosts: $NS_PREFIX-h<i> with eth0 = 10.207.0.<i> (the corosync ring, bridge brp) and eth1 =
# 10.207.1.<i> (the management network, bridge brm, where the collector listens on
# 10.207.1.254 inside $NS_PREFIX-sw). Only these namespaces are ever touched.
RING_NET=10.207.0
MGMT_NET=10.207.1
sw_ns() { echo "$NS_PREFIX-sw"; }
host_ns() { echo "$NS_PREFIX-h$1"; }
# Pacemaker's node name of node I (corosync nodelist `name:`).
node_name() { echo "pc$1"; }
# Every process of node I carries SR_PCMK_LAB=<this> in its environment (pacemakerd's daemons
# do not show DIR on their command lines); the down script finds them by it, never by name.
pmarker() { echo "SR_PCMK_LAB=$DIR/n$1"; }
# owns_env PID MARKER: PID is alive and its environment holds MARKER exactly.
owns_env() { [ -n "$1" ] && { tr '\0' '\n' < "/proc/$1/environ"; } 2>/dev/null | grep -qxF -- "$2"; }
# node_pids I: every live process of node I (by its environment marker).
node_pids() {
  local m p
  m=$(pmarker "$1")
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    owns_env "$p" "$m" && echo "$p"
  done
  return 0
}
# pcmk_pid I: node I's pacemakerd, whose namespaces clients enter (empty when it is gone).
pcmk_pid() { local p; p=$(cat "$DIR/n$1/pacemakerd.pid" 2>/dev/null) || return 0; owns_env "$p" "$(pmarker "$1")" && echo "$p"; return 0; }
# in_node I CMD...: CMD inside node I's network, mount and UTS namespaces.
in_node() { local p; p=$(pcmk_pid "$1"); [ -n "$p" ] || { echo "node $1: pacemakerd is not running" >&2; return 1; }; shift; nsenter -t "$p" -n -m -u "$@"; }
# wait_gone_env PID MARKER TIMEOUT_S: 0 once PID no longer carries MARKER (gone or a zombie).
wait_gone_env() {
  local _
  for _ in $(seq 1 $(($3 * 10))); do owns_env "$1" "$2" || return 0; sleep 0.1; done
  echo "pid $1 still alive after $3 s" >&2
  return 1
}
