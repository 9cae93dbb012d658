//! End to end on a real db cluster: Patroni ×3 + etcd + PostgreSQL (started by
//! `tests/harness/lab/patroni.rs`; Patroni REST over HTTPS with `verify_client: required`,
//! etcd over HTTPS with `--client-cert-auth`), a
//! real in-process collector, and one `status-reporter run` agent per member with the
//! `patroni`, `etcd` and `postgres` probes. The scenarios are written once and run per
//! version set (issue 13), one test and ONE cluster per set, in sequence within it, each
//! polling the collector's `cluster-status` view with a deadline:
//! - `db_cluster_set_a`: Patroni 3.0.2, etcd 3.4, PostgreSQL 15 (the host's Debian 12);
//! - `db_cluster_set_b`: Patroni 4.0.7, etcd 3.5, PostgreSQL 17 (the Debian 13 rootfs);
//! - `db_cluster_patroni41`: Patroni 4.1 (PyPI venv) on set B, scenarios 1-3, 7 and 8 only.
//!
//! The assertions are the same on every set. Patroni 4 raises the DCS ttl to at least 20 s,
//! so its failover takes ~20 s instead of ~10 s: the deadlines allow for it (no sleeps).
//!
//! 1. healthy: db OK, one leader and two replicas with their roles;
//! 2. SIGKILL the leader's Patroni: Degraded at once, then a new leader, then OK when the
//!    member rejoins; its transitions are recorded in order;
//!    Then (2b, sets A and B) three more kills with the agents at the default 5 s interval,
//!    printing kill → db Degraded (the agent's process watch wakes it), and three SIGKILLs
//!    of a replica's postmaster, printing kill → db not OK and checking that the agent's
//!    held PostgreSQL session ended (its session watch woke it);
//! 3. stop one replica: Degraded, naming it;
//! 4. stop two members: Fail;
//! 5. stop etcd: the reason says the DCS is unreachable; every member is read-only;
//! 6. kill only the leader's reporter: db stays Degraded, not Fail;
//! 7. HTTPS with client certificates works (Patroni and etcd); a wrong CA or a missing
//!    client certificate is refused with a clear reason;
//! 8. PostgreSQL over TLS: `ssl = on` on the real server (through Patroni's dynamic
//!    configuration), the postgres probe with `ca_file` is OK over an SSL session (as
//!    `pg_stat_ssl` shows), a wrong CA is refused;
//! 9. (after 6) a replication slot gone `lost`: the leader's postgres probe names it with
//!    `replication_slot_lost` (PostgreSQL 17 adds `invalidation_reason` `wal_removed`), and
//!    db is OK again once the slot is dropped;
//! 10. (set B, after 9) quorum commit (`synchronous_mode: quorum`, Patroni 4 only): one
//!     quorum standby stopped: Degraded naming it, but no `no_sync_standby` (the other one
//!     acknowledges); the second stopped too: Fail with `no_sync_standby`.
//!
//! It also prints (never asserts) the db probe cycle time and the SIGKILL → Degraded and
//! → new leader times, per set (`BENCH[set]` lines). Skips without the services (or the
//! rootfs) unless CI=true (then missing services fail).
mod harness;

use anyhow::{anyhow, Result};
use harness::lab::{
    exclusive, require_set, PatroniCluster, PatroniOpts, VersionSet, MONITOR_PASSWORD, MONITOR_USER,
};
use harness::{wait_until, Agent, Collector};
use serde_json::Value;
use sr_probes::{Finding, Probe, ProbeContext, Scheduled};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

fn node_name(member: &str) -> String {
    format!("db-{member}")
}

