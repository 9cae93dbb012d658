//! The shared PostgreSQL store (issue 16) against a real Patroni ×3 + etcd + PostgreSQL
//! cluster: three collectors (real binaries, `[store] kind = "postgres"` on every Patroni
//! member) share one database over TLS. One cluster for the whole binary; the scenarios
//! run in sequence in one test, each building on the last:
//!
//! 0. TLS: a store with `ca_file` refuses a PostgreSQL without TLS (no downgrade); with
//!    `ssl = on` (server certificate from the lab's test CA) a wrong CA is refused with
//!    the verifier's reason; a `[store]` with neither `ca_file` nor `allow_plaintext` is
//!    refused by `collector validate`; every collector's session is an SSL one;
//! 1. `collector migrate-store` copies a populated SQLite store (tokens, users, nodes,
//!    tombstones, transitions, maintenance), `--dry-run` first; a second run copies nothing
//!    twice.
//! 2. a token created on one collector is accepted by the other two;
//! 3. a key pinned at one collector refuses an impostor at another;
//! 4. `nodes forget` on one is seen by all, and the forgotten key cannot pin anywhere;
//! 5. a replayed `(boot id, seq)` is refused by a collector that never saw the original;
//! 6. the Patroni leader's node crashes during ingest, with a real agent (`status-reporter
//!    run`, patroni and postgres probes) on every member reporting to all three collectors:
//!    every collector keeps answering and accepting, `cluster status` on each shows the db
//!    not OK with a reason naming the dead member during the outage, and every acknowledged
//!    transition reaches the shared store;
//! 7. retention: a collector restarted with `transitions_per_node = 10` trims PostgreSQL to
//!    a node's newest 10 transitions and drops forgotten nodes' replay floors, while a
//!    young forget tombstone stays.
//!
//! After step 1, a maintenance event made on a (its migrated window) shows in every
//! manager's history once.

mod harness;

use harness::fixtures::{now_ms, report_headers, Node};
use harness::lab::{require_services, PatroniCluster, PatroniOpts, MONITOR_PASSWORD, MONITOR_USER};
use harness::*;
use serde_json::Value;
use sr_collector::store::{
    DurableWrite, HistoryFilter, MaintenanceRow, Role, Store, TransitionRow,
};
use sr_protocol::NodeType;
use std::collections::BTreeSet;
use std::time::Duration;

const DB: &str = "status_reporter";
const ROLE: &str = "status_reporter";
const PASSWORD: &str = "sr-lab-password";
/// Sharing is about a second each way; the limit is for a loaded CI machine.
const SYNC: Duration = Duration::from_secs(30);

/// The least-privilege role and its database, as docs/operations.md tells a DBA.
fn create_role(pg: &PatroniCluster) {
    let l = pg.leader().expect("a leader");
    pg.psql(
        l,
        &format!(
            "CREATE ROLE {ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{PASSWORD}'"
        ),
    )
    .unwrap();
    pg.psql(l, &format!("CREATE DATABASE {DB} OWNER {ROLE}"))
        .unwrap();
    pg.psql(l, &format!("REVOKE ALL ON DATABASE {DB} FROM PUBLIC"))
        .unwrap();
}

