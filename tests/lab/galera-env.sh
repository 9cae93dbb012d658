# shellcheck shell=bash
# What galera-up.sh, -ctl.sh and -down.sh share (sourced after lib.sh): the namespace names
# and addresses of the cluster in DIR. NS_PREFIX names every namespace (unique per cluster:
# the harness passes one with its pid); it is saved in DIR/cluster.env by galera-up.sh.
# Hosts: $NS_PREFIX-h<i> with eth0 = 10.204.0.<i> (the Galera network, bridge brc) and
# eth1 = 10.204.1.<i> (the management network, bridge brm, where the collector listens on
# 10.204.1.254 inside $NS_PREFIX-sw). Only these namespaces are ever touched.
GAL_NET=10.204.0
MGMT_NET=10.204.1
sw_ns() { echo "$NS_PREFIX-sw"; }
host_ns() { echo "$NS_PREFIX-h$1"; }
# the marker every mariadbd of DIR carries on its command line
gmarker() { echo "--defaults-file=$DIR/g$1/my.cnf"; }
sock() { echo "$DIR/g$1/mysqld.sock"; }
# sql I STATEMENT: run one statement as root over node I's socket (unix sockets cross namespaces)
sql() { timeout 10 mariadb --no-defaults -S "$(sock "$1")" -u root -N -B -e "$2"; }
