#!/usr/bin/env bash
# Build (or reuse) the cached Debian 13 (trixie) rootfs that carries the second service version
# set (Patroni 4.0.x, etcd 3.5, PostgreSQL 17, RabbitMQ 4.0), plus a venv with Patroni 4.1.x
# from PyPI inside it. The lab scripts run inside it with in-rootfs.sh (chroot, loopback ports).
#
# Usage:  trixie-rootfs.sh            prints the rootfs path on stdout (last line), builds if needed
# Env:    ROOTFS=/var/cache/status-reporter/rootfs-trixie   where the cache lives (outside the repo)
#         PATRONI41=1         also build the Patroni 4.1.x venv at ROOTFS/opt/patroni-4.1 (default 1)
#         PATRONI41_SPEC='patroni[etcd3,psycopg3]>=4.1,<4.2'
#         MIRROR=             Debian mirror (default: the machine's own apt mirror)
# Idempotent: ROOTFS/.status-reporter-stamp records the package list; the rootfs is rebuilt
# only when it is missing or the list changed. The venv has its own stamp (the pip spec).
# Timings of each step go to stderr ("[rootfs] debootstrap 61.2s").
#
# Why the venv is built inside the chroot with the rootfs's python3 (3.13): Patroni must run
# inside the rootfs to exec PostgreSQL 17, whose binaries need trixie's glibc (2.41; the host
# has 2.36), and a venv is bound to the interpreter path it was made with.
set -euo pipefail
ROOTFS=${ROOTFS:-/var/cache/status-reporter/rootfs-trixie}
MIRROR=${MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PATRONI41=${PATRONI41:-1}
PATRONI41_SPEC=${PATRONI41_SPEC:-'patroni[etcd3,psycopg3]>=4.1,<4.2'}
# The services, and what the lab scripts run inside the rootfs (they run there whole):
# bash/curl/iproute2 (ss)/openssl/python3 for the scripts, python3-idna for Patroni over
# https, python3-venv for the 4.1 venv.
PACKAGES=${PACKAGES:-patroni,python3-psycopg2,python3-psycopg,python3-etcd,python3-idna,etcd-server,etcd-client,postgresql-17,rabbitmq-server,curl,ca-certificates,iproute2,openssl,procps,python3-venv}
STAMP=$ROOTFS/.status-reporter-stamp
VSTAMP=$ROOTFS/opt/patroni-4.1/.status-reporter-stamp
t() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }
say() { echo "[rootfs] $*" >&2; }
want="trixie $PACKAGES"

if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  command -v debootstrap >/dev/null || { T=$(date +%s.%N); apt-get install -y debootstrap >/dev/null; say "apt-get install debootstrap $(t "$T")"; }
  [ -e "$ROOTFS" ] && { say "package list changed or build unfinished: rebuilding $ROOTFS"; rm -rf "${ROOTFS:?}"; }
  mkdir -p "$(dirname "$ROOTFS")"
  T=$(date +%s.%N)
  # build next to the target and rename at the end, so an interrupted build never looks done
  TMP=$ROOTFS.building; rm -rf "${TMP:?}"
  debootstrap --variant=minbase --include="$PACKAGES" trixie "$TMP" "$MIRROR" > "$ROOTFS.debootstrap.log" 2>&1 \
    || { echo "debootstrap failed, see $ROOTFS.debootstrap.log" >&2; exit 1; }
  say "debootstrap $(t "$T")"
  # minbase has no /etc/hosts: RabbitMQ's rabbitN@localhost and Patroni need localhost
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$TMP/etc/hosts"
  cp /etc/resolv.conf "$TMP/etc/resolv.conf"   # for pip inside the chroot
  rm -f "$TMP"/var/cache/apt/archives/*.deb    # 200+ MB of downloaded packages
  echo "$want" > "$TMP/.status-reporter-stamp"
  mv "$TMP" "$ROOTFS"
fi

if [ "$PATRONI41" = 1 ] && [ "$(cat "$VSTAMP" 2>/dev/null)" != "$PATRONI41_SPEC" ]; then
  T=$(date +%s.%N)
  rm -rf "${ROOTFS:?}/opt/patroni-4.1"
  # /proc and /dev for pip, and the host's CA bundle (the host may trust a TLS-inspecting
  # proxy that trixie's ca-certificates does not), in a private mount namespace: nothing
  # stays mounted afterwards and nothing of the host is copied into the cache
  unshare --mount --propagation private sh -c '
    R=$1; shift
    mount -t proc proc "$R/proc" && mount --rbind /dev "$R/dev" &&
    mount --bind /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt" &&
    exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 sh -c "$*"' \
    _ "$ROOTFS" "python3 -m venv /opt/patroni-4.1 && /opt/patroni-4.1/bin/pip install -q '$PATRONI41_SPEC'" \
    > "$ROOTFS.venv.log" 2>&1 || { echo "venv build failed, see $ROOTFS.venv.log" >&2; exit 1; }
  echo "$PATRONI41_SPEC" > "$VSTAMP"
  say "patroni 4.1 venv $(t "$T") ($(chroot "$ROOTFS" /opt/patroni-4.1/bin/patroni --version 2>&1))"
fi
say "size $(du -sh "$ROOTFS" | cut -f1)"
echo "$ROOTFS"
