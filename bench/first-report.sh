#!/usr/bin/env bash
# Start to first report: the time from exec of `status-reporter run` to the agent's log line
# "report delivered" (the collector answered 200 to its first report), over many starts of
# the same agent, for one binary or two side by side (interleaved, so background load hits
# both alike).
#
# Usage: bench/first-report.sh [--runs N] [--freq SECS] [--profile P] [--no-build]
#                              [--bin PATH] [--bin2 PATH [--label TEXT]]
#   --runs      starts per binary (default 40)
#   --freq      the agent's reporting_freq (default 5, the default interval)
#   --profile   cargo profile to build and measure (default dist)
#   --no-build  measure target/<profile>/status-reporter as it is
#   --bin       measure this binary instead (implies --no-build)
#   --bin2      a second binary, started alternately with the first
#   --label     the name of that second binary in the output (default bin2)
#   --collector-bin  the binary the collector runs (default: --bin). The static packaged
#               build cannot run `collector init` on a host whose nsswitch.conf names an
#               NSS module (glibc dlopen from a static binary), so measure it with another
#               build's collector (which also runs `configure` for the agents)
#   KEEP=1      keep the work directory
# Figures and their reading: BENCHMARKS.md, "Start to first report".
#
# One real collector (TLS on loopback, openssl CA), one agent per binary made by the real
# `configure`, probing the host and the collector's port (a few ms). Every start is a new
# boot for the collector (a new boot id, so the boot-opening path is measured), and each
# agent is stopped (SIGTERM) once its first report is delivered. The start time is bash's
# $EPOCHREALTIME read in the subshell just before it execs the agent; the end is the
# timestamp tracing prints on the "report delivered" line (sr_agent=debug).
# Needs: cargo, openssl, jq, python3.
set -euo pipefail

RUNS=40
FREQ=5
PROFILE=dist
BUILD=1
BIN=""
BIN2=""
LABEL2="bin2"
CBIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --freq) FREQ="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN="$2"; BUILD=0; shift 2 ;;
        --bin2) BIN2="$2"; shift 2 ;;
        --label) LABEL2="$2"; shift 2 ;;
        --collector-bin) CBIN="$2"; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. "$ROOT/bench/lib.sh"
pick_binary
for tool in openssl jq python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done

W="$(mktemp -d /tmp/sr-first-report.XXXXXX)"
trap cleanup EXIT INT TERM

NAMES=(this)
declare -A BINS=([this]="$BIN")
if [ -n "$BIN2" ]; then
    NAMES+=("$LABEL2")
    BINS[$LABEL2]="$BIN2"
fi
CBIN="${CBIN:-$BIN}"

make_pki
start_collectors 1
cat > "$W/probes.toml" <<EOF2
[[probes]]
kind = "host"
paths = ["/"]
load_per_cpu_degraded = 50.0
load_per_cpu_fail = 100.0
require_clock_sync = false

[[probes]]
kind = "tcp"
name = "Collector port"
address = "${MANAGERS[0]}"
EOF2
for n in "${NAMES[@]}"; do
    CONF_BIN="$CBIN" REPORTING_FREQ="$FREQ" PROBES_TOML="$W/probes.toml" configure_agent "$n" "${BINS[$n]}"
done

# one_start NAME: starts the agent, waits for its first delivered report, stops it, and
# appends "NAME start_to_report_ms" to $W/results.
one_start() {
    local n="$1" dir="$W/agent-$1" pid
    : > "$dir/log"
    (
        echo "$EPOCHREALTIME" > "$dir/t0"
        STATUS_REPORTER_LOG="warn,sr_agent=debug" exec "${BINS[$n]}" run --config "$dir/agent.toml" 2> "$dir/log" > /dev/null
    ) &
    pid=$!
    PIDS+=("$pid")
    if ! wait_for 30 grep -q "report delivered" "$dir/log"; then
        tail -5 "$dir/log" >&2
        exit 1
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    python3 - "$n" "$dir/t0" "$dir/log" >> "$W/results" <<'PY'
import datetime, re, sys
name, t0, log = sys.argv[1], float(open(sys.argv[2]).read().replace(",", ".")), sys.argv[3]
ansi = re.compile(r"\x1b\[[0-9;]*m")
for line in open(log, errors="replace"):
    line = ansi.sub("", line)
    if "report delivered" in line:
        t = datetime.datetime.fromisoformat(line.split()[0].rstrip("Z")).replace(
            tzinfo=datetime.timezone.utc).timestamp()
        print(f"{name} {(t - t0) * 1000:.1f}")
        break
PY
}

LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $RUNS starts per binary, interleaved, reporting_freq = $FREQ (load average $LOAD0)"
: > "$W/results"
for r in $(seq 1 "$RUNS"); do
    for n in "${NAMES[@]}"; do one_start "$n"; done
done
echo
echo "== start (exec) to first report delivered, ms; load average $LOAD0 -> $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
printf '%-10s %6s %8s %8s %8s %8s %8s\n' binary starts median p10 p90 min max
for n in "${NAMES[@]}"; do
    awk -v n="$n" '$1==n{print $2}' "$W/results" | sort -n | awk -v n="$n" \
        '{a[NR]=$1} END {printf "%-10s %6d %8.1f %8.1f %8.1f %8.1f %8.1f\n", n, NR,
            (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[int(NR*0.1)+1], a[int(NR*0.9)], a[1], a[NR]}'
done
for n in "${NAMES[@]}"; do echo "  $n: ${BINS[$n]}"; done
