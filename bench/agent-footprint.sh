#!/usr/bin/env bash
# Agent footprint benchmark: steady-state RSS and CPU per cycle of `status-reporter run`
# probing this host every second and pushing to 3 real collectors over TLS on loopback,
# side by side with Debian's prometheus-node-exporter scraped every second.
#
# Usage: bench/agent-footprint.sh [--duration SECS] [--profile dist|release] [--no-build]
#                                 [--bin PATH] [--bin2 PATH [--label TEXT]]
#   --duration  measurement window after a 20 s warm-up (default 240)
#   --profile   cargo profile to build and measure (default dist: fat LTO, opt-level s)
#   --no-build  measure target/<profile>/status-reporter as it is
#   --bin       measure this binary instead (implies --no-build)
#   --bin2      a second binary whose "proc" agent runs in the same window (before/after)
#   --label     the name of that second agent in the table (default bin2)
#   --also LABEL=PATH  one more "proc" agent of another binary (repeatable); it is
#               started as PATH run --config CONFIG
#   --agent-bin PATH  the agent-only binary the packaged unit runs, measured as "agent"
#               beside `status-reporter run` (default: status-reporter-agent next to the
#               measured binary, built with it unless --no-build; skipped when absent)
#   --role node|db  the probes every agent runs (default node): node = host, services, tcp
#               and https to a collector (bench/lib.sh footprint_probes_toml); db = a db
#               node's: host, services, patroni, etcd and postgres (db_probes_toml) against
#               one real Patroni 3.0 + etcd + PostgreSQL 15 member over TLS, started here by
#               tests/lab/patroni-up.sh and torn down on exit (the session watch holds its
#               PostgreSQL session, as on a real db node)
#   --collector-bin  the binary the collectors (and `configure`) run, default --bin: the
#               static packaged build cannot run `collector init`/`configure` on a host
#               whose nsswitch.conf names an NSS module (see BENCHMARKS.md)
#   KEEP=1      keep the work directory (configs, logs, samples) instead of removing it
# Figures and their reading: the "Agent footprint" section of BENCHMARKS.md.
#
# What runs, all started and killed by this script (by pid):
#   - 3 collectors (`status-reporter collector run`), one CA made with openssl, one shared
#     token store (copied), as the managers of one cluster;
#   - [--role db] one Patroni member + etcd + PostgreSQL (tests/lab/patroni-up.sh);
#   - agent "proc": host + services + tcp + http probes (--role db: see above); systemd is not PID 1 here, so the
#     services probe scans /proc/*/comm for its processes;
#   - agent "systemctl": the same, but its services probe sees a fixture /proc whose PID 1
#     is `systemd`, so it spawns `systemctl show` every cycle as it does on a systemd host
#     (systemctl then fails fast: no systemd bus here, so this is a lower bound of that path);
#   - [--bin2] agent "proc" of a second binary; "agent" and every --also: the same probes;
#   - prometheus-node-exporter on a loopback port, scraped by curl once per second.
# CPU is utime+stime+cutime+cstime from /proc/PID/stat (children included: systemctl),
# RSS is VmRSS from /proc/PID/status and Pss from /proc/PID/smaps_rollup, sampled every 5 s.
# Cycles are counted from the report seq the first collector stored (3 seqs per cycle, one
# per manager). A final 30 s phase with debug logs measures the whole cycle (probes + pushes).
# Needs: cargo, openssl, curl, sqlite3, jq, python3; apt-installs prometheus-node-exporter.
set -euo pipefail

DURATION=240
PROFILE=dist
BUILD=1
BIN=""
BIN2=""
LABEL2="bin2"
EXTRA=()
COLLECTOR_BIN=""
AGENT_BIN=""
ROLE=node
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --bin) BIN="$2"; BUILD=0; shift 2 ;;
        --bin2) BIN2="$2"; shift 2 ;;
        --label) LABEL2="$2"; shift 2 ;;
        --also) EXTRA+=("$2"); shift 2 ;;
        --collector-bin) COLLECTOR_BIN="$2"; shift 2 ;;
        --agent-bin) AGENT_BIN="$2"; shift 2 ;;
        --role) ROLE="$2"; shift 2 ;;
        -h|--help) sed -n '2,46p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. "$ROOT/bench/lib.sh"
pick_binary
if [ "$BUILD" = 1 ]; then
    echo "== building: cargo build --profile $PROFILE --bin status-reporter-agent"
    cargo build --profile "$PROFILE" --bin status-reporter-agent
