#!/usr/bin/env bash
# Runs every test from a fresh Debian 12 machine: installs what is missing, then runs the
# workspace's tests. This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in postgresql-15 patroni etcd-server etcd-client python3-idna rabbitmq-server curl iproute2 openssl debootstrap rpm binutils faketime; do
  have "$p" || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${need_pkgs[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "installing: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Supply-chain policy (deny.toml): licenses, banned and duplicated crypto/TLS crates, sources.
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny
cargo deny check licenses bans sources

# The real-service suites start their own clusters on free loopback ports.
cargo test --workspace --no-fail-fast 2>&1
