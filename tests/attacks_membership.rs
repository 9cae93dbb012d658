//! Membership attacks on the real collector (issue 12, "One role token must not rewrite
//! the view"), each sent as an attacker would: signed reports from node ids and keys of
//! its own, with the role token every db (or broker) node shares. It never holds a real
//! node's key, and it cannot put itself into a real member's view of the service
//! (Patroni's `/cluster`, RabbitMQ's cluster nodes): that takes joining the service.

mod harness;

use harness::fixtures::{self, now_ms, report_headers, Node};
use harness::*;
use serde_json::{json, Value};

/// Sends `node`'s next report with its type's shared token; the HTTP status.
async fn send(c: &Collector, node: &mut Node, status: &str) -> u16 {
    send_coded(c, node, status).await.0
}

/// Sends `node`'s next report: the HTTP status and the answer's `error_code`.
async fn send_coded(c: &Collector, node: &mut Node, status: &str) -> (u16, String) {
    let (body, sig) = node.next(status, now_ms());
    let token = c.token(node.node_type);
    let (code, answer) = c
        .put(&node.path(), &report_headers(&token, &sig), body)
        .await;
    let error = answer["error_code"].as_str().unwrap_or("").to_string();
    (code, error)
}

/// Sends `node`'s reports every 50 ms, as an agent retries, until one is answered 200;
/// panics with `what` after [`DEADLINE`].
async fn admitted(c: &Collector, node: &mut Node, what: &str) {
    let start = std::time::Instant::now();
    loop {
        let (code, error) = send_coded(c, node, "OK").await;
        if code == 200 {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}: {code} {error}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The collector's counters (`GET /api/v3.1/status`, `collector`).
async fn counter(c: &Collector, name: &str) -> u64 {
    let admin = c.token("admin");
    let (code, v) = c
        .get(
            "/api/v3.1/status",
            &[(sr_protocol::TOKEN_HEADER, admin.as_str())],
        )
        .await;
    assert_eq!(code, 200, "{v}");
    v["collector"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {v:#}"))
}

/// Node ids in the store, as `nodes list --json` prints them.
fn stored_ids(c: &Collector) -> Vec<String> {
    let (code, out, err) = c.nodes(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let mut ids: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// `GET /cluster-status?summary=true`: what a load balancer's health check reads.
async fn summary(c: &Collector) -> u16 {
    let admin = c.token("admin");
    c.get(
        "/api/v3.1/cluster-status?summary=true",
        &[(sr_protocol::TOKEN_HEADER, admin.as_str())],
    )
    .await
    .0
}

fn node(node_type: &'static str, id: &str, name: &str, facts: Value) -> Node {
    Node {
        name: name.into(),
        facts,
        reporting_freq: 3600,
        ..Node::new(node_type, id)
    }
}

fn rabbit(me: &str, members: &[(&str, bool)]) -> Value {
    let view: serde_json::Map<String, Value> = members
        .iter()
        .map(|(m, up)| (m.to_string(), (*up).into()))
        .collect();
    json!({"broker": {"node_name": me, "cluster_view": view}})
}

/// A Patroni member's facts with a fresh `/cluster` view listing `members`.
fn patroni(me: &str, role: &str, members: &[&str]) -> Value {
    let view: serde_json::Map<String, Value> = members
        .iter()
        .map(|m| {
            let role = if *m == "pg1" { "leader" } else { "replica" };
            (
                m.to_string(),
                json!({"role": role, "state": "running", "timeline": 1}),
            )
        })
        .collect();
    json!({"db": {"member": me, "role": role, "state": "running", "timeline": 1,
        "patroni_reachable": true, "dcs_reachable": true, "postgres_running": true,
        "in_recovery": role != "leader", "cluster_view_age_s": 1, "cluster_leader": "pg1",
        "cluster_members": view}})
}

fn service<'v>(view: &'v Value, t: &str) -> &'v Value {
    &view["services"][t]
}

fn reason<'v>(svc: &'v Value, code: &str) -> Option<&'v str> {
    svc["reasons"]
        .as_array()?
        .iter()
        .find(|r| r["code"] == code)
        .and_then(|r| r["message"].as_str())
}

/// Waits until the view's `t` type has `rows` rows; that view.
async fn rows(c: &Collector, t: &str, rows: usize) -> Value {
    let count = |v: &Value| service(v, t)["nodes"].as_object().map_or(0, |m| m.len());
    eventually(&format!("{rows} {t} rows"), DEADLINE, || async {
        count(&c.view().await) == rows
    })
    .await;
    c.view().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_brokers_do_not_lift_a_lost_quorum() {
    let c = Collector::start_in_temp_dir(&[("required_types", "[\"broker\"]")]);
    let real = [
        ("rabbit@r1", true),
        ("rabbit@r2", false),
        ("rabbit@r3", false),
    ];
    let mut r1 = node("broker", "r1", "broker1", rabbit("rabbit@r1", &real));
    let mut r2 = node(
        "broker",
        "r2",
        "broker2",
        json!({"broker": {"node_name": "rabbit@r2"}}),
    );
    let mut r3 = node(
        "broker",
        "r3",
        "broker3",
        json!({"broker": {"node_name": "rabbit@r3"}}),
    );
    assert_eq!(send(&c, &mut r1, "OK").await, 200);
    assert_eq!(send(&c, &mut r2, "Fail").await, 200);
    assert_eq!(send(&c, &mut r3, "Fail").await, 200);
    let view = rows(&c, "broker", 3).await;
    assert_eq!(service(&view, "broker")["status"], "Fail");
    assert_eq!(summary(&c).await, 500);

    // The attacker: three OK brokers whose views list every member, themselves included,
    // running. Before the fix: "4 of 6 (quorum 4)", Degraded, and summary 200.
    let mut all: Vec<(&str, bool)> = real.iter().map(|(m, _)| (*m, true)).collect();
    all.extend([
        ("rabbit@f1", true),
        ("rabbit@f2", true),
        ("rabbit@f3", true),
    ]);
    for i in 1..=3 {
        let me = format!("rabbit@f{i}");
        let mut fake = node(
            "broker",
            &format!("f{i}"),
            &format!("fake{i}"),
            rabbit(&me, &all),
        );
        assert_eq!(
            send(&c, &mut fake, "OK").await,
            200,
            "the token is all it takes"
        );
    }
    let view = rows(&c, "broker", 6).await;
    let svc = service(&view, "broker");
    assert_eq!(svc["status"], "Fail", "{svc:#}");
    let lost = reason(svc, "quorum_lost").expect("quorum_lost");
    assert!(lost.starts_with("1 of 3 "), "{lost}");
    for i in 1..=3 {
        let row = &svc["nodes"][format!("fake{i}")];
        assert_eq!(row["unvouched"], true, "{row:#}");
        assert_eq!(row["status"], "Degraded");
    }
    assert!(svc["nodes"]["broker1"].get("unvouched").is_none());
    assert_eq!(summary(&c).await, 500, "a load balancer still sees Fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_db_nodes_do_not_lift_quorum() {
    let c = Collector::start_in_temp_dir(&[("required_types", "[\"db\"]")]);
    let members = ["pg1", "pg2", "pg3"];
    let mut leader = node("db", "d1", "db1", patroni("pg1", "leader", &members));
    let mut d2 = node(
        "db",
        "d2",
        "db2",
        json!({"db": {"member": "pg2", "patroni_reachable": false}}),
    );
    let mut d3 = node(
        "db",
        "d3",
        "db3",
        json!({"db": {"member": "pg3", "patroni_reachable": false}}),
    );
    assert_eq!(send(&c, &mut leader, "OK").await, 200);
    assert_eq!(send(&c, &mut d2, "Fail").await, 200);
    assert_eq!(send(&c, &mut d3, "Fail").await, 200);
    rows(&c, "db", 3).await;
    assert_eq!(summary(&c).await, 500);

    // Three fake replicas: two copy the real view and add themselves, one sends no facts.
    // Before the fix the healthy count was 4 of 6, the quorum held, and db was Degraded.
    let forged = ["pg1", "pg2", "pg3", "pg-f1", "pg-f2"];
    for i in 1..=3 {
        let facts = if i < 3 {
            patroni(&format!("pg-f{i}"), "replica", &forged)
        } else {
            json!({})
        };
        let mut fake = node("db", &format!("f{i}"), &format!("fake{i}"), facts);
        assert_eq!(send(&c, &mut fake, "OK").await, 200);
    }
    let view = rows(&c, "db", 6).await;
    let svc = service(&view, "db");
    assert_eq!(svc["status"], "Fail", "{svc:#}");
    let lost = reason(svc, "quorum_lost").expect("quorum_lost");
    assert!(lost.starts_with("1 of 3 "), "{lost}");
    assert_eq!(summary(&c).await, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_name_impostor_cannot_hide_the_failing_row() {
    let c = Collector::start_in_temp_dir(&[("required_types", "[\"db\"]")]);
    let mut real = node("db", "legit1", "dbA", json!({}));
    assert_eq!(send(&c, &mut real, "Fail").await, 200);
    // A second node named dbA, and a third named like the real one's disambiguated row.
    let mut twin = node("db", "evil-1", "dbA", json!({}));
    let mut mimic = node("db", "evil-2", "dbA (legit1)", json!({}));
    assert_eq!(send(&c, &mut twin, "OK").await, 200);
    assert_eq!(send(&c, &mut mimic, "OK").await, 200);

    // Before the fix the mimic took the real node's row: 2 rows for 3 nodes.
    let view = rows(&c, "db", 3).await;
    let nodes = service(&view, "db")["nodes"].as_object().unwrap();
    let by_id: std::collections::BTreeMap<&str, (&str, &Value)> = nodes
        .iter()
        .map(|(k, v)| (v["node_id"].as_str().unwrap(), (k.as_str(), v)))
        .collect();
    assert_eq!(by_id.len(), 3, "one row per node id: {nodes:#?}");
    let (key, row) = by_id["legit1"];
    assert_eq!(key, "dbA (legit1)");
    assert_eq!(row["status"], "Fail");
    assert_eq!(row["name"], "dbA");
    assert!(row["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["code"] == "duplicate_name"));
    assert_eq!(by_id["evil-1"].0, "dbA (evil-1)");
    assert_ne!(by_id["evil-2"].0, "dbA (legit1)");
    // What the operator reads in the terminal has every row too.
    let status = c.status();
    let printed = status
        .node_json("dbA (legit1)")
        .expect("the real row is printed");
    assert_eq!(printed["status"], "Fail");
}

/// Sends one made-up node id's first report over `client`: the status and whether a 429
/// carried `Retry-After`.
async fn flood_one(
    client: sr_tls::HttpsClient,
    base: String,
    token: String,
    i: usize,
) -> (u16, bool) {
    let mut n = Node::new("db", &format!("flood-{i}"));
    let (body, sig) = n.next("OK", now_ms());
    let headers = report_headers(&token, &sig);
    let r = client
        .request(
            http::Method::PUT,
            &format!("{base}{}", n.path()),
            &headers,
            body.into(),
            std::time::Duration::from_secs(20),
            1 << 20,
        )
        .await
        .expect("the collector answers");
    let retry = r.headers.contains_key(http::header::RETRY_AFTER);
    (r.status.as_u16(), retry)
}

/// The exhaustion attack: 20,000 new node ids from the shared db token, 64 at a
/// time. Before the fix all fitted under `max_nodes` (20,000) and the next real node got
/// 507 for good; now the token introduces `new_nodes_per_window` per window, the rest get
/// 429 with `Retry-After`, and a real node gets in once the window turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_new_node_ids_do_not_lock_a_real_node_out() {
    let c = Collector::start_in_temp_dir(&[
        ("required_types", "[\"db\"]"),
        ("new_nodes_per_window", "100"),
        ("new_node_window_secs", "2"),
    ]);
    let token = c.token("db");
    let base = c.url("");
    let started = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let (mut accepted, mut throttled, mut retry_after) = (0usize, 0usize, 0usize);
    for i in 0..20_000 {
        if set.len() >= 64 {
            let (code, retry) = set.join_next().await.unwrap().unwrap();
            match code {
                200 => accepted += 1,
                429 => {
                    throttled += 1;
                    retry_after += usize::from(retry);
                }
                other => panic!("unexpected {other}"),
            }
        }
        set.spawn(flood_one(c.client(), base.clone(), token.clone(), i));
    }
    while let Some(done) = set.join_next().await {
        let (code, retry) = done.unwrap();
        match code {
            200 => accepted += 1,
            429 => {
                throttled += 1;
                retry_after += usize::from(retry);
            }
            other => panic!("unexpected {other}"),
        }
    }
    // The collector's windows are not aligned with `started`: a run of T seconds overlaps
    // at most floor(T / 2) + 2 windows of 2 s (a partial one at each end).
    let windows = started.elapsed().as_secs() / 2 + 2;
    assert_eq!(accepted + throttled, 20_000);
    assert!(
        accepted as u64 <= 100 * windows,
        "{accepted} new ids in {windows} windows of 100"
    );
    assert_eq!(retry_after, throttled, "every 429 says when to retry");
    assert_eq!(counter(&c, "new_nodes_throttled").await, throttled as u64);

    // The real node (same token) gets in within a window, retrying as the agent does.
    let mut real = node("db", "3d5d-real", "db1", json!({}));
    admitted(&c, &mut real, "the real node is admitted").await;
    let view = c.view().await;
    assert!(fixtures::find_node(&view, "3d5d-real").is_some());
}

/// `max_nodes` filled by made-up ids (here 30 of 30): the real node is refused 507 only
/// until the store forgets the silent ones (`forget_after`), not forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ids_nobody_reports_for_expire_and_free_max_nodes() {
    let c = Collector::start_in_temp_dir(&[
        ("required_types", "[\"db\"]"),
        ("max_nodes", "30"),
        // 2 s of silence.
        ("forget_after_days", "0.0000232"),
    ]);
    for i in 0..30 {
        let mut fake = node("db", &format!("made-up-{i}"), &format!("m{i}"), json!({}));
        assert_eq!(send(&c, &mut fake, "OK").await, 200);
    }
    let mut real = node("db", "3d5d-real", "db1", json!({}));
    assert_eq!(
        send_coded(&c, &mut real, "OK").await,
        (507, "too_many_nodes".into())
    );
    admitted(
        &c,
        &mut real,
        "the silent ids expire and the real node gets in",
    )
    .await;
    assert!(counter(&c, "nodes_expired").await >= 1);
}

/// `nodes forget --stale-for` and `--unvouched` print what they remove and need `--yes`
/// for more than one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_forget_prints_what_it_removes_and_needs_yes() {
    let c = Collector::start_in_temp_dir(&[("required_types", "[\"broker\"]")]);
    let mut real = node(
        "broker",
        "r1",
        "broker1",
        rabbit("rabbit@r1", &[("rabbit@r1", true), ("rabbit@r2", true)]),
    );
    let mut peer = node(
        "broker",
        "r2",
        "broker2",
        rabbit("rabbit@r2", &[("rabbit@r1", true), ("rabbit@r2", true)]),
    );
    let mut fake = node("broker", "evil-1", "broker3", json!({}));
    for n in [&mut real, &mut peer, &mut fake] {
        assert_eq!(send(&c, n, "OK").await, 200);
    }
    // The CLI judges what the store holds: wait for the write-behind of all three.
    eventually("latest reports stored", DEADLINE, || async {
        let (_, out, _) = c.nodes(&["list", "--json"]);
        let rows: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        rows.as_array()
            .is_some_and(|r| r.len() == 3 && r.iter().all(|n| n["last_seen_ms"].is_i64()))
    })
    .await;

    let (code, out, err) = c.nodes(&["forget", "--unvouched"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("evil-1") && !out.contains("r1 "), "{out}");
    assert_eq!(stored_ids(&c), ["r1", "r2"]);

    let (code, out, err) = c.nodes(&["forget", "--stale-for", "0s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("r1") && out.contains("r2"), "{out}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(
        stored_ids(&c),
        ["r1", "r2"],
        "nothing removed without --yes"
    );
    let (code, out, err) = c.nodes(&["forget", "--stale-for", "0s", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(stored_ids(&c).is_empty());
    let (code, _, err) = c.nodes(&["forget", "--stale-for", "7 days"]);
    assert_ne!(code, 0);
    assert!(err.contains("unit"), "{err}");
}

/// `admission = "approve"`, end to end on the real binary: a new node's reports are held
/// (202, not in the view), listed by `nodes pending` with its key fingerprint and source,
/// kept across a restart, admitted by `nodes approve --fingerprint`; an impostor's id is
/// rejected and its key refused from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_mode_holds_new_nodes_until_an_operator_admits_them() {
    let mut c = Collector::start_in_temp_dir(&[
        ("required_types", "[\"db\"]"),
        ("admission", "\"approve\""),
    ]);
    let mut real = node("db", "3d5d-real", "db1", json!({}));
    let mut evil = node("db", "evil-1", "db1", json!({}));
    assert_eq!(
        send_coded(&c, &mut real, "OK").await,
        (202, "pending_approval".into())
    );
    assert_eq!(
        send_coded(&c, &mut evil, "OK").await,
        (202, "pending_approval".into())
    );
    let view = c.view().await;
    assert!(
        fixtures::find_node(&view, "3d5d-real").is_none(),
        "held, not in the view"
    );
    assert_eq!(
        view["services"]["db"]["status"], "Fail",
        "pending nodes count for nothing"
    );
    assert_eq!(summary(&c).await, 500);
    assert!(stored_ids(&c).is_empty());

    let pending = |c: &Collector| -> Vec<Value> {
        let (code, out, err) = c.nodes(&["pending", "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let rows = pending(&c);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let row = rows.iter().find(|r| r["node_id"] == "3d5d-real").unwrap();
    assert_eq!(row["fingerprint"], real.key.fingerprint().as_str());
    assert_eq!(row["source"], "127.0.0.1");
    assert_eq!(row["name"], "db1");
    let (_, table, _) = c.nodes(&["pending"]);
    assert!(table.contains(&real.key.fingerprint()), "{table}");

    // Durable: a restart keeps the list, and the held id is still held.
    assert!(c.stop().success());
    c.spawn();
    assert_eq!(pending(&c).len(), 2);
    assert_eq!(
        send_coded(&c, &mut real, "OK").await,
        (202, "pending_approval".into())
    );

    // A fingerprint that is not the node's approves nothing.
    let (code, _, err) = c.nodes(&[
        "approve",
        "3d5d-real",
        "--fingerprint",
        &evil.key.fingerprint(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("nothing was approved"), "{err}");
    let fp = real.key.fingerprint();
    let (code, out, err) = c.nodes(&["approve", "3d5d-real", "--fingerprint", &fp]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = c.nodes(&["reject", "evil-1"]);
    assert_eq!(code, 0, "{out}{err}");

    admitted(&c, &mut real, "the approved node's report enters the view").await;
    let view = c.view().await;
    assert_eq!(
        fixtures::find_node(&view, "3d5d-real").unwrap().1["status"],
        "OK"
    );
    assert_eq!(
        send_coded(&c, &mut evil, "OK").await,
        (403, "key_forgotten".into()),
        "a rejected key is not held again"
    );
    assert_eq!(pending(&c).len(), 0);
    // Counted since the restart: the held report, and any the agent-like retries sent
    // before the running collector loaded the approval.
    assert!(counter(&c, "reports_held_for_approval").await >= 1);
}

/// A real agent held by an approve-mode collector: the 202 `pending_approval` is
/// "delivered, awaiting approval", not a push failure. One WARN with the command and the
/// fingerprint (not one per cycle), no retry, no failure in the self-health; after
/// `nodes approve` the node is admitted and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_held_for_approval_logs_it_once_and_counts_no_failure() {
    let c = Collector::start_in_temp_dir(&[
        ("required_types", "[\"db\"]"),
        ("admission", "\"approve\""),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let probe = fixtures::tcp_probe("collector-port", &c.addr.to_string());
    let mut agent =
        Agent::for_collector(&tmp.path().join("db1"), "db1", "db", &c, vec![probe], None);
    agent.start();
    // Several cycles held (one report a second): enough for a per-cycle line to repeat.
    eventually("five reports held for approval", DEADLINE, || async {
        counter(&c, "reports_held_for_approval").await >= 5
    })
    .await;
    let (code, out, err) = c.nodes(&["pending", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let fingerprint = rows[0]["fingerprint"]
        .as_str()
        .expect("held with a key")
        .to_string();
    assert_eq!(rows[0]["node_id"], agent.node_id.as_str());

    let log = agent.log();
    let held: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("awaits an operator's approval"))
        .collect();
    assert_eq!(held.len(), 1, "logged once, not per cycle:\n{log}");
    assert!(
        held[0].contains(&format!(
            "nodes approve {} --fingerprint {fingerprint}",
            agent.node_id
        )),
        "the line says what to run: {}",
        held[0]
    );
    for failure in ["http 202", "not delivered", "rejected", "circuit open"] {
        assert!(
            !log.contains(failure),
            "{failure:?} in the agent log:\n{log}"
        );
    }
    // The self-health the agent persists (and sends) counts no failure.
    let health: Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("db1/state/agent-health.json")).unwrap(),
    )
    .unwrap();
    let delivery = &health["managers"][0];
    assert_eq!(delivery["consecutive_failures"], 0, "{health:#}");
    assert!(
        delivery["last_result"]
            .as_str()
            .unwrap()
            .starts_with("pending_approval"),
        "{health:#}"
    );

    let (code, out, err) = c.nodes(&["approve", &agent.node_id, "--fingerprint", &fingerprint]);
    assert_eq!(code, 0, "{out}{err}");
    c.wait("the approved agent in the view", DEADLINE, |s| {
        s.service("db")
            .and_then(|v| v.nodes.get("db1"))
            .is_some_and(|n| n.last_seen.is_some())
    });
    poll::wait_for("the agent logs its admission", DEADLINE, || {
        agent.log().contains("node approved").then_some(())
    });
    agent.kill();
}
