# Shared set-up for the bench/ scripts (sourced, not run): a work directory whose processes
# are killed by pid on exit, polling, an openssl PKI, real collectors on loopback, and agents
# made by the real `configure`. The caller sets ROOT first, then W (work directory) and CBIN
# (the binary the collectors run) before using the rest.

PIDS=()

# pick_binary: builds target/$PROFILE/status-reporter when BUILD=1, and sets BIN to it unless
# BIN is set already; exits when there is no binary.
pick_binary() {
    if [ "$BUILD" = 1 ]; then
        echo "== building: cargo build --profile $PROFILE --bin status-reporter"
        cargo build --profile "$PROFILE" --bin status-reporter
    fi
    BIN="${BIN:-$ROOT/target/$PROFILE/status-reporter}"
    [ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 2; }
}
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    db_lab_down
    # KEEP=1 keeps the work directory (configs, logs, samples) for a look afterwards.
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
}

# Polls a command until it succeeds, or fails after $1 seconds.
wait_for() {
    local secs="$1"; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || { echo "timed out: $*" >&2; return 1; }
        sleep 0.1
    done
}

# make_pki: a CA and a server certificate for 127.0.0.1 in $W/pki; sets CA.
make_pki() {
    mkdir -p "$W/pki"
    (
        cd "$W/pki"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj "/CN=bench-ca" -keyout ca.key -out ca.pem \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
            -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext.cnf -out server.crt 2>/dev/null
    )
    CA="$W/pki/ca.pem"
}

# start_collectors N: N collectors on loopback sharing one token store (copied), as the
# managers of one cluster; sets MANAGERS (their addresses) and TOKEN (the db token).
start_collectors() {
    local i
    "$CBIN" collector init --config "$W/c1/collector.toml" --state-dir "$W/c1/state" \
        --cert "$W/pki/server.crt" --key "$W/pki/server.key" --listen 127.0.0.1:0 --json > "$W/tokens.json"
    TOKEN="$(jq -r .db "$W/tokens.json")"
    MANAGERS=()
    for i in $(seq 1 "$1"); do
        if [ "$i" != 1 ]; then
            mkdir -p "$W/c$i"
            cp -r "$W/c1/state" "$W/c$i/state"
            sed "s#$W/c1/state#$W/c$i/state#" "$W/c1/collector.toml" > "$W/c$i/collector.toml"
            chmod 600 "$W/c$i/collector.toml"
        fi
        STATUS_REPORTER_LOG=warn "$CBIN" collector run --config "$W/c$i/collector.toml" > "$W/c$i/out" 2> "$W/c$i/err" &
        PIDS+=($!)
        wait_for 30 grep -q "listening on" "$W/c$i/out"
        MANAGERS+=("$(sed -n 's/^listening on //p' "$W/c$i/out")")
    done
}

# configure_agent NAME BIN: a real `configure` (verifying the token against the managers)
# into $W/agent-NAME, reporting every REPORTING_FREQ seconds (default 1), with the probes
# of the file PROBES_TOML (if set) in place of the default ones. CONF_BIN (if set) runs
# `configure` and `validate` instead of BIN (see first-report.sh, --collector-bin).
configure_agent() {
    local name="$1" bin="${CONF_BIN:-$2}" dir="$W/agent-$1"
    mkdir -p "$dir"
    STATUS_REPORTER_LOG=warn "$bin" configure --config "$dir/agent.toml" --token "$TOKEN" --ca-path "$CA" \
        --node-type db --node-name "bench-$name" --reporting-freq "${REPORTING_FREQ:-1}" --state-dir "$dir/state" \
        --key-path "$dir/node.key" --managers-ip "${MANAGERS[@]}" > "$dir/configure.out"
    if [ -n "${PROBES_TOML:-}" ]; then
        sed -i '/^\[\[probes\]\]/,$d' "$dir/agent.toml"
        cat "$PROBES_TOML" >> "$dir/agent.toml"
    fi
    "$bin" validate --config "$dir/agent.toml" >/dev/null
}

# host_probe_toml: the host probe every benchmark agent runs, with thresholds far away from
# this shared machine's load, so that the status stays put.
host_probe_toml() {
    cat <<EOT
[[probes]]
kind = "host"
paths = ["/", "/tmp"]
load_per_cpu_degraded = 50.0
load_per_cpu_fail = 100.0
require_clock_sync = false
EOT
}