/// `sql` on the shared database as the collectors' role, on the current leader (psql -At).
fn shared_sql(pg: &PatroniCluster, sql: &str) -> anyhow::Result<String> {
    let l = pg
        .leader()
        .ok_or_else(|| anyhow::anyhow!("no leader now"))?;
    let out = std::process::Command::new(format!("{}/psql", harness::lab::PG_BIN))
        .arg(format!(
            "host=127.0.0.1 port={} user={ROLE} password={PASSWORD} dbname={DB} connect_timeout=5",
            pg.pg_port(l)
        ))
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A `[store]` table naming every Patroni member, with `tls` (`ca_file = ...`, or
/// nothing) as its protection; the password file is written in `dir`.
fn store_table(dir: &std::path::Path, pg: &PatroniCluster, tls: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let pw = dir.join("pg.password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hosts: Vec<String> = (0..pg.members())
        .map(|i| format!("\"127.0.0.1:{}\"", pg.pg_port(i)))
        .collect();
    format!(
        "[store]\nkind = \"postgres\"\nhosts = [{}]\ndbname = \"{DB}\"\nuser = \"{ROLE}\"\n\
         password_file = \"{}\"\n{tls}connect_timeout_secs = 2\nquery_timeout_secs = 3\n",
        hosts.join(", "),
        pw.display()
    )
}

fn ca_line(ca: &std::path::Path) -> String {
    format!("ca_file = \"{}\"\n", ca.display())
}

/// A collector in `dir` whose `[store]` names every Patroni member, trusting `ca`.
fn collector(
    dir: &std::path::Path,
    pki: &Pki,
    pg: &PatroniCluster,
    ca: &std::path::Path,
) -> Collector {
    let c = Collector::init(dir, pki, "127.0.0.1:0");
    c.set("flap_threshold", "1000");
    c.set("shutdown_grace_secs", "1");
    c.append_config(&store_table(dir, pg, &ca_line(ca)));
    c
}

/// Scenario 0, on a scratch collector whose `[store]` is rewritten for each case (its
/// `migrate-store` never gets as far as writing): what TLS the store insists on.
fn tls_is_required(
    pg: &PatroniCluster,
    scratch: &Collector,
    tls: &harness::lab::patroni::PatroniTls,
) {
    let base = std::fs::read_to_string(scratch.config()).unwrap();
    let config = scratch.config().display().to_string();
    let with_store = |protection: &str| {
        std::fs::write(
            scratch.config(),
            format!("{base}{}", store_table(&scratch.dir, pg, protection)),
        )
        .unwrap();
    };
    let refused = |what: &str| -> String {
        let (code, out, err) = run_migrate_store(scratch, &[]);
        assert_ne!(code, 0, "{what}: migrate-store must fail: {out}{err}");
        eprintln!("shared_store[0]: {what} -> {}", err.trim());
        err
    };
    // No TLS on the server yet: a store that trusts our CA will not fall back to plaintext.
    with_store(&ca_line(&tls.ca_cert));
    let err = refused("ca_file against a server without TLS");
    assert!(err.contains("TLS"), "{err}");
    // ssl = on on every member, through Patroni's dynamic configuration.
    let body = serde_json::json!({"postgresql": {"parameters": {
        "ssl": "on",
        "ssl_cert_file": tls.server_cert,
        "ssl_key_file": tls.server_key,
    }}})
    .to_string();
    let l = pg.leader().expect("a leader");
    let r = pg.rest_request(l, "PATCH", "/config", Some(&body)).unwrap();
    assert_eq!(r.status, 200, "PATCH /config: {}", r.body);
    for i in 0..pg.members() {
        wait_for(&format!("ssl = on on member {i}"), SYNC * 2, || {
            (pg.psql(i, "SHOW ssl").ok()? == "on").then_some(())
        });
    }
    // A CA that did not sign the server's certificate.
    with_store(&ca_line(&tls.wrong_ca_cert));
    let err = refused("a wrong CA");
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Neither a CA nor allow_plaintext: refused before any connection.
    with_store("");
    let (code, out, err) = cli(None, &["collector", "validate", "--config", &config], &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("ca_file is required (or allow_plaintext = true"),
        "{out}{err}"
    );
    std::fs::write(scratch.config(), base).unwrap();
}

/// Sessions of the collectors' pool on the leader: (with SSL, all).
fn collector_sessions(pg: &PatroniCluster) -> (u32, u32) {
    let l = pg.leader().expect("a leader");
    let out = pg
        .psql(
            l,
            "SELECT count(*) FILTER (WHERE s.ssl) || ',' || count(*) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'status-reporter-collector'",
        )
        .unwrap();
    let (a, b) = out.split_once(',').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// `collector migrate-store --to postgres` for `c`'s config with `extra` flags: (exit code,
/// stdout, stderr).
fn run_migrate_store(c: &Collector, extra: &[&str]) -> (i32, String, String) {
    let config = c.config().display().to_string();
    let mut args = vec![
        "collector",
        "migrate-store",
        "--to",
        "postgres",
        "--config",
        &config,
    ];
    args.extend_from_slice(extra);
    cli(None, &args, &[])
}

/// `collector migrate-store` with `extra` flags, which must succeed: (exit code, stdout).
fn migrate_store(c: &Collector, extra: &[&str]) -> (i32, String) {
    let (code, out, err) = run_migrate_store(c, extra);
    assert_eq!(code, 0, "migrate-store {extra:?}: {out}\n{err}");
    (code, out)
}

/// Fills a store as a collector that ran for a while would have.
fn populate(state: &std::path::Path) -> Vec<String> {
    let mut s = Store::open(state).unwrap();
    let secrets = vec![
        s.create_token(Role::Db).unwrap(),
        s.create_token(Role::Broker).unwrap(),
    ];
    s.set_user("reader", "reader-password").unwrap();
    let key = || {
        use sr_protocol::signing::NodeKey;
        NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().unwrap())
            .unwrap()
            .key_id()
    };
    let mut writes = Vec::new();
    for i in 0..4 {
        let id = format!("old-db{i}");
        writes.push(DurableWrite::Pin {
            node_type: NodeType::Db,
            node_id: id.clone(),
            name: id.clone(),
            key: Some(key()),
            private_ip: None,
            at_ms: now_ms(),
        });
        writes.push(DurableWrite::Transitions {
            node_type: NodeType::Db,
            node_id: id.clone(),
            received_ms: now_ms(),
            rows: (1..=3)
                .map(|seq| TransitionRow {
                    boot_id: "b0".into(),
                    seq,
                    at_ms: now_ms(),
                    service: None,
                    from: "OK".into(),
                    to: "Degraded".into(),
                    reasons_json: "[]".into(),
                })
                .collect(),
        });
    }
    s.commit_durable(&writes).unwrap();
    // A forgotten node leaves a key tombstone.
    s.forget_one("old-db3", None, None, now_ms()).unwrap();
    s.set_maintenance(
        &MaintenanceRow {
            target: "old-db0".into(),
            reason: "disk swap".into(),
            by: "alice".into(),
            since_ms: now_ms(),
            until_ms: None,
        },
        now_ms(),
    )
    .unwrap();
    secrets
}

/// Sends one signed report of `n` (its next seq) to `c`: (status, body).
fn send(
    rt: &tokio::runtime::Runtime,
    c: &Collector,
    n: &mut Node,
    token: &str,
    status: &str,
) -> (u16, Value) {
    let (body, sig) = n.next(status, now_ms());
    rt.block_on(c.put(&n.path(), &report_headers(token, &sig), body))
}

fn pinned_key(c: &Collector, id: &str) -> Option<String> {
    Store::open(&c.state())
        .ok()?
        .list_nodes()
        .ok()?
        .into_iter()
        .find(|r| r.node_id == id)
        .and_then(|r| r.pinned_key)
}

fn in_view(c: &Collector, id: &str) -> bool {
    c.fetch_view()
        .is_ok_and(|v| harness::fixtures::find_node(&v, id).is_some())
}

/// `/metrics` of `c` (admin token), or `None` without a 200.
fn shared_metrics(c: &Collector) -> Option<String> {
    let (code, text) = harness::metrics::scrape(
        &c.url("/metrics"),
        Some(&c.ca),
        &[(sr_protocol::TOKEN_HEADER, &c.token("admin"))],
    );
    (code == 200).then_some(text)
}

/// A started agent on Patroni member `i` (node `db-<member>`, patroni and postgres probes,
/// reporting every second) fanning out to every collector of `cs`.
fn db_agent(
    pg: &PatroniCluster,
    cs: &[Collector],
    dir: &std::path::Path,
    token: &str,
    i: usize,
) -> Agent {
    let member = pg.member_name(i);
    let tls = pg.tls().expect("TLS material");
    let probe = |text: String| -> sr_probes::ProbeConfig {
        toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
    };
    let probes = vec![
        probe(format!(
            "kind = \"patroni\"\nurl = \"{}\"\nmember = \"{member}\"\ncluster_every = 2\ntimeout_ms = 500\n\
             [tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            pg.rest_url(i),
            tls.ca_cert.display(),
            tls.client_cert.display(),
            tls.client_key.display()
        )),
        probe(format!(
            "kind = \"postgres\"\nport = {}\nuser = \"{MONITOR_USER}\"\npassword = \"{MONITOR_PASSWORD}\"\n",
            pg.pg_port(i)
        )),
    ];
    let managers: Vec<String> = cs.iter().map(|c| c.addr.to_string()).collect();
    let name = format!("db-{member}");
    let mut a = Agent::configure(
        &dir.join(&name),
        &cs[0].ca,
        token,
        "db",
        &name,
        1,
        &managers,
        probes,
    );
    a.start();
    a
}

/// `cluster status --json` of `c`, as an operator runs it: the db section's status and
/// its reasons as `code (node)`.
fn db_section(c: &Collector) -> Option<(sr_protocol::NodeStatus, Vec<String>)> {
    let s = harness::status::Status::run(harness::status::command(
        &c.addr.to_string(),
        &c.ca,
        &c.token("admin"),
    ));
    let db = s.service("db")?;
    let reasons = db
        .reasons
        .iter()
        .map(|r| format!("{} ({})", r.code, r.node.as_deref().unwrap_or("-")))
        .collect();
    Some((db.status, reasons))
}

#[test]
fn three_collectors_share_one_postgres_store() {
    if !require_services(&["patroni", "etcd", "postgres"]) {
        return;
    }
    let _one = harness::lab::exclusive();
    sr_tls::install_default_provider();
    // TLS on Patroni's REST API (the agents' patroni probe presents a client certificate)
    // and the lab's test CA, whose server certificate PostgreSQL then serves.
    let pg = PatroniCluster::start(PatroniOpts {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let tls = pg.tls().expect("TLS material").clone();
    create_role(&pg);
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"), "shared store test CA");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 0. TLS is required, verified against our CA, and never downgraded.
    let scratch_dir = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch_dir).unwrap();
    tls_is_required(
        &pg,
        &Collector::init(&scratch_dir, &pki, "127.0.0.1:0"),
        &tls,
    );

    let mut cs: Vec<Collector> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let d = tmp.path().join(n);
            std::fs::create_dir_all(&d).unwrap();
            collector(&d, &pki, &pg, &tls.ca_cert)
        })
        .collect();

    // 1. migrate-store on a populated store: dry run counts, writes nothing.
    let old_secrets = populate(&cs[0].state());
    let (_, dry) = migrate_store(&cs[0], &["--dry-run"]);
    assert!(
        dry.contains("tokens 6, users 2, nodes 3, forgotten keys 1, key approvals 0, maintenance windows 1, transitions 12"),
        "{dry}"
    );
    assert!(dry.contains("nothing written"), "{dry}");
    let (_, first) = migrate_store(&cs[0], &[]);
    let want = "shared store now holds: tokens 6, users 2, nodes 3, forgotten keys 1, key approvals 0, maintenance windows 1, transitions 12";
    assert!(first.contains(want), "{first}");
    let (_, again) = migrate_store(&cs[0], &[]);
    assert!(again.contains(want), "idempotent: {again}");
    assert_eq!(
        shared_sql(&pg, "SELECT max(version) FROM sr_schema_version").unwrap(),
        "1"
    );
    assert_eq!(
        shared_sql(&pg, "SELECT count(*) FROM sr_schema_version").unwrap(),
        "1",
        "migrated once"
    );

    for c in cs.iter_mut() {
        c.spawn();
    }
    // Every collector pulls what migrate-store copied: a token of the old store works on c.
    let mut probe = Node::new("db", "old-token-probe");
    wait_for("c accepts a token from a's migrated store", SYNC, || {
        (send(&rt, &cs[2], &mut probe, &old_secrets[0], "OK").0 == 200).then_some(())
    });

    // The maintenance event of a's migrated window ("set", made on a) is in every
    // manager's history once: shared, and not echoed back to a.
    let events = |c: &Collector| -> Option<usize> {
        let f = HistoryFilter {
            limit: 1000,
            ..Default::default()
        };
        let rows = Store::open(&c.state()).ok()?.history(&f).ok()?;
        Some(
            rows.iter()
                .filter(|r| r.node_type == "maintenance" && r.node_id == "old-db0")
                .count(),
        )
    };
    for (i, c) in cs.iter().enumerate() {
        wait_for(
            &format!("collector {i} shows a's maintenance event"),
            SYNC,
            || (events(c) == Some(1)).then_some(()),
        );
    }
    assert_eq!(
        shared_sql(
            &pg,
            "SELECT count(*) FROM sr_transitions WHERE node_type = 'maintenance'"
        )
        .unwrap(),
        "1"
    );

    let (ssl, all) = collector_sessions(&pg);
    assert!(
        all > 0 && ssl == all,
        "collector sessions with SSL: {ssl} of {all}"
    );
    let text = shared_metrics(&cs[2]).expect("metrics");
    assert!(
        text.contains("status_reporter_shared_store_connected"),
        "{text}"
    );
    if harness::metrics::promtool().is_some() {
        assert_eq!(harness::metrics::promtool_check(&text), Ok(true), "{text}");
    }

    // 2. A token created on b works on a and c.
    let token = cs[1].create_token("node");
    for (i, c) in cs.iter().enumerate() {
        let mut n = Node::new("node", &format!("token-probe-{i}"));
        wait_for(
            &format!("collector {i} accepts b's new token"),
            SYNC,
            || (send(&rt, c, &mut n, &token, "OK").0 == 200).then_some(()),
        );
    }

    // 3. A key pinned at a refuses an impostor at c.
    let db_token = old_secrets[0].clone();
    let mut real = Node::new("db", "shared-db1");
    assert_eq!(send(&rt, &cs[0], &mut real, &db_token, "OK").0, 200);
    wait_for("c knows the pin a made", SYNC, || {
        (pinned_key(&cs[2], "shared-db1") == Some(real.key.key_id())
            && in_view(&cs[2], "shared-db1"))
        .then_some(())
    });
    let mut impostor = Node::new("db", "shared-db1");
    let (code, v) = send(&rt, &cs[2], &mut impostor, &db_token, "OK");
    assert_eq!(
        (code, v["error_code"].as_str()),
        (403, Some("key_mismatch")),
        "{v}"
    );

    // 4. `nodes forget` on b is seen by a and c, and the old key cannot pin anywhere.
    wait_for("b knows the pin", SYNC, || {
        (pinned_key(&cs[1], "shared-db1").is_some() && in_view(&cs[1], "shared-db1")).then_some(())
    });
    let (code, out, err) = cs[1].nodes(&["forget", "shared-db1", "--type", "db"]);
    assert_eq!(code, 0, "{out}{err}");
    for (i, c) in cs.iter().enumerate() {
        wait_for(&format!("collector {i} forgot shared-db1"), SYNC, || {
            (pinned_key(c, "shared-db1").is_none() && !in_view(c, "shared-db1")).then_some(())
        });
    }
    let (code, v) = send(&rt, &cs[0], &mut real, &db_token, "OK");
    assert_eq!(
        (code, v["error_code"].as_str()),
        (403, Some("key_forgotten")),
        "{v}"
    );

    // 5. Replay: r1 reports seq 1..=3 to a and b only; seq 2 replayed to c is refused.
    let mut r1 = Node::new("db", "replay-r1");
    let mut captured = Vec::new();
    for _ in 0..3 {
        let (body, sig) = r1.next("OK", now_ms());
        for c in &cs[..2] {
            let (code, v) =
                rt.block_on(c.put(&r1.path(), &report_headers(&db_token, &sig), body.clone()));
            assert_eq!(code, 200, "{v}");
        }
        captured.push((body, sig));
    }
    wait_for("c holds r1's replay floor in its store", SYNC, || {
        let nodes = Store::open(&cs[2].state()).ok()?.load_nodes().ok()?;
        nodes
            .iter()
            .find(|n| n.row.node_id == "replay-r1")
            .filter(|n| n.floor == vec![("boot-1".to_string(), 3)])
            .map(|_| ())
    });
    cs[2].wait_store_reload();
    for (i, (body, sig)) in captured.iter().enumerate() {
        let (code, v) =
            rt.block_on(cs[2].put(&r1.path(), &report_headers(&db_token, sig), body.clone()));
        if i < 2 {
            assert_eq!(
                (code, v["error_code"].as_str()),
                (409, Some("replayed_report")),
                "seq {}: {v}",
                i + 1
            );
        } else {
            // The newest one is c's own copy of it: accepted once, then a replay here too.
            assert_eq!(code, 200, "{v}");
            let (code, _) =
                rt.block_on(cs[2].put(&r1.path(), &report_headers(&db_token, sig), body.clone()));
            assert_eq!(code, 409);
        }
    }

    // 6. The leader's node crashes during ingest. First the db nodes the earlier steps left
    // behind (never reporting, so Fail) are forgotten, and a real agent on every member
    // reports to all three collectors: db is OK everywhere before the kill.
    for id in [
        "old-db0",
        "old-db1",
        "old-db2",
        "old-token-probe",
        "replay-r1",
    ] {
        let (code, out, err) = cs[1].nodes(&["forget", id, "--type", "db"]);
        assert_eq!(code, 0, "forget {id}: {out}{err}");
    }
    let agents_dir = tmp.path().join("agents");
    let _agents: Vec<Agent> = (0..pg.members())
        .map(|i| db_agent(&pg, &cs, &agents_dir, &db_token, i))
        .collect();
    for (i, c) in cs.iter().enumerate() {
        let mut last = None;
        poll::poll(Duration::from_secs(90), Duration::from_millis(250), || {
            let db = db_section(c);
            let ok = db
                .as_ref()
                .is_some_and(|d| d.0 == sr_protocol::NodeStatus::Ok);
            last = db;
            ok.then_some(()).ok_or_else(String::new)
        })
        .unwrap_or_else(|_| panic!("collector {i}: db never OK with the agents: {last:?}"));
    }
    // The fan-out node is a plain host (type node): its alternating status makes
    // transitions without touching the db roll-up.
    let mut fan = Node::new("node", "failover-node");
    let mut acked: BTreeSet<(usize, u64)> = BTreeSet::new();
    let fan_report = |cs: &[Collector], fan: &mut Node, acked: &mut BTreeSet<(usize, u64)>| {
        let status = if fan.seq.is_multiple_of(2) {
            "Degraded"
        } else {
            "OK"
        };
        let (body, sig) = fan.next(status, now_ms());
        for (i, c) in cs.iter().enumerate() {
            let (code, v) =
                rt.block_on(c.put(&fan.path(), &report_headers(&token, &sig), body.clone()));
            assert_eq!(code, 200, "collector {i} must keep accepting: {v}");
            acked.insert((i, fan.seq));
            c.fetch_view()
                .unwrap_or_else(|e| panic!("collector {i} stopped answering: {e}"));
        }
    };
    for _ in 0..5 {
        fan_report(&cs, &mut fan, &mut acked);
    }
    let old = pg.leader().expect("leader");
    let dead = format!("db-{}", pg.member_name(old));
    pg.kill_patroni(old).unwrap();
    pg.kill_postgres(old).unwrap();
    // Keep reporting and reading every collector until another member leads and every
    // collector's `cluster status` has said the db is not OK, naming the dead member.
    let mut outage: Vec<Option<(sr_protocol::NodeStatus, Vec<String>)>> = vec![None; cs.len()];
    poll::poll(Duration::from_secs(90), Duration::from_millis(200), || {
        fan_report(&cs, &mut fan, &mut acked);
        for (i, c) in cs.iter().enumerate() {
            if outage[i].is_none() {
                let db = db_section(c)
                    .unwrap_or_else(|| panic!("collector {i}: cluster status shows no db"));
                let named = db.1.iter().any(|r| r.ends_with(&format!("({dead})")));
                if db.0 != sr_protocol::NodeStatus::Ok && named {
                    outage[i] = Some(db);
                }
            }
        }
        (pg.leader().is_some_and(|l| l != old) && outage.iter().all(Option::is_some))
            .then_some(())
            .ok_or_else(String::new)
    })
    .unwrap_or_else(|_| {
        panic!("no new leader, or a collector never showed the outage: {outage:?}")
    });
    for (i, db) in outage.iter().enumerate() {
        eprintln!("shared_store[6]: collector {i} during the outage: db {db:?}");
    }
    for _ in 0..5 {
        fan_report(&cs, &mut fan, &mut acked);
    }
    let want: BTreeSet<u64> = acked.iter().map(|a| a.1).collect();
    for (i, c) in cs.iter().enumerate() {
        let local: BTreeSet<u64> = c
            .node_transitions(NodeType::Node, "failover-node")
            .iter()
            .map(|t| t.seq)
            .collect();
        assert!(
            want.is_subset(&local),
            "collector {i} lost acknowledged transitions locally"
        );
    }
    wait_for(
        "every acknowledged transition in the shared store",
        Duration::from_secs(60),
        || {
            let got = shared_sql(
            &pg,
            "SELECT string_agg(seq::text, ',') FROM sr_transitions WHERE node_id = 'failover-node' AND service IS NULL",
        )
        .ok()?;
            let got: BTreeSet<u64> = got.split(',').filter_map(|s| s.parse().ok()).collect();
            want.is_subset(&got).then_some(())
        },
    );
    // The outage was real for every collector, and each is back and has written through.
    for (i, c) in cs.iter().enumerate() {
        wait_for(
            &format!("collector {i} synced again after the failover"),
            SYNC,
            || {
                let text = shared_metrics(c)?;
                let v = |n| harness::metrics::value_or_zero(&text, n, &[]);
                assert!(
                    v("status_reporter_shared_store_rounds_failed_total") >= 1.0,
                    "collector {i} never saw the outage"
                );
                (v("status_reporter_shared_store_connected") == 1.0
                    && v("status_reporter_shared_store_journal_keys") == 0.0)
                    .then_some(())
            },
        );
    }
    // No transition was written twice: the key is (node, boot id, seq).
    let dup = shared_sql(
        &pg,
        "SELECT count(*) - count(DISTINCT (node_type, node_id, boot_id, seq)) FROM sr_transitions",
    )
    .unwrap();
    assert_eq!(dup, "0");

    // 7. Retention in PostgreSQL: a, restarted with `transitions_per_node = 10`, trims the
    // shared store to failover-node's newest 10 transitions, and drops the replay floors
    // of the nodes forgotten in step 6; the forget tombstones (younger than the age) stay.
    let count = |sql: &str| -> i64 {
        shared_sql(&pg, sql)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1)
    };
    const FAN_ROWS: &str = "SELECT count(*) FROM sr_transitions WHERE node_id = 'failover-node'";
    poll::poll(Duration::from_secs(60), Duration::from_millis(200), || {
        fan_report(&cs, &mut fan, &mut acked);
        let n = count(FAN_ROWS);
        (n > 15).then_some(()).ok_or_else(|| format!("{n} rows"))
    })
    .expect("failover-node has more than 15 transitions in the shared store");
    let newest = fan.seq;
    let newest_row = format!(
        "SELECT count(*) FROM sr_transitions WHERE node_id = 'failover-node' AND seq = {newest}"
    );
    wait_for("the newest fan transition is shared", SYNC, || {
        (count(&newest_row) == 1).then_some(())
    });
    assert!(
        count("SELECT count(*) FROM sr_boots WHERE node_id = 'replay-r1'") > 0,
        "r1's floor was shared before the trim"
    );
    cs[0].stop();
    cs[0].set("transitions_per_node", "10");
    cs[0].spawn();
    let mut seen = (0, 0, 0);
    poll::poll(Duration::from_secs(60), Duration::from_millis(250), || {
        seen = (
            count(FAN_ROWS),
            count(&newest_row),
            count("SELECT count(*) FROM sr_boots WHERE node_id IN ('replay-r1', 'old-db0', 'old-db1', 'old-db2')"),
        );
        (seen == (10, 1, 0)).then_some(()).ok_or_else(String::new)
    })
    .unwrap_or_else(|_| panic!("a never trimmed the shared store: (rows, newest, floors) {seen:?}"));
    assert_eq!(
        count(
            "SELECT count(*) FROM sr_nodes WHERE node_id = 'replay-r1' AND deleted_ms IS NOT NULL"
        ),
        1,
        "a forget younger than the retention stays shared"
    );
    let text = shared_metrics(&cs[0]).expect("metrics");
    assert!(
        harness::metrics::value_or_zero(
            &text,
            "status_reporter_shared_store_rows_trimmed_total",
            &[]
        ) >= 6.0,
        "{text}"
    );
    for c in cs.iter_mut() {
        c.stop();
    }
}