fi
AGENT_BIN="${AGENT_BIN:-$(dirname "$BIN")/status-reporter-agent}"
if [ -x "$AGENT_BIN" ]; then
    EXTRA=("agent=$AGENT_BIN" ${EXTRA[@]+"${EXTRA[@]}"})
else
    echo "no agent-only binary at $AGENT_BIN: measuring \`status-reporter run\` only"
fi
for tool in openssl curl sqlite3 jq python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
NE=/usr/bin/prometheus-node-exporter
if [ ! -x "$NE" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-node-exporter >/dev/null
fi

W="$(mktemp -d /tmp/sr-footprint.XXXXXX)"
trap cleanup EXIT INT TERM

# Every role runs its own copy of the binary (same file name, so the same comm, `status-reporter`): page
# cache pages of one file are shared, and PSS would otherwise be split between the
# collectors and the agents. A node runs the agent alone.
mkdir -p "$W/bin/collector" "$W/bin/proc" "$W/bin/systemctl"
cp "${COLLECTOR_BIN:-$BIN}" "$W/bin/collector/status-reporter"
cp "$BIN" "$W/bin/proc/status-reporter"
cp "$BIN" "$W/bin/systemctl/status-reporter"
CBIN="$W/bin/collector/status-reporter"
if [ -n "$BIN2" ]; then
    EXTRA=("$LABEL2=$BIN2" ${EXTRA[@]+"${EXTRA[@]}"})
fi
for e in ${EXTRA[@]+"${EXTRA[@]}"}; do
    mkdir -p "$W/bin/${e%%=*}"
    cp "${e#*=}" "$W/bin/${e%%=*}/status-reporter"
done

case "$ROLE" in node|db) ;; *) echo "--role: node or db, not $ROLE" >&2; exit 2 ;; esac
echo "== PKI (openssl, EC P-256)"
make_pki
if [ "$ROLE" = db ]; then
    echo "== a db node's services: Patroni 3.0 + etcd + PostgreSQL 15 (tests/lab/patroni-up.sh, TLS)"
    db_lab_up
fi

echo "== 3 collectors on loopback (TLS, one shared token store)"
start_collectors 3
echo "   managers: ${MANAGERS[*]}"

echo "== node_exporter on loopback, scraped every second"
NE_PORT="$(free_ports 1)"
"$NE" --web.listen-address="127.0.0.1:$NE_PORT" > "$W/ne.log" 2>&1 &
NE_PID=$!
PIDS+=("$NE_PID")
wait_for 30 curl -sf -o /dev/null "http://127.0.0.1:$NE_PORT/metrics"
(
    # One scrape per second, as Prometheus would at scrape_interval: 1s; one line per scrape.
    while :; do
        curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$NE_PORT/metrics" && echo ok >> "$W/scrapes"
        sleep 1
    done
) &
PIDS+=($!)

# A fixture procfs for the systemctl variant: PID 1 is systemd, nothing else.
mkdir -p "$W/fakeproc/1"
echo systemd > "$W/fakeproc/1/comm"


# footprint_agent NAME PROC_ROOT BIN: configure_agent with the probes of the role.
footprint_agent() {
    probes_toml "$ROLE" "$2" > "$W/probes-$1.toml"
    # configure is not in the agent-only binary: the full one (the collectors' copy) runs it.
    CONF_BIN="$CBIN" PROBES_TOML="$W/probes-$1.toml" configure_agent "$1" "$3"
}

# start_agent NAME BIN LOGLEVEL: runs it in the background; its pid is in $AGENT_PID.
# Without RUST_BACKTRACE/RUST_LIB_BACKTRACE, as under the unit: set in a developer's shell,
# they make every error capture a backtrace, which maps the unwinder's code too.
start_agent() {
    env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE STATUS_REPORTER_LOG="$3" "$2" run --config "$W/agent-$1/agent.toml" > /dev/null 2> "$W/agent-$1/log" &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
}

echo "== agents: reporting_freq = 1, 3 managers"
footprint_agent proc /proc "$W/bin/proc/status-reporter"
footprint_agent systemctl "$W/fakeproc" "$W/bin/systemctl/status-reporter"
start_agent proc "$W/bin/proc/status-reporter" info; A_PROC=$AGENT_PID
start_agent systemctl "$W/bin/systemctl/status-reporter" info; A_SYSD=$AGENT_PID
NAMES=(proc systemctl node_exporter)
WATCH=("$A_PROC" "$A_SYSD" "$NE_PID")
EXTRA_PIDS=()
if [ "${#EXTRA[@]}" -gt 0 ]; then
    NAMES=(proc systemctl)
    WATCH=("$A_PROC" "$A_SYSD")
    for e in ${EXTRA[@]+"${EXTRA[@]}"}; do
        footprint_agent "${e%%=*}" /proc "$W/bin/${e%%=*}/status-reporter"
        start_agent "${e%%=*}" "$W/bin/${e%%=*}/status-reporter" info
        NAMES+=("${e%%=*}")
        WATCH+=("$AGENT_PID")
        EXTRA_PIDS+=("$AGENT_PID")
    done
    NAMES+=(node_exporter)
    WATCH+=("$NE_PID")