# footprint_probes_toml PROC_ROOT: the footprint benchmark's probes (host, services, tcp, https
# to the first manager) for an agent whose services probe reads procfs at PROC_ROOT; also the
# run that packaging/scripts/hot-symbols.sh profiles. Needs MANAGERS and CA.
footprint_probes_toml() {
    cat <<EOT
$(host_probe_toml)

[[probes]]
kind = "services"
proc_root = "$1"
units = [
  { name = "Collector", unit = "status-reporter-collector.service", process = "status-reporter" },
  { name = "Node exporter", unit = "prometheus-node-exporter.service", process = "prometheus-node" },
  { name = "Init", unit = "init.scope", process = "process_api", critical = false },
]

[[probes]]
kind = "tcp"
name = "Collector port"
address = "${MANAGERS[0]}"

[[probes]]
kind = "http"
name = "Collector API"
url = "https://${MANAGERS[0]}/api/v3.1/ok"
ca_path = "$CA"
EOT
}

# free_ports N: N free loopback TCP ports, space-separated: the lab scripts' own
# (tests/lab/lib.sh), sourced in a subshell so that its other helpers stay out of ours.
free_ports() { ( . "$ROOT/tests/lab/lib.sh"; free_ports "$1" ); }

# db_lab_up: a db node's services for the db role: one Patroni 3.0 member (REST over https
# with `verify_client: required`) + etcd (https, client certificates) + PostgreSQL 15, started
# by tests/lab/patroni-up.sh on free loopback ports in its own directory (PostgreSQL runs as
# the postgres user, so not under the caller's private W), as bench/db-fast-cycle.sh starts
# it. Sets DB_DIR, DB_PG, DB_API, DB_ETCD; cleanup tears it down (patroni-down.sh, by the
# pids recorded in DB_DIR) and deletes DB_DIR.
db_lab_up() {
    DB_DIR="$(mktemp -d /tmp/sr-bench-db.XXXXXX)"
    chmod 755 "$DB_DIR"
    local ep
    read -r DB_PG DB_API DB_ETCD ep <<< "$(free_ports 4)"
    MEMBERS=1 TLS=1 ETCD_TLS=1 PG_PORTS="$DB_PG" API_PORTS="$DB_API" ETCD_CLIENT_PORT="$DB_ETCD" \
        ETCD_PEER_PORT="$ep" OWNER_PID=$$ SCOPE=bench "$ROOT/tests/lab/patroni-up.sh" "$DB_DIR" | tail -1
}
db_lab_down() {
    [ -n "${DB_DIR:-}" ] || return 0
    "$ROOT/tests/lab/patroni-down.sh" "$DB_DIR" >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $DB_DIR"; else rm -rf "$DB_DIR"; fi
    DB_DIR=""
}

# db_probes_toml PROC_ROOT: a db node's probes against the lab of db_lab_up: host, services
# (Patroni, etcd, PostgreSQL processes, read from procfs at PROC_ROOT), patroni (`/patroni`
# over mTLS, `/cluster` every 2nd cycle), etcd (mTLS) and postgres (the monitoring role of
# patroni-up.sh). The `[events]` defaults stay on: the session watch holds one idle
# PostgreSQL session per postgres probe, and the process watch follows Patroni and
# PostgreSQL. Needs DB_DIR, DB_PG, DB_API, DB_ETCD.
db_probes_toml() {
    local tls="[probes.tls]
ca_file = \"$DB_DIR/tls/ca.crt\"
cert_file = \"$DB_DIR/tls/client.crt\"
key_file = \"$DB_DIR/tls/client.key\""
    cat <<EOT
$(host_probe_toml)

[[probes]]
kind = "services"
proc_root = "$1"
units = [
  { name = "Patroni unit", unit = "patroni.service", process = "patroni" },
  { name = "Etcd unit", unit = "etcd.service", process = "etcd" },
  { name = "PostgreSQL unit", unit = "postgresql.service", process = "postgres" },
]

[[probes]]
kind = "patroni"
url = "https://127.0.0.1:$DB_API"
member = "pg1"
cluster_every = 2
timeout_ms = 500
$tls

[[probes]]
kind = "etcd"
url = "https://127.0.0.1:$DB_ETCD"
timeout_ms = 500
$tls

[[probes]]
kind = "postgres"
port = $DB_PG
user = "${MONITOR_USER:-monitor}"
password = "${MONITOR_PASSWORD:-monitor}"
EOT
}

# probes_toml ROLE PROC_ROOT: the probes of a node of ROLE: "node" (footprint_probes_toml)
# or "db" (db_probes_toml).
probes_toml() {
    case "$1" in
        node) footprint_probes_toml "$2" ;;
        db) db_probes_toml "$2" ;;
        *) echo "unknown role: $1 (node or db)" >&2; return 2 ;;
    esac
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "-"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
