#!/usr/bin/env bash
# Writes packaging/agent-hot.order: the functions of `status-reporter-agent` that a real run
# executes, one linker symbol a line, which build.rs hands to the linker so that they are
# placed first and together in the agent's .text (BENCHMARKS.md, "Agent footprint": the
# kernel maps text 64 KiB around each fault, so the agent's resident text follows how far
# apart the code it runs is spread).
#
# Usage: packaging/scripts/hot-symbols.sh [--bin AGENT] [--map MAP] [--collector-bin BIN]
#                                         [--seconds N] [--out FILE]
#   --bin            the agent binary to profile (default: the packaged build,
#                    target/x86_64-unknown-linux-gnu/dist/status-reporter-agent; run
#                    packaging/build.sh first)
#   --map            its link map (default: the newest status-reporter-agent.map that
#                    build.rs had the linker write under target/.../dist/build/)
#   --collector-bin  the binary the collectors and `configure` run (default
#                    target/debug/status-reporter: the static build cannot run `configure`
#                    on a host whose nsswitch.conf names an NSS module)
#   --seconds        how long the agent runs under callgrind after its first stored report
#                    (default 40: at valgrind's speed, a dozen 1 s cycles)
#   --out            where the list goes (default packaging/agent-hot.order)
#   --no-faults      skip the native page-fault pass (see below)
#   --role node|db   the probes the profiled agent runs (default node): node = the footprint
#                    benchmark's; db = a db node's (bench/lib.sh db_probes_toml: host,
#                    services, patroni, etcd, postgres with the session watch) against one
#                    real Patroni 3.0 + etcd + PostgreSQL 15 member over TLS, started here by
#                    tests/lab/patroni-up.sh and torn down on exit. To order both roles'
#                    code, run the db role with --merge packaging/agent-hot.order
#   --merge FILE     keep FILE's symbols that this run did not see and the binary still
#                    has, after the new ones (for a rerun on a binary linked with FILE:
#                    see the native pass below)
#
# The run: an openssl CA, 3 real collectors on loopback (TLS), an agent made by the real
# `configure` with the footprint benchmark's probes (bench/lib.sh, footprint_probes_toml:
# host, services over /proc, tcp, https) at a 1 s interval, started under
# `valgrind --tool=callgrind --dump-instr=yes`, so start-up, the probes, signing and the
# pushes over TLS are all in the profile. Every executed instruction address of the agent
# binary (callgrind writes them relative to the binary, i.e. link-time addresses) is looked
# up in the link map's input sections; rustc puts each function in its own section
# (.text.<symbol>), so each hit section gives one symbol to order. They are written in the
# binary's current address order (stable diffs); the order inside the hot block does not
# matter for the footprint, only that it is one block.
# Then the same agent runs natively under `perf record -e page-faults` (a software event):
# valgrind hides AVX-512, VAES and SHA-NI from cpuid, so where glibc or ring picks code by
# CPU feature the native choice is not in callgrind's profile; every text page the native
# run faults in adds its function. With a list already applied, only the first fault of
# each 64 KiB fault-around window shows, so rerunning after a relink (with --merge, as the
# functions found natively before now sit in the hot block and fault no more) finds a few
# more; a partial or stale list only loses benefit, the link never fails.
# Every process started here is killed by pid on exit. Needs valgrind, openssl, sqlite3,
# jq, python3.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
triple=x86_64-unknown-linux-gnu
BIN="$ROOT/target/$triple/dist/status-reporter-agent"
MAP=""
COLLECTOR_BIN="$ROOT/target/debug/status-reporter"
SECONDS_RUN=40
FAULTS=1
MERGE=""
ROLE=node
OUT="$ROOT/packaging/agent-hot.order"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --map) MAP="$2"; shift 2 ;;
        --collector-bin) COLLECTOR_BIN="$2"; shift 2 ;;
        --seconds) SECONDS_RUN="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-faults) FAULTS=0; shift ;;
        --merge) MERGE="$2"; shift 2 ;;
        --role) ROLE="$2"; shift 2 ;;
        -h|--help) sed -n '2,50p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$ROLE" in node|db) ;; *) echo "hot-symbols.sh: --role node or db, not $ROLE" >&2; exit 2 ;; esac
if [ -z "$MAP" ]; then
    MAP="$(ls -t "$ROOT"/target/$triple/dist/build/status-reporter-*/out/status-reporter-agent.map 2>/dev/null | head -1 || true)"
