//! Membership attacks on the real collector (issue 12, "One role token must not rewrite
//! the view"), each sent as an attacker would: signed reports from node ids and keys of
//! its own, with the role token every db (or broker) node shares. It never holds a real
//! node's key, and it cannot put itself into a real member's view of the service
//! (Patroni's `/cluster`, RabbitMQ's cluster nodes): that takes joining the service.

mod harness;

use harness::fixtures::{now_ms, report_headers, Node};
use harness::*;
use serde_json::{json, Value};

/// Sends `node`'s next report with its type's shared token; the HTTP status.
async fn send(c: &Collector, node: &mut Node, status: &str) -> u16 {
    let (body, sig) = node.next(status, now_ms());
    let token = c.token(node.node_type);
    let (code, answer) = c
        .put(&node.path(), &report_headers(&token, &sig), body)
        .await;
    assert!(code < 500, "{code} {answer}");
    code
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
