#!/usr/bin/env bash
# Builds (once) and caches a Debian minbase rootfs for the packaging tests.
#   rootfs.sh bookworm|bullseye   -> prints the rootfs path on stdout
# The cache lives under /var/cache/status-reporter-test/ (override: SR_TEST_CACHE). A rootfs is
# built in a temporary directory and renamed into place only when debootstrap succeeded, so an
# interrupted run never leaves a half-built cache behind. Concurrent callers serialise on a lock.
set -euo pipefail

suite=${1:?usage: rootfs.sh bookworm|bullseye}
cache=${SR_TEST_CACHE:-/var/cache/status-reporter-test}
root="$cache/rootfs-$suite"

case "$suite" in
  # bookworm boots systemd as PID 1 of a PID namespace (systemd test); dbus for the services probe.
  bookworm) include=systemd,systemd-sysv,dbus ;;
  # bullseye (glibc 2.31) only runs the binary, so minbase is enough.
  bullseye) include= ;;
  *) echo "unknown suite: $suite" >&2; exit 2 ;;
esac

mkdir -p "$cache"
exec 9>"$cache/.lock-$suite"
flock 9

if [[ ! -e "$root/.complete" ]]; then
  command -v debootstrap >/dev/null || {
    echo "rootfs.sh: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
  }
  # The machine's own apt mirror: Debian 12 keeps it in deb822 form.
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  tmp="$root.tmp.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  echo "rootfs.sh: debootstrap $suite from $mirror (cached afterwards in $root)" >&2
  debootstrap --variant=minbase ${include:+--include=$include} "$suite" "$tmp" "$mirror" >&2
  # minbase has no /etc/hosts; localhost must resolve through files NSS inside the rootfs.
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' >"$tmp/etc/hosts"
  echo "sr-test-$suite" >"$tmp/etc/hostname"
  touch "$tmp/.complete"
  rm -rf "$root"
  mv "$tmp" "$root"
  trap - EXIT
fi
echo "$root"
