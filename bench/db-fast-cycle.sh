#!/usr/bin/env bash
# The db probe's fast cycle (`/patroni` over mTLS + etcd over mTLS + postgres, concurrent)
# against real Patroni, with the patroni probe's shipped client (TCP_QUICKACK re-armed after
# every read) and with the kernel's delayed ACKs (the client before), interleaved cycle by
# cycle in one run (probes/examples/db-fast-cycle.rs prints the table).
#
# Usage: bench/db-fast-cycle.sh [--cycles N] [--sets "3.0 4.0 4.1"]
#   --cycles  fast cycles per client and set (default 40)
#   --sets    which Patroni to run: 3.0 = the host's Debian 12 set (Patroni 3.0.2, etcd 3.4,
#             PostgreSQL 15); 4.0 / 4.1 = the trixie rootfs (tests/lab/versions/in-rootfs.sh:
#             Patroni 4.0.7 or 4.1 from PyPI, etcd 3.5, PostgreSQL 17). Default "3.0 4.0".
#   KEEP=1    keep the lab directories
# One member per set, REST API over https with `verify_client: required`, etcd over https
# with client-certificate auth, started by the lab scripts on free loopback ports and torn
# down (patroni-down.sh, by recorded pids) on exit. Figures: BENCHMARKS.md, "db probes".
# Needs: cargo, python3, and for 4.x the rootfs (built by trixie-rootfs.sh on first use).
set -euo pipefail
CYCLES=40
SETS="3.0 4.0"
while [ $# -gt 0 ]; do
    case "$1" in
        --cycles) CYCLES="$2"; shift 2 ;;
        --sets) SETS="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
echo "== building: cargo build -p sr-probes --example db-fast-cycle"
cargo build -q -p sr-probes --example db-fast-cycle
EX="$ROOT/target/debug/examples/db-fast-cycle"

DIRS=()
down() {
    local d
    for d in "${DIRS[@]}"; do
        if [ -f "$d/rootfs.env" ]; then
            tests/lab/versions/in-rootfs.sh patroni-down.sh "$d" >/dev/null 2>&1 || true
        else
            tests/lab/patroni-down.sh "$d" >/dev/null 2>&1 || true
        fi
        [ "${KEEP:-0}" = 1 ] || rm -rf "$d"
    done
}
trap down EXIT INT TERM

# free_ports
. "$ROOT/bench/lib.sh"

echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
for set in $SETS; do
    DIR="$(mktemp -d /tmp/sr-bench-patroni.XXXXXX)"
    chmod 755 "$DIR"
    DIRS+=("$DIR")
    read -r PG API EC EP <<< "$(free_ports 4)"
    env=(MEMBERS=1 TLS=1 ETCD_TLS=1 PG_PORTS="$PG" API_PORTS="$API" ETCD_CLIENT_PORT="$EC"
         ETCD_PEER_PORT="$EP" OWNER_PID=$$ SCOPE=bench)
    echo "== Patroni $set: starting one TLS member in $DIR"
    case "$set" in
        3.0) env "${env[@]}" tests/lab/patroni-up.sh "$DIR" | tail -1 ;;
        4.0|4.1) env "${env[@]}" PATRONI="$set" tests/lab/versions/in-rootfs.sh patroni-up.sh "$DIR" | tail -1 ;;
        *) echo "unknown set $set" >&2; exit 2 ;;
    esac
    version="$(curl -s --cacert "$DIR/tls/ca.crt" --cert "$DIR/tls/client.crt" --key "$DIR/tls/client.key" \
        "https://127.0.0.1:$API/patroni" | python3 -c 'import json,sys; print(json.load(sys.stdin)["patroni"]["version"])')"
    "$EX" --patroni "https://127.0.0.1:$API" --member pg1 --etcd "https://127.0.0.1:$EC" --pg-port "$PG" \
        --ca "$DIR/tls/ca.crt" --cert "$DIR/tls/client.crt" --key "$DIR/tls/client.key" \
        --cycles "$CYCLES" --label "Patroni $version (set $set):"
done
echo
echo "== load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
