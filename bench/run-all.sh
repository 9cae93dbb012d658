#!/usr/bin/env bash
# Every figure of the performance table (issue 17, BENCHMARKS.md "All figures in one run"),
# each beside the peer it is compared with, measured in one run on this machine:
#
#   1. agent footprint   RSS/PSS/anon and CPU per cycle   beside prometheus-node-exporter
#      (1b: the same on a db node: patroni, etcd, postgres probes against a real member)
#   2. start to first report (median, p90)                 the agent's own first report
#   3. collector ingest, signed, TLS, 10,000 nodes         beside a bare hyper + rustls server
#      and GET /cluster-status end to end (every row with a reason: --view-shape skew)
#   4. Ed25519 verify and the store's steps, in process    (the per-report cost's parts)
#   5. db probe fast cycle against real Patroni             the client with delayed ACKs
#   6. detection: kill -> visible in the view               on the real clusters, both sets
#   7. collector instructions per report (callgrind)         beside bare TLS and one verify
#
# Usage: bench/run-all.sh [--quick] [--only "1 3 ..."] [--out DIR]
#   --quick  short windows (footprint 60 s, 10 starts, 2,000 nodes, 10 fast cycles, set A
#            detection only) to check the whole chain in ~10 min; the figures are then rough
#   --only   run only these steps (numbers above)
#   --out    where every step's full output goes (default /tmp/sr-bench-<date>); the
#            summary at the end repeats each step's table
# Each step is its own script or binary with its own --help; this one only runs them in
# order, on one build, and keeps their outputs. Nothing here asserts a figure.
# Needs what the steps need (cargo, openssl, curl, jq, sqlite3, python3, root for the labs).
set -euo pipefail

QUICK=0
ONLY="1 2 3 4 5 6 7"
OUT="/tmp/sr-bench-$(date +%Y%m%d-%H%M%S)"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --only) ONLY="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
mkdir -p "$OUT"

if [ "$QUICK" = 1 ]; then
    FOOTPRINT=(--duration 60); STARTS=(--runs 10); NODES=2000; CYCLES=10; SETS="3.0"
    DETECT=(db_cluster:db_cluster_set_a broker_cluster:broker_cluster_set_a)
else
    FOOTPRINT=(); STARTS=(); NODES=10000; CYCLES=40; SETS="3.0 4.0 4.1"
    DETECT=(db_cluster:db_cluster_set_a db_cluster:db_cluster_set_b db_cluster:db_cluster_patroni41
            broker_cluster:broker_cluster_set_a broker_cluster:broker_cluster_set_b
            packaging:deb_under_real_systemd)
fi

wants() { [[ " $ONLY " == *" $1 "* ]]; }
# step N TITLE CMD...: runs one step (Nb: a second part of step N), its output to the terminal and to $OUT/N.log; a step
# that fails is reported and the others still run.
FAILED=()
step() {
    local n="$1" title="$2"; shift 2
    wants "${n%b}" || return 0
    echo
    echo "=== $n. $title: $*" | tee "$OUT/$n.log"
    if ! "$@" 2>&1 | tee -a "$OUT/$n.log"; then
        FAILED+=("$n")
        echo "=== $n failed (see $OUT/$n.log)"
    fi
}

echo "status-reporter benchmarks, $(git rev-parse --short HEAD), $(date -u +%FT%TZ)," \
    "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); outputs in $OUT"

# Step 1 measures the packaged binaries (static glibc, target triple, DT_RELR, the agent's
# hot-code order), built by packaging/build.sh's own cargo command: a no-op when they are
# fresh. Steps 1 and 2 also need a dynamic `dist` status-reporter: the static one cannot run
# `collector init`/`configure` on a host whose nsswitch.conf names an NSS module
# (BENCHMARKS.md, "Start to first report"), so it runs the collectors and `configure`.
PKG="$ROOT/target/x86_64-unknown-linux-gnu/dist"
if wants 1; then bash packaging/build.sh --binaries-only; fi
if wants 1 || wants 2; then cargo build --profile dist --bin status-reporter; fi
# (Unstripped, for step 7's function names; the cfg is the packaged build's verifier backend.)
if wants 3 || wants 4 || wants 7; then
    CARGO_PROFILE_RELEASE_STRIP=none RUSTFLAGS='--cfg curve25519_dalek_backend="avx512"' \
        cargo build --release -p sr-collector --bin collector-bench
fi

step 1 "agent footprint beside node_exporter (the packaged build)" bash bench/agent-footprint.sh \
    --bin "$PKG/status-reporter" --agent-bin "$PKG/status-reporter-agent" \
    --collector-bin target/dist/status-reporter ${FOOTPRINT[@]+"${FOOTPRINT[@]}"}
# The same on a db node (issue 17's 5 MiB aim): patroni, etcd and postgres probes against
# one real Patroni 3.0 + etcd + PostgreSQL member, the session and process watches on.
step 1b "agent footprint on a db node beside node_exporter (the packaged build)" \
    bash bench/agent-footprint.sh --role db \
    --bin "$PKG/status-reporter" --agent-bin "$PKG/status-reporter-agent" \
    --collector-bin target/dist/status-reporter ${FOOTPRINT[@]+"${FOOTPRINT[@]}"}
step 2 "start to first report" bash bench/first-report.sh --no-build "${STARTS[@]}"
step 3 "collector ingest beside bare TLS, and /cluster-status" \
    target/release/collector-bench --nodes "$NODES" --view-shape skew
step 4 "the per-report steps in process" target/release/collector-bench --micro
step 5 "db probe fast cycle against real Patroni" bash bench/db-fast-cycle.sh --cycles "$CYCLES" --sets "$SETS"
# The detection figures come from the real-cluster suites (SUITE:TEST), which print BENCH
# lines and assert nothing on time: Patroni killed (db_cluster), beam.smp killed
# (broker_cluster), a unit killed under real systemd with the packaged agent (packaging).
detect() {
    local t
    for t in "${DETECT[@]}"; do
        cargo test --test "${t%%:*}" "${t#*:}" -- --nocapture 2>&1 | grep -E 'BENCH|test result'
    done
}
step 6 "detection on the real clusters (Patroni, RabbitMQ, a systemd unit)" detect
step 7 "collector instructions per report (callgrind), beside bare TLS and one verify" \
    target/release/collector-bench --count --out "$OUT/callgrind"

echo
echo "=== summary ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
for n in $(for s in $ONLY; do echo "$s ${s}b"; done); do
    [ -f "$OUT/$n.log" ] || continue
    head -1 "$OUT/$n.log"
    # Each step's tables: the lines that look like table rows or result lines.
    grep -E '^\||^(process|agent|node_exporter|this|bin2|proc|systemctl) |median|p50|BENCH' "$OUT/$n.log" \
        | grep -v '^===' | head -40 || true
done
if ((${#FAILED[@]})); then
    echo "failed steps: ${FAILED[*]}"
    exit 1
fi