fi

node_id() { sed -n 's/^node_id = "\(.*\)"/\1/p' "$W/agent-$1/agent.toml"; }
# The latest stored body of agent NAME in collector N (written behind every 0.5 s).
latest_body() {
    sqlite3 -readonly "$W/c$2/state/collector.db" \
        "select body from latest where node_id = '$(node_id "$1")';" 2>/dev/null
}
latest_seq() { latest_body "$1" "$2" | jq -r '.status_reporter.seq // empty'; }
has_report() { [ -n "$(latest_seq "$1" 1)" ]; }
for n in "${NAMES[@]}"; do
    [ "$n" = node_exporter ] && continue
    wait_for 30 has_report "$n" || { tail -5 "$W/agent-$n/log" >&2; exit 1; }
done

echo "== warm-up 20 s"
sleep 20

cpu_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }
# The ticks field positions assume no spaces in comm: true for these binaries.
TCK="$(getconf CLK_TCK)"
declare -A CPU0 SEQ0
for i in "${!WATCH[@]}"; do CPU0[$i]="$(cpu_ticks "${WATCH[$i]}")"; done
for n in "${NAMES[@]}"; do [ "$n" = node_exporter ] || SEQ0[$n]="$(latest_seq "$n" 1)"; done
SCRAPES0="$(wc -l < "$W/scrapes")"
T0="$(date +%s.%N)"
LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== measuring for $DURATION s (load average at start: $LOAD0)"
: > "$W/samples"
: > "$W/cycle_ms"
end=$((SECONDS + DURATION))
while [ "$SECONDS" -lt "$end" ]; do
    for i in "${!WATCH[@]}"; do
        pid="${WATCH[$i]}"
        rss="$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")"
        pss="$(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup")"
        thr="$(awk '/^Threads:/{print $2}' "/proc/$pid/status")"
        anon="$(awk '/^RssAnon:/{print $2}' "/proc/$pid/status")"
        echo "${NAMES[$i]} $rss $pss $thr $anon" >> "$W/samples"
    done
    for n in "${NAMES[@]}"; do
        [ "$n" = node_exporter ] && continue
        latest_body "$n" 1 | jq -r --arg n "$n" \
            '"\($n) \(.status_reporter.agent_health.last_cycle_ms) \(.status_reporter.node_status) \([(.status_reporter.services // {}) | to_entries[] | "\(.key | gsub(" "; "_"))=\(.value.duration_ms)"] | join(",")) \([(.status_reporter.reasons // [])[].code] | join(","))"' \
            >> "$W/cycle_ms" || true
    done
    sleep 5
done
T1="$(date +%s.%N)"
LOAD1="$(cut -d' ' -f1-3 /proc/loadavg)"
declare -A CPU1 SEQ1
for i in "${!WATCH[@]}"; do CPU1[$i]="$(cpu_ticks "${WATCH[$i]}")"; done
for n in "${NAMES[@]}"; do [ "$n" = node_exporter ] || SEQ1[$n]="$(latest_seq "$n" 1)"; done
SCRAPES1="$(wc -l < "$W/scrapes")"