fi
for f in "$BIN" "$MAP" "$COLLECTOR_BIN"; do
    [ -n "$f" ] && [ -e "$f" ] || { echo "hot-symbols.sh: missing ${f:-the link map} (build with packaging/build.sh, or pass --map)" >&2; exit 2; }
done
[ "$MAP" -nt "$BIN" ] || [ "$(stat -c %Y "$MAP")" -ge "$(( $(stat -c %Y "$BIN") - 5 ))" ] \
    || { echo "hot-symbols.sh: $MAP is older than $BIN: not its map" >&2; exit 2; }
for tool in valgrind openssl sqlite3 jq python3; do
    command -v "$tool" >/dev/null || { echo "hot-symbols.sh: missing tool: $tool" >&2; exit 2; }
done

. "$ROOT/bench/lib.sh"
W="$(mktemp -d /tmp/sr-hot-symbols.XXXXXX)"
trap cleanup EXIT INT TERM
CBIN="$COLLECTOR_BIN"

echo "== PKI, 3 collectors on loopback" >&2
make_pki
start_collectors 3
# The services probe expects node_exporter (footprint_probes_toml): run it, as the footprint
# benchmark does, so the profile is of a node whose status is OK, its steady state.
NE=/usr/bin/prometheus-node-exporter
if [ -x "$NE" ]; then
    NE_PORT="$(free_ports 1)"
    "$NE" --web.listen-address="127.0.0.1:$NE_PORT" > "$W/ne.log" 2>&1 &
    PIDS+=($!)
else
    echo "   no $NE: the services probe reports it missing (profile of a failing node)" >&2
fi
if [ "$ROLE" = db ]; then
    echo "== a db node's services: Patroni 3.0 + etcd + PostgreSQL 15 (tests/lab/patroni-up.sh)" >&2
    db_lab_up >&2
fi
probes_toml "$ROLE" /proc > "$W/probes.toml"
# As under the unit (see bench/agent-footprint.sh, start_agent).
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
CONF_BIN="$CBIN" PROBES_TOML="$W/probes.toml" configure_agent hot "$BIN"

echo "== the agent under callgrind, $SECONDS_RUN s after its first stored report" >&2
STATUS_REPORTER_LOG=info valgrind --tool=callgrind --dump-instr=yes --compress-strings=no \
    --compress-pos=no --callgrind-out-file="$W/callgrind.out" --log-file="$W/valgrind.log" \
    "$BIN" run --config "$W/agent-hot/agent.toml" > /dev/null 2> "$W/agent.log" &
VG_PID=$!
PIDS+=("$VG_PID")
node_id="$(sed -n 's/^node_id = "\(.*\)"/\1/p' "$W/agent-hot/agent.toml")"
stored() {
    [ -n "$(sqlite3 -readonly "$W/c1/state/collector.db" \
        "select 1 from latest where node_id = '$node_id';" 2>/dev/null)" ]
}
wait_for 120 stored || { tail -5 "$W/agent.log" "$W/valgrind.log" >&2; exit 1; }
sleep "$SECONDS_RUN"
seq="$(sqlite3 -readonly "$W/c1/state/collector.db" "select body from latest where node_id = '$node_id';" \
    | jq -r '.status_reporter.seq')"
kill -TERM "$VG_PID"
wait "$VG_PID" || true
[ -s "$W/callgrind.out" ] || { echo "hot-symbols.sh: callgrind wrote no profile" >&2; tail -5 "$W/valgrind.log" >&2; exit 1; }
echo "   report seq $seq stored by the first collector" >&2