/// Writes member `i`'s agent config and key.
fn agent_config(c: &PatroniCluster, col: &Collector, dir: &Path, i: usize) -> Result<PathBuf> {
    let tls = c
        .tls()
        .ok_or_else(|| anyhow!("cluster started without TLS"))?;
    let member = c.member_name(i);
    let key_path = dir.join(format!("{member}.key"));
    let der = sr_protocol::signing::NodeKey::generate_pkcs8().map_err(|e| anyhow!("{e}"))?;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(
        &key_path,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    )?;
    let manager = col.addr.to_string();
    let text = format!(
        r#"node_type = "db"
node_id = "node-{member}"
node_name = "{name}"
reporting_freq = 1
token = "{token}"
ca_path = "{ca}"
managers = ["{manager}"]
key_path = "{key}"
state_dir = "{state}"

[[probes]]
kind = "patroni"
url = "{rest}"
member = "{member}"
cluster_every = 2
# Each request within the cycle budget of reporting_freq = 1 (800 ms).
timeout_ms = 500
[probes.tls]
ca_file = "{pca}"
cert_file = "{pcert}"
key_file = "{pkey}"

[[probes]]
kind = "etcd"
url = "{etcd}"
timeout_ms = 500
[probes.tls]
ca_file = "{pca}"
cert_file = "{pcert}"
key_file = "{pkey}"

[[probes]]
kind = "postgres"
port = {pg_port}
user = "{MONITOR_USER}"
password = "{MONITOR_PASSWORD}"
"#,
        name = node_name(&member),
        token = col.token("db"),
        ca = col.ca.display(),
        key = key_path.display(),
        state = dir.join(format!("agent-{member}")).display(),
        rest = c.rest_url(i),
        pca = tls.ca_cert.display(),
        pcert = tls.client_cert.display(),
        pkey = tls.client_key.display(),
        etcd = c.etcd_url(),
        pg_port = c.pg_port(i),
    );
    let path = dir.join(format!("agent-{member}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs `status-reporter cluster status` against the collector; returns its stdout and
/// asserts the db section's header. (Overall status also counts the manager and broker
/// types, which this test does not run, so only the db section is checked.)
fn cli_status(col: &Collector, want_db: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_status-reporter"))
        .args(["cluster", "status", "--manager"])
        .arg(format!("https://127.0.0.1:{}", col.addr.port()))
        .arg("--ca-path")
        .arg(&col.ca)
        .env("STATUS_REPORTER_TOKEN", col.token("admin"))
        .output()
        .expect("run cluster status");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "cluster status exit {:?}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("db ({want_db}):"))),
        "db section is not {want_db}:\n{stdout}"
    );
    stdout
}

fn db(v: &Value) -> &Value {
    &v["services"]["db"]
}

fn db_status(v: &Value) -> &str {
    db(v)["status"].as_str().unwrap_or("?")
}

fn reasons_text(v: &Value) -> String {
    let one = |r: &Value| {
        format!(
            "[{}] ({}) {}",
            r["code"].as_str().unwrap_or("?"),
            r["node"].as_str().unwrap_or("-"),
            r["message"].as_str().unwrap_or("")
        )
    };
    db(v)["reasons"]
        .as_array()
        .map(|a| a.iter().map(one).collect::<Vec<_>>().join("\n  "))
        .unwrap_or_default()
}

/// `(node name, role)` of every db node in the view.
fn roles(v: &Value) -> Vec<(String, String)> {
    db(v)["nodes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n["role"].as_str().unwrap_or("-").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn leader_in_view(v: &Value) -> Option<String> {
    roles(v)
        .into_iter()
        .find(|(_, r)| r == "leader")
        .map(|(n, _)| n)
}

/// Waits until the db view satisfies `pred`; on timeout the error shows the last view.
fn wait_view(
    col: &Collector,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<(Duration, Value)> {
    let mut last = Value::Null;
    let took = wait_until(what, timeout, POLL, || {
        let v = col.fetch_view()?;
        let ok = pred(&v);
        last = v;
        Ok(ok)
    })
    .map_err(|e| {
        anyhow!(
            "{e}\nlast db view: {} {:?}\n  {}",
            db_status(&last),
            roles(&last),
            reasons_text(&last)
        )
    })?;
    Ok((took, last))
}

fn healthy_view(v: &Value) -> bool {
    let r = roles(v);
    db_status(v) == "OK"
        && r.len() == 3
        && r.iter().filter(|(_, x)| x == "leader").count() == 1
        && r.iter().filter(|(_, x)| x == "replica").count() == 2
}

/// Runs the db probes directly (no agent), concurrently as the agent does.
fn probe_cycle(
    rt: &tokio::runtime::Runtime,
    probes: &[Arc<dyn Probe>],
    cycle: u64,
) -> Vec<Finding> {
    timed_cycle(rt, probes, cycle)
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

/// Like [`probe_cycle`], with each probe's own wall time.
fn timed_cycle(
    rt: &tokio::runtime::Runtime,
    probes: &[Arc<dyn Probe>],
    cycle: u64,
) -> Vec<(Finding, Duration)> {
    let ctx = ProbeContext {
        cycle,
        now: sr_agent::unix_now(),
    };
    rt.block_on(async {
        let handles: Vec<_> = probes
            .iter()
            .map(|p| {
                let (p, ctx) = (Arc::clone(p), ctx.clone());
                tokio::spawn(async move {
                    let t = Instant::now();
                    let f = p.run(&ctx).await;
                    (f, t.elapsed())
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("probe task"));
        }
        out
    })
}

fn db_probes(
    c: &PatroniCluster,
    i: usize,
    cluster_every: u64,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Vec<Arc<dyn Probe>> {
    let mut tls = format!("ca_file = '{}'\n", ca.display());
    if let Some((cert, key)) = identity {
        tls.push_str(&format!(
            "cert_file = '{}'\nkey_file = '{}'\n",
            cert.display(),
            key.display()
        ));
    }
    let patroni: sr_probes::patroni::Config = toml::from_str(&format!(
        "url = '{}'\nmember = '{}'\ncluster_every = {cluster_every}\n[tls]\n{tls}",
        c.rest_url(i),
        c.member_name(i)
    ))
    .unwrap();
    let etcd: sr_probes::etcd::Config =
        toml::from_str(&format!("url = '{}'\n[tls]\n{tls}", c.etcd_url())).unwrap();
    let pg: sr_probes::postgres::Config = toml::from_str(&format!(
        "port = {}\nuser = '{MONITOR_USER}'\npassword = '{MONITOR_PASSWORD}'",
        c.pg_port(i)
    ))
    .unwrap();
    for errs in [patroni.validate(), etcd.validate(), pg.validate()] {
        assert!(errs.is_empty(), "{errs:?}");
    }
    vec![
        Arc::new(Scheduled::<sr_probes::patroni::Patroni>::new(patroni)),
        Arc::new(Scheduled::<sr_probes::etcd::Etcd>::new(etcd)),
        Arc::new(Scheduled::<sr_probes::postgres::Postgres>::new(pg)),
    ]
}

/// Scenario 8: `ssl = on` on every member through `PATCH /config` (the members' own server
/// certificate, SAN 127.0.0.1), then the postgres probe with `ca_file` on `member`.
fn pg_over_tls(
    c: &PatroniCluster,
    rt: &tokio::runtime::Runtime,
    member: usize,
    tls: &harness::lab::patroni::PatroniTls,
) {
    let body = serde_json::json!({"postgresql": {"parameters": {
        "ssl": "on",
        "ssl_cert_file": tls.server_cert,
        "ssl_key_file": tls.server_key,
    }}})
    .to_string();
    let r = c
        .rest_request(member, "PATCH", "/config", Some(&body))
        .unwrap();
    assert_eq!(r.status, 200, "PATCH /config: {}", r.body);
    let ssl_sessions = || {
        c.psql(
            member,
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'status-reporter' AND s.ssl",
        )
        .unwrap()
    };
    wait_until(
        "ssl = on after Patroni's reload",
        Duration::from_secs(60),
        POLL * 5,
        || Ok(c.psql(member, "SHOW ssl")? == "on"),
    )
    .unwrap();
    assert_eq!(ssl_sessions(), "0", "no probe session used TLS before");
    let probe = |ca: &Path| -> Arc<dyn Probe> {
        let cfg: sr_probes::postgres::Config = toml::from_str(&format!(
            "port = {}\nuser = '{MONITOR_USER}'\npassword = '{MONITOR_PASSWORD}'\nca_file = '{}'",
            c.pg_port(member),
            ca.display()
        ))
        .unwrap();
        assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
        Arc::new(Scheduled::<sr_probes::postgres::Postgres>::new(cfg))
    };
    let good = probe(&tls.ca_cert);
    let f = probe_cycle(rt, std::slice::from_ref(&good), 0);
    assert_eq!(
        f[0].status,
        sr_protocol::NodeStatus::Ok,
        "{:?}",
        f[0].reasons
    );
    let sessions = ssl_sessions();
    eprintln!("db_cluster[8]: postgres probe over TLS OK; SSL sessions of the probe: {sessions}");
    assert_ne!(sessions, "0", "the probe's session is an SSL one");
    let f = probe_cycle(rt, &[probe(&tls.wrong_ca_cert)], 0);
    eprintln!(
        "db_cluster[8]: postgres with a wrong CA -> {:?}",
        f[0].reasons.first().map(|r| &r.message)
    );
    assert_eq!(f[0].status, sr_protocol::NodeStatus::Fail);
    assert!(
        f[0].reasons[0].message.contains("UnknownIssuer"),
        "{:?}",
        f[0].reasons
    );
    drop(good);
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Kills the leader's Patroni a few times with the agents at the default 5 s interval,
/// timing kill → db Degraded in the view (polled every 50 ms; printed, never asserted).
/// The agent watches the process serving Patroni's REST port (agent/src/watch/) and
/// probes at once when it exits instead of waiting for its next tick. Patroni is
/// restarted before the DCS ttl expires, so no failover is waited for.
fn detection_at_default_interval(
    c: &PatroniCluster,
    col: &Collector,
    agents: &mut [Agent],
    long: Duration,
) {
    const KILLS: usize = 3;
    let set = c.set().label();
    let start = Instant::now();
    // Lines logged each time an agent arms its watch on Patroni's process.
    let armed = |a: &Agent| {
        a.log()
            .lines()
            .filter(|l| {
                l.contains("watching the process serving the probe") && l.contains("patroni")
            })
            .count()
    };
    let mut last: Vec<usize> = agents.iter().map(armed).collect();
    for a in agents.iter_mut() {
        a.set_reporting_freq(5);
    }
    let mut took = Vec::new();
    for _ in 0..KILLS {
        let leader = c.leader().expect("a leader");
        let a = &agents[leader];
        // The reload rebuilt the watches and each kill ends one: wait for the re-arm
        // (after the agent's next cycle) so that the kill is seen by the watch.
        wait_until("the leader's agent watches Patroni", long, POLL, || {
            Ok(armed(a) > last[leader])
        })
        .unwrap();
        last[leader] = armed(a);
        let t0 = Instant::now();
        c.kill_patroni(leader).unwrap();
        wait_until(
            "db Degraded after the leader's Patroni was killed (5 s interval)",
            long,
            Duration::from_millis(50),
            || Ok(db_status(&col.fetch_view()?) == "Degraded"),
        )
        .unwrap();
        took.push(t0.elapsed().as_secs_f64());
        c.start_patroni(leader).unwrap();
        wait_view(col, "db OK after Patroni restarted", long, healthy_view).unwrap();
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "BENCH[{set}] kill->visible at 5 s interval: {:.2} s (median of {KILLS} kills; each: {})",
        percentile(&took, 0.5),
        took.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    postmaster_kill_at_default_interval(c, col, agents, long);
    freeze_at_default_interval(c, col, agents, long);
    for a in agents.iter_mut() {
        a.set_reporting_freq(1);
    }
    eprintln!(
        "db_cluster[2b]: {KILLS} Patroni kills, {KILLS} postmaster kills and {FREEZES} Patroni freezes at the 5 s interval took {:.1}s of suite time",
        start.elapsed().as_secs_f64()
    );
}

/// SIGKILLs a replica's postmaster a few times with the agents at the default 5 s
/// interval, timing kill → db not OK in the view (printed, never asserted); Patroni
/// restarts it within its `loop_wait`. Before each kill the member's agent must hold its
/// PostgreSQL session (agent/src/watch/session.rs); after it, the agent must log that
/// session's end: the backends see the postmaster die and close it. The process watch on
/// the postmaster fires too; which of the two woke the agent first is printed.
fn postmaster_kill_at_default_interval(
    c: &PatroniCluster,
    col: &Collector,
    agents: &[Agent],
    long: Duration,
) {
    const KILLS: usize = 3;
    let set = c.set().label();
    let mut took = Vec::new();
    let mut first_sources = Vec::new();
    for _ in 0..KILLS {
        let leader = c.leader().expect("a leader");
        let r = (leader + 1) % c.members();
        let a = &agents[r];
        wait_until("the replica's agent has held a PostgreSQL session for 2 s (past the 1 s a session must live to wake it)", long, POLL, || {
            Ok(a.session_held_for("postgres").is_some_and(|d| d > Duration::from_secs(2)))
        })
        .unwrap();
        let woke_before = a.wake_lines("postgres").len();
        let t0 = Instant::now();
        c.kill_postgres(r).unwrap();
        wait_until(
            "db not OK after a replica's postmaster was killed (5 s interval)",
            long,
            Duration::from_millis(50),
            || Ok(db_status(&col.fetch_view()?) != "OK"),
        )
        .unwrap();
        took.push(t0.elapsed().as_secs_f64());
        let woke = harness::poll::wait_for("the agent's session watch saw the kill", long, || {
            let lines = a.wake_lines("postgres");
            lines[woke_before.min(lines.len())..]
                .iter()
                .any(|l| l.contains("a watched session ended"))
                .then_some(lines)
        });
        let first = &woke[woke_before];
        first_sources.push(wake_source(first));
        wait_view(
            col,
            "db OK after Patroni restarted PostgreSQL",
            long,
            healthy_view,
        )
        .unwrap();
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "BENCH[{set}] kill->visible at 5 s interval (SIGKILL a replica's postmaster -> db not OK; woken by the session watch, first source each: {}): {:.2} s (median of {KILLS} kills; each: {})",
        first_sources.join(", "),
        percentile(&took, 0.5),
        took.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The event source a wake line of the agent names.
fn wake_source(line: &str) -> &'static str {
    if line.contains("a watched session ended") {
        "session"
    } else if line.contains("a polled endpoint's answer changed") {
        "fast_poll"
    } else if line.contains("a watched connection dropped") {
        "connection"
    } else {
        "process"
    }
}

/// Patroni freezes per set in 2b.
const FREEZES: usize = 3;

/// SIGSTOPs a replica's Patroni a few times with the agents at the default 5 s interval,
/// timing stop → db not OK in the view (printed, never asserted), then SIGCONTs it. A
/// frozen Patroni keeps its process and its connections: no process, connection or
/// session watch can see it; the agent's fast poll of `/patroni` (`[events] fast_poll_ms =
/// 1000`, set here: it is off by default; agent/src/watch/fast_poll.rs) times out and wakes
/// it, which its log must say. Frozen for seconds only, below the DCS ttl: nothing changes
/// in the cluster.
fn freeze_at_default_interval(
    c: &PatroniCluster,
    col: &Collector,
    agents: &mut [Agent],
    long: Duration,
) {
    for a in agents.iter_mut() {
        a.set_fast_poll_ms(Some(1000));
    }
    let set = c.set().label();
    let mut took = Vec::new();
    let mut first_sources = Vec::new();
    for _ in 0..FREEZES {
        let leader = c.leader().expect("a leader");
        let r = (leader + 1) % c.members();
        let a = &agents[r];
        wait_until(
            "the replica's agent polls Patroni (the 5 s reload started its fast poll)",
            long,
            POLL,
            || Ok(a.log().contains("polling cheap endpoints between cycles")),
        )
        .unwrap();
        let woke_before = a.wake_lines("patroni").len();
        let t0 = Instant::now();
        c.freeze_patroni(r).unwrap();
        let seen = wait_until(
            "db not OK after a replica's Patroni was frozen (5 s interval)",
            long,
            Duration::from_millis(50),
            || Ok(db_status(&col.fetch_view()?) != "OK"),
        );
        let elapsed = t0.elapsed().as_secs_f64();
        // The agent logs `from=.. to=TimedOut` when its poll of the frozen Patroni times out.
        let woke = harness::poll::poll(long, Duration::from_millis(50), || {
            let lines = a.wake_lines("patroni");
            lines[woke_before.min(lines.len())..]
                .iter()
                .any(|l| {
                    l.contains("a polled endpoint's answer changed") && l.contains("to=TimedOut")
                })
                .then_some(lines)
                .ok_or_else(|| "no fast poll wake line with to=TimedOut yet".to_string())
        });
        // Thawed whatever the outcome, so that a failure here leaves a working cluster.
        c.thaw_patroni(r).unwrap();
        seen.unwrap();
        let (woke, _) = woke.unwrap_or_else(|e| {
            panic!(
                "the agent's fast poll did not log the freeze: {e}\n{}",
                a.log_tail()
            )
        });
        took.push(elapsed);
        let first = &woke[woke_before];
        assert_eq!(
            wake_source(first),
            "fast_poll",
            "a frozen Patroni is seen by the fast poll only: {first}"
        );
        first_sources.push(wake_source(first));
        wait_view(col, "db OK after Patroni was thawed", long, healthy_view).unwrap();
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "BENCH[{set}] stop->visible at 5 s interval (SIGSTOP a replica's Patroni -> db not OK; woken by the fast poll, first source each: {}): {:.2} s (median of {FREEZES} freezes; each: {})",
        first_sources.join(", "),
        percentile(&took, 0.5),
        took.iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Unset before the agents go back to 1 s: 1000 ms would not be shorter than that.
    for a in agents.iter_mut() {
        a.set_fast_poll_ms(None);
    }
}

/// Which of the scenarios a set runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// 1-7.
    All,
    /// 1 (healthy), 2 (leader kill), 3 (replica stop) and 7 (TLS): Patroni 4.1, a second
    /// Patroni build on set B, is proven where its REST answers matter most.
    LeaderKillReplicaStop,
}

#[test]
fn db_cluster_set_a() {
    db_suite(VersionSet::Debian12, Scope::All);
}

#[test]
fn db_cluster_set_b() {
    db_suite(VersionSet::Trixie, Scope::All);
}

#[test]
fn db_cluster_patroni41() {
    db_suite(VersionSet::TrixiePatroni41, Scope::LeaderKillReplicaStop);
}

fn db_suite(set: VersionSet, scope: Scope) {
    if !require_set(set, &["patroni", "etcd", "postgres"]) {
        return;
    }
    let _one_cluster_at_a_time = exclusive();
    sr_tls::install_default_provider();
    let c = PatroniCluster::start(PatroniOpts {
        tls: true,
        etcd_tls: true,
        set,
        ..Default::default()
    })
    .expect("start the TLS Patroni cluster");
    eprintln!(
        "db_cluster[{}]: cluster up in {:.1}s (ttl {}), TLS REST with verify_client: required, etcd with client-cert auth",
        set.label(),
        c.started_in().as_secs_f64(),
        c.opts().ttl
    );
    let tls = c.tls().expect("TLS material").clone();
    let work = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // ---- 7 (probe level): client certificate works, wrong CA and missing cert are refused ----
    let leader = c.leader().expect("a leader");
    let good = db_probes(
        &c,
        leader,
        1,
        &tls.ca_cert,
        Some((&tls.client_cert, &tls.client_key)),
    );
    let f = probe_cycle(&rt, &good, 0);
    assert_eq!(
        f[0].status,
        sr_protocol::NodeStatus::Ok,
        "patroni over mTLS: {:?}",
        f[0].reasons
    );
    assert_eq!(
        f[0].facts.db.as_ref().unwrap().role.as_deref(),
        Some("leader")
    );
    assert_eq!(
        f[1].status,
        sr_protocol::NodeStatus::Ok,
        "etcd: {:?}",
        f[1].reasons
    );
    assert_eq!(
        f[2].status,
        sr_protocol::NodeStatus::Ok,
        "postgres: {:?}",
        f[2].reasons
    );
    let wrong_ca = db_probes(
        &c,
        leader,
        1,
        &tls.wrong_ca_cert,
        Some((&tls.client_cert, &tls.client_key)),
    );
    let f = probe_cycle(&rt, &wrong_ca[..2], 0);
    let etcd_why = &f[1].reasons[0];
    eprintln!("db_cluster: etcd with a wrong CA -> {}", etcd_why.message);
    assert_eq!(
        (f[1].status, etcd_why.code.as_str()),
        (sr_protocol::NodeStatus::Fail, "etcd_unreachable")
    );
    assert!(etcd_why.message.contains("UnknownIssuer"), "{etcd_why:?}");
    let why = &f[0].reasons[0];
    eprintln!("db_cluster: wrong CA -> {}", why.message);
    assert_eq!(
        (f[0].status, why.code.as_str()),
        (sr_protocol::NodeStatus::Fail, "patroni_unreachable")
    );
    assert!(
        why.message.contains("UnknownIssuer") && why.message.contains("TLS refused"),
        "{why:?}"
    );
    let no_cert = db_probes(&c, leader, 1, &tls.ca_cert, None);
    let f = probe_cycle(&rt, &no_cert[..2], 0);
    eprintln!(
        "db_cluster: etcd without a client cert -> {}",
        f[1].reasons[0].message
    );
    assert_eq!(
        f[1].status,
        sr_protocol::NodeStatus::Fail,
        "--client-cert-auth must refuse a client without a certificate"
    );
    eprintln!("db_cluster: no client cert -> {}", f[0].reasons[0].message);
    assert_eq!(
        f[0].status,
        sr_protocol::NodeStatus::Fail,
        "verify_client: required must refuse a client without a certificate"
    );

    // ---- 8 (probe level): PostgreSQL over TLS ----
    pg_over_tls(&c, &rt, leader, &tls);

    // ---- measure: the fast-path db probe cycle (/cluster and /config excluded) ----
    let fast = db_probes(
        &c,
        leader,
        3600,
        &tls.ca_cert,
        Some((&tls.client_cert, &tls.client_key)),
    );
    let _ = probe_cycle(&rt, &fast, 0); // cycle 0 fills the /cluster cache
    let mut total: Vec<f64> = Vec::new();
    let mut each: Vec<Vec<f64>> = vec![Vec::new(); fast.len()];
    for cycle in 1..=40 {
        let t = Instant::now();
        let f = timed_cycle(&rt, &fast, cycle);
        total.push(t.elapsed().as_secs_f64() * 1000.0);
        for (i, (finding, d)) in f.iter().enumerate() {
            assert_eq!(
                finding.status,
                sr_protocol::NodeStatus::Ok,
                "{:?}",
                finding.reasons
            );
            each[i].push(d.as_secs_f64() * 1000.0);
        }
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        format!(
            "p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            percentile(v, 0.5),
            percentile(v, 0.95),
            v[v.len() - 1]
        )
    };
    eprintln!(
        "BENCH[{}] db probe cycle (leader; /patroni over mTLS + etcd + postgres, concurrent; /cluster excluded; 40 cycles): {}",
        set.label(),
        summary(&mut total)
    );
    for (name, v) in ["patroni", "etcd", "postgres"].iter().zip(each.iter_mut()) {
        eprintln!("BENCH   {name}: {}", summary(v));
    }

    // ---- collector and agents ----
    // The scenarios flip members on purpose many times within minutes; flap damping
    // (tested in the collector's own tests) would hold them at Degraded.
    let col = Collector::start(
        &work.path().join("collector"),
        "127.0.0.1:0",
        &["127.0.0.1", "localhost"],
        None,
        &[("flap_threshold", "1000")],
    );
    let mut agents: Vec<Agent> = (0..c.members())
        .map(|i| {
            let cfg = agent_config(&c, &col, work.path(), i).unwrap();
            let mut a = Agent::at(
                &cfg,
                &work.path().join(format!("agent-{}.log", c.member_name(i))),
            );
            a.start();
            a
        })
        .collect();
    let dump_logs = |agents: &[Agent]| {
        for a in agents {
            let log = std::fs::read_to_string(a.log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!(
                "--- {} (tail)\n{}",
                a.log_path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenarios(&c, &col, &mut agents, scope)
    }));
    if let Err(e) = result {
        dump_logs(&agents);
        std::panic::resume_unwind(e);
    }
}

fn scenarios(c: &PatroniCluster, col: &Collector, agents: &mut [Agent], scope: Scope) {
    let set = c.set().label();
    // a failover takes about ttl (10 s on Patroni 3, at least 20 s on 4), a rejoin with
    // pg_rewind a few seconds more: the deadline scales with the ttl
    let long = Duration::from_secs(90 + 2 * u64::from(c.opts().ttl));

    // ---- 1. healthy ----
    let (took, v) = wait_view(
        col,
        "db OK with a leader and 2 replicas",
        long,
        healthy_view,
    )
    .unwrap();
    eprintln!(
        "db_cluster[1]: healthy after {:.1}s: {:?}",
        took.as_secs_f64(),
        roles(&v)
    );
    let leader = c.leader().expect("a leader");
    assert_eq!(leader_in_view(&v), Some(node_name(&c.member_name(leader))));
    let text = cli_status(col, "OK");
    eprintln!("db_cluster[1]: `status-reporter cluster status`:\n{text}");
    for (node, role) in roles(&v) {
        assert!(
            text.lines().any(|l| l.contains(&node) && l.contains(&role)),
            "{node} {role} missing in:\n{text}"
        );
    }

    // ---- 2. SIGKILL the leader's Patroni ----
    let old = node_name(&c.member_name(leader));
    let t0 = Instant::now();
    c.kill_patroni(leader).unwrap();
    let (_, v) = wait_view(
        col,
        "db Degraded after the leader's Patroni was killed",
        long,
        |v| db_status(v) == "Degraded",
    )
    .unwrap();
    let detect = t0.elapsed();
    eprintln!(
        "BENCH[{set}] SIGKILL leader Patroni -> db Degraded in the collector's view: {:.2} s (reporting_freq 1 s)",
        detect.as_secs_f64()
    );
    eprintln!("db_cluster[2]: degraded:\n  {}", reasons_text(&v));
    assert!(
        reasons_text(&v).contains(&old),
        "the reasons name the killed leader {old}"
    );
    let (took, v) = wait_view(col, "a new leader", long, |v| {
        leader_in_view(v).is_some_and(|l| l != old)
    })
    .unwrap();
    eprintln!(
        "db_cluster[2]: new leader {:?} after {:.1}s more; db {}",
        leader_in_view(&v),
        took.as_secs_f64(),
        db_status(&v)
    );
    eprintln!(
        "BENCH[{set}] SIGKILL leader Patroni -> new leader in the collector's view: {:.2} s (ttl {} s)",
        t0.elapsed().as_secs_f64(),
        c.opts().ttl
    );
    assert_ne!(
        db_status(&v),
        "Fail",
        "one member down of three is not Fail:\n  {}",
        reasons_text(&v)
    );
    c.start_patroni(leader).unwrap();
    let (took, _) = wait_view(
        col,
        "db OK after the killed member rejoined",
        long,
        healthy_view,
    )
    .unwrap();
    eprintln!(
        "db_cluster[2]: back to OK {:.1}s after restart",
        took.as_secs_f64()
    );
    // The node-level rows, oldest first (service-level ones repeat them).
    let rows = col.node_transitions(
        sr_protocol::NodeType::Db,
        &format!("node-{}", c.member_name(leader)),
    );
    let path: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.from.clone(), r.to.clone()))
        .collect();
    eprintln!("db_cluster[2]: transitions of {old}: {path:?}");
    let went_bad = path
        .iter()
        .position(|(_, to)| to != "OK")
        .expect("a transition away from OK is recorded");
    assert!(
        path[went_bad..].iter().any(|(_, to)| to == "OK"),
        "a later transition back to OK is recorded: {path:?}"
    );
    assert!(
        rows.windows(2)
            .all(|w| w[0].at_ms <= w[1].at_ms
                && (w[0].boot_id != w[1].boot_id || w[0].seq < w[1].seq)),
        "transitions are in order"
    );
    assert!(
        rows.windows(2).all(|w| w[0].to == w[1].from),
        "each transition starts where the previous ended: {path:?}"
    );

    // ---- 2b. detection at the default 5 s interval (issue 17) ----
    if scope == Scope::All {
        detection_at_default_interval(c, col, agents, long);
    }

    // ---- 3. stop one replica ----
    let leader = c.leader().expect("a leader");
    let replica = (0..c.members()).find(|&i| i != leader).unwrap();
    let rname = node_name(&c.member_name(replica));
    c.stop_patroni(replica).unwrap();
    let (_, v) = wait_view(col, "db Degraded naming the stopped replica", long, |v| {
        db_status(v) == "Degraded" && reasons_text(v).contains(&rname)
    })
    .unwrap();
    eprintln!("db_cluster[3]: {rname} stopped:\n  {}", reasons_text(&v));
    if scope == Scope::LeaderKillReplicaStop {
        c.start_patroni(replica).unwrap();
        wait_view(col, "db OK after the replica restarted", long, healthy_view).unwrap();
        return;
    }

    // ---- 4. stop two of three ----
    let other = (0..c.members())
        .find(|&i| i != leader && i != replica)
        .unwrap();
    c.stop_patroni(other).unwrap();
    let (_, v) = wait_view(col, "db Fail with two members stopped", long, |v| {
        db_status(v) == "Fail"
    })
    .unwrap();
    eprintln!("db_cluster[4]: two stopped:\n  {}", reasons_text(&v));
    c.start_patroni(replica).unwrap();
    c.start_patroni(other).unwrap();
    wait_view(
        col,
        "db OK after both replicas restarted",
        long,
        healthy_view,
    )
    .unwrap();

    // ---- 5. stop etcd ----
    c.stop_etcd().unwrap();
    let (_, v) = wait_view(col, "a reason saying the DCS is unreachable", long, |v| {
        reasons_text(v).contains("DCS unreachable")
    })
    .unwrap();
    eprintln!(
        "db_cluster[5]: etcd stopped: db {}\n  {}",
        db_status(&v),
        reasons_text(&v)
    );
    assert_ne!(db_status(&v), "OK");
    wait_until("every member read-only", long, POLL * 5, || {
        Ok((0..c.members()).all(|i| {
            c.psql(i, "SELECT pg_is_in_recovery()")
                .map(|s| s == "t")
                .unwrap_or(false)
        }))
    })
    .unwrap();
    c.start_etcd().unwrap();
    wait_view(col, "db OK after etcd restarted", long, healthy_view).unwrap();

    // ---- 6. kill only the leader's reporter ----
    let (_, v) = wait_view(col, "a leader in the view", long, |v| {
        leader_in_view(v).is_some()
    })
    .unwrap();
    let lname = leader_in_view(&v).unwrap();
    let li = (0..c.members())
        .find(|&i| node_name(&c.member_name(i)) == lname)
        .unwrap();
    agents[li].kill();
    let (_, v) = wait_view(col, "the leader's node stale", long, |v| {
        db(v)["nodes"][&lname]["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["code"] == "stale"))
    })
    .unwrap();
    eprintln!(
        "db_cluster[6]: {lname}'s reporter killed: db {}\n  {}",
        db_status(&v),
        reasons_text(&v)
    );
    assert_eq!(
        db_status(&v),
        "Degraded",
        "a silent leader reporter alone must not make db Fail"
    );
    assert!(
        reasons_text(&v).contains("reporter is silent"),
        "{}",
        reasons_text(&v)
    );
    cli_status(col, "Degraded");
    // It stays Degraded over several more reports from the replicas.
    for _ in 0..10 {
        let v = wait_view(col, "another view", long, |_| true).unwrap().1;
        assert_eq!(db_status(&v), "Degraded", "{}", reasons_text(&v));
    }
    agents[li].start();
    wait_view(
        col,
        "db OK after the leader's reporter restarted",
        long,
        healthy_view,
    )
    .unwrap();

    // ---- 9. a replication slot lost ----
    lost_slot(c, col, long);

    // ---- 10. quorum commit losing its standbys (Patroni 4 only) ----
    if c.set().in_rootfs() {
        quorum_commit(c, col, long);
    }

    // ---- 11. Patroni paused (patronictl pause): maintenance, never Fail by itself ----
    patroni_pause(c, col, long);
}

/// Scenario 11: `patronictl pause` shows every db member and the db service in
/// maintenance ("until patronictl resume"), at worst Degraded; `resume` clears it.
fn patroni_pause(c: &PatroniCluster, col: &Collector, long: Duration) {
    let in_pause = |v: &Value| -> Vec<String> {
        db(v)["nodes"]
            .as_object()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter(|(_, n)| {
                        n["reasons"].as_array().is_some_and(|r| {
                            r.iter().any(|r| {
                                r["code"] == "maintenance"
                                    && r["message"]
                                        .as_str()
                                        .is_some_and(|m| m.contains("Patroni is paused"))
                            })
                        })
                    })
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let out = c.patronictl(&["pause", "--wait"]).unwrap();
    eprintln!("db_cluster[11]: patronictl pause: {}", out.trim());
    let (took, v) = wait_view(col, "every db member shown in maintenance", long, |v| {
        in_pause(v).len() == 3
    })
    .unwrap();
    eprintln!(
        "db_cluster[11]: paused -> maintenance in the view after {:.1}s: db {}\n  {}",
        took.as_secs_f64(),
        db_status(&v),
        reasons_text(&v)
    );
    assert_ne!(db_status(&v), "Fail", "{}", reasons_text(&v));
    let service_reasons = db(&v)["reasons"].to_string();
    assert!(
        service_reasons.contains("maintenance") && service_reasons.contains("patronictl resume"),
        "{service_reasons}"
    );
    cli_status(col, "Degraded");
    c.patronictl(&["resume", "--wait"]).unwrap();
    let (took, v) = wait_view(col, "db OK after patronictl resume", long, |v| {
        healthy_view(v) && in_pause(v).is_empty()
    })
    .unwrap();
    eprintln!(
        "db_cluster[11]: resumed -> OK after {:.1}s; no maintenance left: {:?}",
        took.as_secs_f64(),
        in_pause(&v)
    );
}

/// Whether `code` is among the db reasons or any db node's own reasons.
fn has_code(v: &Value, code: &str) -> bool {
    let in_list = |r: &Value| {
        r.as_array()
            .is_some_and(|a| a.iter().any(|r| r["code"] == code))
    };
    in_list(&db(v)["reasons"])
        || db(v)["nodes"]
            .as_object()
            .is_some_and(|m| m.values().any(|n| in_list(&n["reasons"])))
}

/// Scenario 10: `synchronous_mode: quorum` (Patroni 4's quorum commit, ANY 1 of the two
/// replicas). One replica stopped: the other still acknowledges commits, so db is Degraded
/// for the stopped member only; both stopped: no synchronous standby is left.
fn quorum_commit(c: &PatroniCluster, col: &Collector, long: Duration) {
    let leader = c.leader().expect("a leader");
    let set_mode = |mode: serde_json::Value| {
        let body = serde_json::json!({ "synchronous_mode": mode }).to_string();
        let r = c
            .rest_request(leader, "PATCH", "/config", Some(&body))
            .unwrap();
        assert_eq!(r.status, 200, "PATCH /config: {}", r.body);
    };
    set_mode("quorum".into());
    let quorum_standbys = || -> Result<usize> {
        let r = c.rest_get(leader, "/patroni")?;
        Ok(r.json()["replication"]
            .as_array()
            .map(|a| a.iter().filter(|w| w["sync_state"] == "quorum").count())
            .unwrap_or(0))
    };
    wait_until("two quorum standbys", long, POLL * 5, || {
        Ok(quorum_standbys()? == 2)
    })
    .unwrap();
    wait_view(col, "db OK under quorum commit", long, healthy_view).unwrap();

    let replicas: Vec<usize> = (0..c.members()).filter(|&i| i != leader).collect();
    let first = node_name(&c.member_name(replicas[0]));
    c.stop_patroni(replicas[0]).unwrap();
    wait_view(
        col,
        "db Degraded naming the stopped quorum standby",
        long,
        |v| db_status(v) == "Degraded" && reasons_text(v).contains(&first),
    )
    .unwrap();
    wait_until("one quorum standby left", long, POLL * 5, || {
        Ok(quorum_standbys()? == 1)
    })
    .unwrap();
    let v = wait_view(col, "a view after the quorum shrank", long, |_| true)
        .unwrap()
        .1;
    eprintln!(
        "db_cluster[10]: {first} stopped under quorum commit: db {}\n  {}",
        db_status(&v),
        reasons_text(&v)
    );
    assert!(
        !has_code(&v, "no_sync_standby"),
        "the other quorum standby acknowledges: {}",
        reasons_text(&v)
    );

    c.stop_patroni(replicas[1]).unwrap();
    let (_, v) = wait_view(col, "db Fail without a synchronous standby", long, |v| {
        db_status(v) == "Fail" && has_code(v, "no_sync_standby")
    })
    .unwrap();
    eprintln!(
        "db_cluster[10]: both quorum standbys stopped: db {}\n  {}",
        db_status(&v),
        reasons_text(&v)
    );

    c.start_patroni(replicas[0]).unwrap();
    c.start_patroni(replicas[1]).unwrap();
    set_mode(serde_json::Value::Null);
    wait_view(
        col,
        "db OK after both replicas restarted",
        long,
        healthy_view,
    )
    .unwrap();
}

/// Scenario 9: a permanent physical slot (Patroni's `slots`, so Patroni keeps it rather
/// than dropping an unknown one) that nothing consumes, `max_slot_wal_keep_size = 1MB`,
/// WAL written past it and a checkpoint once the replicas caught up (their own slots stay
/// within the limit): PostgreSQL invalidates the slot, and the leader's probe says so.
fn lost_slot(c: &PatroniCluster, col: &Collector, long: Duration) {
    const SLOT: &str = "sr_lab_lost";
    let leader = c.leader().expect("a leader");
    let lname = node_name(&c.member_name(leader));
    let patch = |body: serde_json::Value| {
        let r = c
            .rest_request(leader, "PATCH", "/config", Some(&body.to_string()))
            .unwrap();
        assert_eq!(r.status, 200, "PATCH /config: {}", r.body);
    };
    patch(serde_json::json!({
        "slots": {SLOT: {"type": "physical"}},
        "postgresql": {"parameters": {"max_slot_wal_keep_size": "1MB"}}
    }));
    let wal_status = || {
        c.psql(
            leader,
            &format!("SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{SLOT}'"),
        )
    };
    wait_until(
        "the slot reserved and the limit applied",
        long,
        POLL * 5,
        || {
            Ok(wal_status()? == "reserved"
                && c.psql(leader, "SHOW max_slot_wal_keep_size")? == "1MB")
        },
    )
    .unwrap();
    c.psql(
        leader,
        "CREATE TABLE IF NOT EXISTS sr_lab_wal (g int, pad text)",
    )
    .unwrap();
    wait_until("the slot lost", long, POLL, || {
        c.psql(
            leader,
            "INSERT INTO sr_lab_wal SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g",
        )?;
        c.psql(leader, "SELECT pg_switch_wal()")?;
        // the replicas' own slots must not fall behind the limit at the checkpoint
        wait_until("replicas caught up", long, POLL, || {
            Ok(c.psql(
                leader,
                "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()",
            )? == (c.members() - 1).to_string())
        })?;
        c.psql(leader, "CHECKPOINT")?;
        Ok(wal_status()? == "lost")
    })
    .unwrap();
    let (_, v) = wait_view(col, "the leader naming the lost slot", long, |v| {
        db(v)["nodes"][&lname]["reasons"]
            .as_array()
            .is_some_and(|r| {
                r.iter().any(|r| {
                    r["code"] == "replication_slot_lost"
                        && r["message"].as_str().is_some_and(|m| m.contains(SLOT))
                })
            })
    })
    .unwrap();
    let why = db(&v)["nodes"][&lname]["reasons"].to_string();
    eprintln!("db_cluster[9]: db {}: {why}", db_status(&v));
    assert_eq!(db_status(&v), "Degraded", "{}", reasons_text(&v));
    if c.set().in_rootfs() {
        // PostgreSQL 17 says why; 15 only has wal_status
        assert!(why.contains("wal_removed"), "{why}");
    }
    patch(serde_json::json!({
        "slots": {SLOT: null},
        "postgresql": {"parameters": {"max_slot_wal_keep_size": null}}
    }));
    wait_view(
        col,
        "db OK once Patroni dropped the slot",
        long,
        healthy_view,
    )
    .unwrap();
}
