#!/usr/bin/env bash
# Runs every fuzz target for a set time (default 60 s each), after seeding its corpus from
# the golden fixtures, and prints one summary line per target (executions, crashes).
#
#   fuzz/run-all.sh                # every target, 60 s each
#   FUZZ_SECS=600 fuzz/run-all.sh  # longer
#   fuzz/run-all.sh etcd_interpret signature   # only these
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP=1
# lets it use the nightly-only sanitizer flags. Corpora (fuzz/corpus/<target>/) and crash
# inputs (fuzz/artifacts/<target>/) are not committed; a crash input is kept as a
# regression test in the owning crate instead. Exit status: 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")"
root=..
secs=${FUZZ_SECS:-60}
export RUSTC_BOOTSTRAP=1

all=(report_body signature agent_config collector_config client_file patroni_interpret etcd_interpret rabbitmq_interpret duration galera_status haproxy_stat keepalived_data history_query sse_frames passwd opensearch_health opensearch_cat_nodes minio_health pacemaker_xml proc_net_tcp agent_args accept_encoding tier2_summary fast_poll_fingerprint)
targets=("${@:-${all[@]}}")

fx=$root/probes/fixtures
golden=$root/protocol/tests/golden

# Writes one seed: a status mask byte, then the given files' bytes separated by NUL
# (the framing of fuzz_targets/frame.rs).
framed() {
  local out=$1 mask=$2; shift 2
  {
    printf "\\x$mask"
    local first=1
    for f in "$@"; do
      [ $first = 1 ] || printf '\0'
      first=0
      cat "$f"
    done
  } > "$out"
}