WALL="$(echo "$T1 - $T0" | bc -l)"
echo
echo "== results (role $ROLE): window $(printf %.0f "$WALL") s, load average $LOAD0 -> $LOAD1, $(nproc) CPUs"
echo "binary: $BIN, $(stat -c %s "$BIN") bytes ($(awk "BEGIN{printf \"%.2f\", $(stat -c %s "$BIN")/1048576}") MiB), $(file -b "$BIN" | grep -o 'stripped\|not stripped' | head -1)"
for e in ${EXTRA[@]+"${EXTRA[@]}"}; do echo "${e%%=*}: ${e#*=}, $(stat -c %s "${e#*=}") bytes"; done
printf '%-14s %8s %8s %8s %9s %7s %7s %8s %9s %9s\n' process "RSS_MiB" "RSS_max" "PSS_MiB" "anon_MiB" threads cycles "CPU_ms" "ms/cycle" "%core"
for i in "${!WATCH[@]}"; do
    n="${NAMES[$i]}"
    rss="$(awk -v n="$n" '$1==n{print $2}' "$W/samples" | median)"
    rmax="$(awk -v n="$n" '$1==n{print $2}' "$W/samples" | sort -n | tail -1)"
    pss="$(awk -v n="$n" '$1==n{print $3}' "$W/samples" | median)"
    thr="$(awk -v n="$n" '$1==n{print $4}' "$W/samples" | median)"
    anon="$(awk -v n="$n" '$1==n{print $5}' "$W/samples" | median)"
    if [ "$n" = node_exporter ]; then
        cycles=$((SCRAPES1 - SCRAPES0))
    else
        cycles=$(( (SEQ1[$n] - SEQ0[$n]) / 3 ))
    fi
    cpu_ms="$(echo "(${CPU1[$i]} - ${CPU0[$i]}) * 1000 / $TCK" | bc -l)"
    awk -v n="$n" -v r="$rss" -v rm="$rmax" -v p="$pss" -v a="$anon" -v t="$thr" -v c="$cycles" -v ms="$cpu_ms" -v w="$WALL" \
        'BEGIN{printf "%-14s %8.2f %8.2f %8.2f %9.2f %7s %7d %8.0f %9.2f %8.3f%%\n", n, r/1024, rm/1024, p/1024, a/1024, t, c, ms, (c>0?ms/c:0), ms/(w*1000)*100}'
done
echo "(cycles: agents = report seq delta / 3 managers; node_exporter = completed scrapes)"
echo
echo "probe phase per cycle (agent_health.last_cycle_ms, sampled every 5 s):"
for n in "${NAMES[@]}"; do
    [ "$n" = node_exporter ] && continue
    awk -v n="$n" '$1==n{print $2}' "$W/cycle_ms" | sort -n | awk -v n="$n" \
        '{a[NR]=$1} END {if (NR) printf "  %-10s median %s ms, max %s ms over %d samples\n", n, a[int((NR+1)/2)], a[NR], NR}'
    awk -v n="$n" '$1==n{print "status", $3, "reasons:", ($5 == "" ? "none" : $5)}' "$W/cycle_ms" | sort | uniq -c | sort -rn | head -2 | sed 's/^/      /'
done

echo
echo "== whole cycle (probes + push to 3 managers), 30 s with debug logs, agent proc only"
kill "$A_SYSD" 2>/dev/null || true
kill "$A_PROC" 2>/dev/null || true
for p in ${EXTRA_PIDS[@]+"${EXTRA_PIDS[@]}"}; do kill "$p" 2>/dev/null || true; done
wait "$A_PROC" "$A_SYSD" 2>/dev/null || true
start_agent proc "$W/bin/proc/status-reporter" "warn,sr_agent=debug"
sleep 32
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
python3 - "$W/agent-proc/log" <<'PY'
import re, sys, datetime, statistics
ts = lambda s: datetime.datetime.fromisoformat(s.rstrip("Z")).timestamp()
ansi = re.compile(r"\x1b\[[0-9;]*m")
cycles, cur = [], None
for line in open(sys.argv[1], errors="replace"):
    line = ansi.sub("", line)
    m = re.match(r"(\S+)\s+DEBUG\s+(.*)", line)
    if not m:
        continue
    t, msg = ts(m.group(1)), m.group(2)
    if msg.startswith("cycle complete"):
        ms = int(re.search(r"cycle_ms=(\d+)", msg).group(1))
        cur = {"probes_ms": ms, "end": t, "delivered": []}
        cycles.append(cur)
    elif msg.startswith("report delivered") and cur is not None:
        cur["delivered"].append(t)
whole = [c["probes_ms"] + (max(c["delivered"]) - c["end"]) * 1000 for c in cycles if len(c["delivered"]) == 3]
push = [(max(c["delivered"]) - c["end"]) * 1000 for c in cycles if len(c["delivered"]) == 3]
if whole:
    q = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))]
    print(f"  {len(whole)} cycles delivered to all 3 managers (of {len(cycles)})")
    print(f"  push to the last of 3 managers after the probes: median {statistics.median(push):.1f} ms, p90 {q(push, .9):.1f} ms, max {max(push):.1f} ms")
    print(f"  whole cycle (probes + push): median {statistics.median(whole):.1f} ms, p90 {q(whole, .9):.1f} ms, max {max(whole):.1f} ms")
else:
    print("  no complete cycles found in the debug log")
PY
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