# The native complement: the same agent without valgrind, under `perf record -e page-faults`
# (a software event: no PMU needed). Every fault in the agent's text is native code that the
# callgrind run did not execute (valgrind hides AVX-512, VAES and SHA-NI from cpuid, so
# glibc's and ring's CPU-dispatched variants differ); with the list already applied only the
# first fault of each fault-around window shows, so a rerun after a relink finds a few more.
: > "$W/faults"
if [ "$FAULTS" = 1 ] && command -v perf >/dev/null; then
    echo "== the agent natively under perf record -e page-faults, $SECONDS_RUN s" >&2
    STATUS_REPORTER_LOG=info perf record -q -e page-faults -c 1 -d -o "$W/faults.data" -- \
        "$BIN" run --config "$W/agent-hot/agent.toml" > /dev/null 2> "$W/agent-native.log" &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
    agent_pid() { pgrep -P "$PERF_PID" | head -1; }
    wait_for 30 agent_pid
    AGENT_PID="$(agent_pid)"
    # Link-time address = run-time address - the start of the binary's offset-0 mapping (PIE).
    wait_for 30 grep -q " 00000000 .*$(basename "$BIN")\$" "/proc/$AGENT_PID/maps"
    base="$(awk -v b="$(readlink -f "$BIN")" '$3 == "00000000" && $6 == b { split($1, r, "-"); print r[1]; exit }' "/proc/$AGENT_PID/maps")"
    sleep "$SECONDS_RUN"
    kill -TERM "$AGENT_PID"
    wait "$PERF_PID" || true
    # Both the faulting address and the instruction that faulted are code the agent runs
    # when they fall in its text (a data fault's address in .rodata matches no section).
    perf script -i "$W/faults.data" -F ip,addr 2>/dev/null \
        | python3 -c 'import sys; b = int(sys.argv[1], 16); [print(hex(int(t, 16) - b)) for t in sys.stdin.read().split() if int(t, 16) >= b]' "$base" \
        > "$W/faults"
    echo "   $(wc -l < "$W/faults") fault addresses" >&2
else
    echo "== no perf (or --no-faults): callgrind's list only" >&2
fi

[ -z "$MERGE" ] || cp "$MERGE" "$W/merge"
touch "$W/merge"
python3 - "$W/callgrind.out" "$MAP" "$(readlink -f "$BIN")" "$BIN" "$OUT" "$W/faults" "$W/merge" <<'PY'
import bisect, re, sys
cg, map_path, bin_real, bin_given, out, faults, merge = sys.argv[1:8]

# Executed instruction addresses of the agent binary. callgrind writes them relative to the
# object (link-time addresses for this PIE); "ob=" names the object of the lines below.
addrs, in_bin = set(), False
names = {bin_real, bin_given}
for line in open(cg, errors="replace"):
    if line.startswith("ob="):
        in_bin = line[3:].strip() in names
    elif in_bin and line.startswith("0x"):
        addrs.add(int(line.split(None, 1)[0], 16))
if not addrs:
    sys.exit("hot-symbols.sh: no instruction of the agent binary in the profile")
native = {int(t, 16) for t in open(faults).read().split()}

# lld's map: VMA LMA Size Align, then the output section, input section or symbol, each
# indented one level deeper than the one before.
sections = []  # (start, end, [symbols]) of input sections in executable output sections
out_sec, cur = None, None
for line in open(map_path, errors="replace"):
    m = re.match(r"\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+( +)(\S.*)$", line)
    if not m:
        continue
    vma, size, indent, rest = int(m.group(1), 16), int(m.group(2), 16), len(m.group(3)), m.group(4)
    if indent <= 1:
        out_sec, cur = rest, None
    elif indent <= 9:
        cur = None
        if out_sec in (".text", ".init", ".fini") and size:
            cur = (vma, vma + size, [])
            sections.append(cur)
    elif cur is not None:
        cur[2].append(rest.strip())
sections.sort()
starts = [s[0] for s in sections]
hit, only_native = {}, set()
for a in addrs | native:
    i = bisect.bisect_right(starts, a) - 1
    if i >= 0 and a < sections[i][1] and sections[i][2]:
        hit[i] = sections[i]
        if a not in addrs:
            only_native.add(i)
only_native -= {i for a in addrs for i in [bisect.bisect_right(starts, a) - 1]}
syms = [hit[i][2][0] for i in sorted(hit)]
size = sum(s[1] - s[0] for s in hit.values())
total = sum(s[1] - s[0] for s in sections)
seen = set(syms)
# Only those the binary still has: a merged list does not carry stale names along.
have = {n for sec in sections for n in sec[2]}
kept = [l.strip() for l in open(merge) if l.strip() in have and l.strip() not in seen]
with open(out, "w") as f:
    f.write("".join(s + "\n" for s in syms + kept))
if kept:
    print(f"   kept {len(kept)} symbols of the merged list", file=sys.stderr)
for i in sorted(only_native):
    print(f"   native only: {hit[i][2][0][:100]}", file=sys.stderr)
print(f"hot-symbols.sh: {len(syms)} of {len(sections)} text sections executed "
      f"({len(only_native)} seen only natively), "
      f"{size / 1024:.0f} KiB of {total / 1024:.0f} KiB; wrote {out}", file=sys.stderr)
PY
