#!/usr/bin/env bash
# Runs every test from a fresh Debian 12 machine: installs what is missing, then runs the
# workspace's tests. This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in postgresql-15 patroni etcd-server etcd-client python3-idna rabbitmq-server curl iproute2 openssl debootstrap rpm binutils faketime dbus-daemon mariadb-server galera-4 rsync haproxy socat keepalived pacemaker corosync crmsh resource-agents; do
  have "$p" || need_pkgs+=("$p")
done
# promtool (Debian's prometheus package) checks the /metrics exposition in tests/metrics.rs.
have prometheus || need_pkgs+=(prometheus)
# Headless Chromium and its driver open the status page in tests/status_page.rs (DejaVu so
# its screenshots have text).
for p in chromium chromium-driver fonts-dejavu-core; do have "$p" || need_pkgs+=("$p"); done
# A real Alertmanager for tests/alerts.rs.
have prometheus-alertmanager || need_pkgs+=(prometheus-alertmanager)
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

# The real Cloudify 5.0.5.1 CLI that tests/cfy_cli.rs drives (cached venv outside the repo).
# Outside CI a machine without Python 2.7.18 skips that suite instead.
bash tests/cfy/ensure-venv.sh >/dev/null || [[ ${CI:-} != true ]]

# The second service version set (issue 13): a Debian 13 rootfs with Patroni 4.0, etcd 3.5,
# PostgreSQL 17, RabbitMQ 4.0 and a Patroni 4.1 venv, cached outside the repo and built when
# missing (~4 min cold). Outside CI a machine that cannot build it skips the set-B tests.
bash tests/lab/versions/trixie-rootfs.sh >/dev/null || [[ ${CI:-} != true ]]

# The real-service suites start their own clusters on free loopback ports. A clean clone gains
# nothing from incremental compilation, and its cache would double the disk the build takes.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

# The fuzz targets are their own workspace (fuzz/), so the test above does not build them:
# check that every one still compiles against the parsers it drives (running them needs
# cargo-fuzz: fuzz/run-all.sh).
(cd fuzz && cargo check --quiet --bins) || { echo "fuzz targets do not build" >&2; status=1; }

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
