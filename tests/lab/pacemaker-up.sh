#!/usr/bin/env bash
# Two real Pacemaker 2.1.5 + Corosync 3 nodes (lab.md §H) on network-namespace hosts, without
# systemd: each node runs in its own network, mount and UTS namespace with private copies of
# Corosync's and Pacemaker's state directories, tmpfs /dev/shm and /run (libqb IPC uses
# abstract sockets and /dev/shm). The CIB is written before start: stonith-enabled=false,
# dc-deadtime=2s (the default 20 s is the whole start-up otherwise), and two
# ocf:pacemaker:Dummy resources: the primitive `dummy` and the clone `dummy-clone` (of
# `dummy-c`). Everything lives in DIR.
# Usage: NS_PREFIX=srmXXX pacemaker-up.sh DIR
# Env: WAIT_TIMEOUT (s, 90), OWNER_PID (starts the watchdog, see lib.sh).
# Prints "READY nodes=2 dc=pcN elapsed=Ns" once both nodes are online, a DC is elected and
# every resource is started. Exit 2 when NS_PREFIX's namespaces already exist.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=pacemaker-env.sh
. "$HERE/pacemaker-env.sh"
DIR=$(cd "${1:?usage: $0 DIR}" && pwd)
: "${NS_PREFIX:?NS_PREFIX is required}"
NODES=2; WAIT_TIMEOUT=${WAIT_TIMEOUT:-90}
T0=$(date +%s.%N)
ip netns list | grep -q "^$(sw_ns)\b" && { echo "namespace $(sw_ns) exists" >&2; exit 2; }
printf 'NODES=%s\nNS_PREFIX=%s\n' "$NODES" "$NS_PREFIX" > "$DIR/cluster.env"
start_watchdog "$HERE/pacemaker-down.sh" "$DIR"

two_network_hosts "$(sw_ns)" "$NODES" brp p "$RING_NET" "$MGMT_NET"

corosync-keygen -k "$DIR/authkey" >/dev/null 2>&1
for i in 1 2; do
  N=$DIR/n$i
  mkdir -p "$N"
  # Private copies of the state directories, ownership kept (the daemons run as hacluster).
  for d in /var/lib/pacemaker /var/log/pacemaker /var/lib/corosync; do cp -a "$d" "$N/$(basename "$(dirname "$d")")-$(basename "$d")"; done
  cp -a "$DIR/authkey" "$N/authkey"
  cat > "$N/corosync.conf" <<CONF
totem {
  version: 2
  cluster_name: srlab
  transport: knet
  crypto_cipher: aes256
  crypto_hash: sha256
  keyfile: $N/authkey
  token: 3000
}
nodelist {
  node {
    ring0_addr: $RING_NET.1
    name: $(node_name 1)
    nodeid: 1
  }
  node {
    ring0_addr: $RING_NET.2
    name: $(node_name 2)
    nodeid: 2
  }
}
quorum {
  provider: corosync_votequorum
  two_node: 1
}
logging {
  to_logfile: yes
  logfile: $N/corosync.log
  to_stderr: no
  to_syslog: no
  timestamp: on
}
CONF
  cat > "$N/lib-pacemaker/cib/cib.xml" <<'CIB'
<cib validate-with="pacemaker-3.0" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="opt-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="opt-recheck" name="cluster-recheck-interval" value="1min"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      <primitive id="dummy" class="ocf" provider="pacemaker" type="Dummy">
        <operations>
          <op id="dummy-monitor" name="monitor" interval="2s" timeout="10s"/>
        </operations>
      </primitive>
      <clone id="dummy-clone">
        <primitive id="dummy-c" class="ocf" provider="pacemaker" type="Dummy">
          <operations>
            <op id="dummy-c-monitor" name="monitor" interval="2s" timeout="10s"/>
          </operations>
        </primitive>
      </clone>
    </resources>
    <constraints/>
  </configuration>
  <status/>
</cib>
CIB
  chown hacluster:haclient "$N/lib-pacemaker/cib/cib.xml"
  chmod 600 "$N/lib-pacemaker/cib/cib.xml"
  # What runs inside the node's namespaces: private mounts, corosync, then pacemakerd (exec:
  # this shell's pid becomes pacemakerd's, saved first).
  cat > "$N/start.sh" <<START
set -eu
hostname $(node_name "$i")
mount --make-rprivate /
mount --bind $N/lib-pacemaker /var/lib/pacemaker
mount --bind $N/log-pacemaker /var/log/pacemaker
mount --bind $N/lib-corosync /var/lib/corosync
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/crm /run/pacemaker /run/resource-agents
chown hacluster:haclient /run/crm /run/pacemaker
corosync -f -c $N/corosync.conf >> $N/corosync.out 2>&1 &
echo \$! > $N/corosync.pid
for _ in \$(seq 1 200); do corosync-cfgtool -s >/dev/null 2>&1 && break; sleep 0.1; done
echo \$\$ > $N/pacemakerd.pid
exec pacemakerd -f >> $N/pacemakerd.out 2>&1
START
done

# start_node I: node I's namespaces and daemons, in the background.
start_node() {
  local N=$DIR/n$1
  rm -f "$N/pacemakerd.pid" "$N/corosync.pid"
  env "$(pmarker "$1")" setsid ip netns exec "$(host_ns "$1")" unshare --mount --uts --fork \
    bash "$N/start.sh" >> "$N/start.log" 2>&1 < /dev/null &
}
for i in 1 2; do start_node "$i"; done

# ready: from node 1, both nodes online, a DC, quorum, and every resource started.
ready() {
  local x
  x=$(in_node 1 crm_mon --output-as=xml 2>/dev/null) || return 1
  grep -q 'current_dc present="true"' <<<"$x" || return 1
  grep -q 'with_quorum="true"' <<<"$x" || return 1
  [ "$(grep -c '<node name="pc[12]" id="[0-9]*" online="true"' <<<"$x")" = 2 ] || return 1
  [ "$(grep -c 'role="Started"' <<<"$x")" = 3 ] || return 1
  DC=$(sed -n 's/.*current_dc present="true".* name="\([^"]*\)".*/\1/p' <<<"$x")
}
poll "both nodes online, a DC, 3 resources started" "$WAIT_TIMEOUT" ready || {
  log_tails "$DIR"/n*/start.log "$DIR"/n*/corosync.log "$DIR"/n*/log-pacemaker/pacemaker.log; exit 1; }
ready
echo "READY nodes=$NODES dc=$DC elapsed=$(el)"
