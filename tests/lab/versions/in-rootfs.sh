#!/usr/bin/env bash
# Run one of the lab scripts (tests/lab/*.sh) unchanged inside the cached trixie rootfs, so the
# clusters they start are Patroni 4 / etcd 3.5 / PostgreSQL 17 / RabbitMQ 4.0 instead of the
# host's Debian 12 set. Same arguments, same output, same DIR layout as the script itself.
#
# Usage:  in-rootfs.sh SCRIPT DIR [ARGS...]     e.g. in-rootfs.sh patroni-up.sh /tmp/lab
#         SCRIPT is a file name in tests/lab/ (patroni-up.sh, patroni-ctl.sh, patroni-down.sh,
#         rabbit-up.sh, rabbit-ctl.sh, rabbit-down.sh); env vars are passed through.
#         in-rootfs.sh --exec DIR PROGRAM [ARGS...]   runs PROGRAM (a path inside the rootfs)
#         with DIR mounted, for harnesses that start services themselves (tests/harness/
#         netlab.rs runs rabbitmq-server and rabbitmqctl this way inside its network namespaces).
# Env:    ROOTFS=/var/cache/status-reporter/rootfs-trixie   (built by trixie-rootfs.sh if missing)
#         PATRONI=4.0|4.1   4.0 = Debian's /usr/bin/patroni (4.0.7); 4.1 = the PyPI venv at
#                           /opt/patroni-4.1 bound over /usr/bin/patroni{,ctl} (default 4.0)
#         KHEPRI=1          rabbit-up.sh only: once the cluster is READY, enable the khepri_db
#                           feature flag (RabbitMQ 4.0's Raft metadata store) and wait for it
# The up scripts record ROOTFS and PATRONI in DIR/rootfs.env; ctl/down calls read it back, so a
# restarted member runs the same Patroni as before.
#
# How: each call gets a private mount namespace (unshare --mount), in which /proc, /dev, a
# tmpfs /tmp, DIR (at the same path, so the pid files and cmdline markers the scripts check
# mean the same inside and out) and tests/lab (read-only at /srv/lab) are mounted into the
# rootfs; then the script runs under chroot. The network and pid namespaces are the host's:
# services listen on the host's loopback and the host sees their pids. Nothing is mounted on
# the host, so there is nothing to unmount: a namespace ends with its last process.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAB=$(cd "$HERE/.." && pwd)
SCRIPT=${1:?usage: $0 SCRIPT DIR [ARGS...]}; shift
DIR=${1:?usage: $0 SCRIPT DIR [ARGS...]}; shift
[ "$SCRIPT" = --exec ] || [ -f "$LAB/$SCRIPT" ] || { echo "no such lab script: $LAB/$SCRIPT" >&2; exit 2; }
mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
if [ -f "$DIR/rootfs.env" ] && [ "$SCRIPT" != patroni-up.sh ] && [ "$SCRIPT" != rabbit-up.sh ]; then
  # shellcheck disable=SC1091
  . "$DIR/rootfs.env"
fi
ROOTFS=${ROOTFS:-/var/cache/status-reporter/rootfs-trixie}
PATRONI=${PATRONI:-4.0}
case $PATRONI in 4.0|4.1) ;; *) echo "PATRONI must be 4.0 or 4.1" >&2; exit 2 ;; esac
if [ ! -f "$ROOTFS/.status-reporter-stamp" ] || { [ "$PATRONI" = 4.1 ] && [ ! -x "$ROOTFS/opt/patroni-4.1/bin/patroni" ]; }; then
  ROOTFS=$ROOTFS "$HERE/trixie-rootfs.sh" >/dev/null
fi
case $SCRIPT in
  patroni-up.sh|rabbit-up.sh) printf 'ROOTFS=%q\nPATRONI=%q\n' "$ROOTFS" "$PATRONI" > "$DIR/rootfs.env" ;;
esac

# PostgreSQL of the rootfs; the scripts' other paths (/usr/bin/patroni, etcd on PATH,
# /usr/lib/rabbitmq/bin, /usr/bin/python3) are the same in trixie.
export PG_BIN=${PG_BIN_ROOTFS:-/usr/lib/postgresql/17/bin}
T0=$(date +%s.%N)
# shellcheck disable=SC2016
unshare --mount --propagation private /bin/bash -c '
  set -e
  R=$1 DIR=$2 LAB=$3 PATRONI=$4 SCRIPT=$5; shift 5
  mount -t proc proc "$R/proc"
  mount --rbind /dev "$R/dev"
  mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
  mkdir -p "$R$DIR" "$R/srv/lab"
  mount --bind "$DIR" "$R$DIR"
  mount --bind -o ro "$LAB" "$R/srv/lab"
  if [ "$PATRONI" = 4.1 ]; then
    mount --bind "$R/opt/patroni-4.1/bin/patroni" "$R/usr/bin/patroni"
    mount --bind "$R/opt/patroni-4.1/bin/patronictl" "$R/usr/bin/patronictl"
  fi
  # the host environment minus what would point the rootfs python at host paths
  unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PIP_FIND_LINKS
  export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
  [ "$SCRIPT" = --exec ] && exec chroot "$R" "$@"
  exec chroot "$R" /bin/bash "/srv/lab/$SCRIPT" "$DIR" "$@"' \
  in-rootfs "$ROOTFS" "$DIR" "$LAB" "$PATRONI" "$SCRIPT" "$@" || rc=$?
rc=${rc:-0}
if [ "$SCRIPT" = rabbit-up.sh ] && [ "$rc" = 0 ] && [ "${KHEPRI:-0}" = 1 ]; then
  TK=$(date +%s.%N)
  "$0" rabbit-ctl.sh "$DIR" ctl 1 enable_feature_flag --opt-in khepri_db >&2
  # every node must report the flag enabled before the cluster counts as up; asked of each
  # node's management API (guest, loopback) rather than with rabbitmqctl, which boots an
  # Erlang VM per call (up to 80 s for the three on a loaded 2-core box)
  . "$DIR/cluster.env"
  read -r -a MP <<< "$MGMT_PORTS"
  deadline=$(( $(date +%s) + ${WAIT_TIMEOUT:-150} ))
  for i in $(seq 1 "$NODES"); do
    until curl -fsS -m 3 -u guest:guest "http://127.0.0.1:${MP[i-1]}/api/feature-flags" 2>/dev/null \
        | tr '{' '\n' | grep '"name":"khepri_db"' | grep -q '"state":"enabled"'; do
      [ "$(date +%s)" -lt "$deadline" ] || { echo "TIMEOUT: khepri_db not enabled on node $i" >&2; exit 1; }
      sleep 0.5
    done
  done
  awk -v a="$TK" -v b="$(date +%s.%N)" 'BEGIN{printf "KHEPRI enabled in %.1fs\n", b-a}'
fi
[ "$SCRIPT" = --exec ] && exit $rc
awk -v s="$SCRIPT" -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "[in-rootfs] %s %.1fs\n", s, b-a}' >&2
exit $rc
