# shellcheck shell=bash
# What keepalived-up.sh, -ctl.sh and -down.sh share (sourced after lib.sh): the namespace names
# and addresses of the pair in DIR. NS_PREFIX names every namespace (unique per pair: the
# harness passes one with its pid); it is saved in DIR/cluster.env by keepalived-up.sh.
# Hosts: $NS_PREFIX-h<i> with eth0 = 10.205.0.<i> (the VRRP network, bridge brv, where the VIP
# 10.205.0.100 lives) and eth1 = 10.205.1.<i> (the management network, bridge brm, where the
# collector listens on 10.205.1.254 inside $NS_PREFIX-sw). Only these namespaces are touched.
VRRP_NET=10.205.0
MGMT_NET=10.205.1
VIP=$VRRP_NET.100
sw_ns() { echo "$NS_PREFIX-sw"; }
host_ns() { echo "$NS_PREFIX-h$1"; }
# the marker every keepalived of DIR carries on its command line
kmarker() { echo "$DIR/k$1/keepalived.conf"; }
# keepalived 2.2.7 names its USR1 data file after the instance, which `-s NS` sets to the
# namespace name (lab.md §H): one file per node, even though /tmp is shared.
data_file() { echo "/tmp/keepalived.$(host_ns "$1").data"; }