seed() {
  local t=$1 dir=corpus/$1
  mkdir -p "$dir"
  case $t in
    report_body)
      cp "$golden"/report-*.json "$dir"/
      jq -c "del(.status_reporter)" "$golden"/report-extended-v1.json > "$dir/seed-legacy.json" ;;
    signature)
      # The shape the agent sends (SignedEnvelope::to_header in protocol/src/signing.rs).
      printf 'v1 key=%s boot=0b5e6f1c-8a2d-4c3e-9f00-123456789abc seq=42 ts=1700000000000 sig=%s' \
        "$(head -c 32 /dev/zero | base64 -w0)" "$(head -c 64 /dev/zero | base64 -w0)" > "$dir/seed-header" ;;
    agent_config)
      cp "$root"/packaging/agent.example.toml "$dir"/ 2>/dev/null || true
      find "$root"/tests -name '*.toml' -exec cp {} "$dir"/ \; 2>/dev/null || true ;;
    sse_frames)
      printf ': hi\nretry: 2000\n\nid: 7\nevent: transition\ndata: {"id":7}\n\n' > "$dir/seed-stream" ;;
    passwd)
      { printf 'status-reporter\n'; cat /etc/passwd; } > "$dir/seed-etc-passwd" ;;
    history_query)
      printf 'node=db1&service=db&since=2h&until=2026-11-29T07:00:00Z&limit=50&after=7' > "$dir/seed-all" ;;
    collector_config)
      printf 'listen = "127.0.0.1:53333"\nstate_dir = "/var/lib/status-reporter"\nplain_http = true\n' > "$dir/seed-plain"
      printf 'listen = "0.0.0.0:53333"\nstate_dir = "/s"\n[tls]\ncert_path = "/c.pem"\nkey_path = "/k.pem"\n' > "$dir/seed-tls" ;;
    client_file)
      printf 'manager = "https://127.0.0.1:53333"\nca_path = "/etc/ca.pem"\ntoken = "srt_x"\n' > "$dir/seed-tls"
      printf 'manager = "http://127.0.0.1:1"\ntoken = "t"\n' > "$dir/seed-plain" ;;
    duration)
      printf '7d' > "$dir/seed-days"; printf '90s' > "$dir/seed-secs" ;;
    agent_args)
      printf 'run\0--config\0/etc/status-reporter/agent.toml' > "$dir/seed-unit"
      printf -- '--config=/a.toml\0--version' > "$dir/seed-flags" ;;
    patroni_interpret)
      for p in "$fx"/patroni/*patroni*.json; do
        for c in "$fx"/patroni/*cluster*.json; do
          framed "$dir/seed-$(basename "$p" .json)-$(basename "$c" .json)" 07 "$p" "$c" "$fx/patroni/config.json"
        done
      done ;;
    galera_status)
      cp "$fx"/galera-10.11/*.tsv "$dir"/ ;;
    haproxy_stat)
      cp "$fx"/haproxy-2.6/*.csv "$dir"/ ;;
    opensearch_health)
      # Byte 0 picks the status (0: 200, 1: 408, 2: 401, 3: 403, 4: 503), then the body.
      for f in green yellow red; do
        { printf '\x00'; cat "$fx/opensearch-2/health-$f.json"; } > "$dir/seed-$f"
      done
      { printf '\x01'; cat "$fx/opensearch-2/health-timed-out.json"; } > "$dir/seed-timed-out"
      { printf '\x02'; cat "$fx/opensearch-2/health-401.txt"; } > "$dir/seed-401"
      { printf '\x03'; cat "$fx/opensearch-2/health-403.json"; } > "$dir/seed-403"
      { printf '\x04'; cat "$fx/opensearch-2/health-503-no-cluster-manager.json"; } > "$dir/seed-503" ;;
    opensearch_cat_nodes)
      cp "$fx"/opensearch-2/cat-nodes-*.json "$dir"/ ;;
    minio_health)
      # live, cluster, maintenance heads separated by NUL.
      m=$fx/minio-2025-10-15
      for c in ok healing no-quorum offline; do
        { cat "$m/live-ok.http"; printf '\0'; cat "$m/cluster-$c.http"; printf '\0'; cat "$m/maintenance-412.http"; } > "$dir/seed-$c"
      done
      { cat "$m/live-initialising.http"; printf '\0'; cat "$m/cluster-offline.http"; } > "$dir/seed-initialising" ;;
    proc_net_tcp)
      head -c 65536 /proc/net/tcp > "$dir/seed-tcp"; head -c 65536 /proc/net/tcp6 > "$dir/seed-tcp6" || true
      printf 'https://127.0.0.1:8008/patroni' > "$dir/seed-url" ;;
    fast_poll_fingerprint)
      for d in patroni patroni-4.0.7 patroni-4.1.5; do
        for f in "$fx/$d"/*-patroni*.json; do cp "$f" "$dir/$d-$(basename "$f")"; done
      done
      cp "$fx"/etcd-3.5.16/health-*.json "$dir"/ ;;
    keepalived_data)
      cp "$fx"/keepalived-2.2/data-*.txt "$dir"/ ;;
    pacemaker_xml)
      cp "$fx"/pacemaker-2.1/*.xml "$dir"/ ;;
    tier2_summary)
      cp "$golden"/summary-v1.json "$dir"/ ;;
    etcd_interpret)
      for s in "$fx"/etcd/maintenance-*.json; do
        framed "$dir/seed-$(basename "$s" .json)-ok" 03 "$s" "$fx/etcd/health-ok.json"
        framed "$dir/seed-$(basename "$s" .json)-fail" 01 "$s" "$fx/etcd/health-fail.json"
      done ;;
    rabbitmq_interpret)
      # Golden raw inputs are serialized `rabbitmq::Raw`: take each reply's status and body.
      for r in "$root"/probes/tests/golden/broker/raw/*.json; do
        local mask=0 i=0 tmp files=()
        tmp=$(mktemp -d)
        for k in overview local_alarms port_listener virtual_hosts nodes certificate_expiration; do
          if [ "$(jq -r ".$k.status // empty" "$r")" = 200 ]; then mask=$((mask | (1 << i))); fi
          if jq -e ".$k.body" "$r" > /dev/null 2>&1; then
            jq -j ".$k.body" "$r" > "$tmp/$i"
            files+=("$tmp/$i")
          fi
          i=$((i + 1))
        done
        framed "$dir/seed-$(basename "$r" .json)" "$(printf %02x $mask)" "${files[@]}"
        rm -rf "$tmp"
      done ;;
  esac
}

cargo fuzz build
status=0
summary=()
for t in "${targets[@]}"; do
  seed "$t"
  log=$(mktemp)
  rc=0
  cargo fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1 > "$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
  summary+=("$t executions=${execs:-?} crash_files=$crashes exit=$rc")
  if [ $rc != 0 ]; then status=1; tail -40 "$log"; fi
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
exit $status
