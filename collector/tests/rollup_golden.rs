//! Golden views of the roll-up, with a fixed clock.
//!
//! Each scenario builds node records, judges them at `NOW` and rolls them up; the JSON
//! view must equal `tests/golden/<name>.json`. Refresh after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p sr-collector --test rollup_golden` and review the diff.
//! Most scenarios use managers (the generic rule) so they pin the node-level judgments
//! (staleness, key mismatch, flapping, skew, legacy reports); the db and broker rules
//! have their own unit tests. The `legacy_*` scenarios roll up the original 5.0.5
//! reporter's db and broker bodies, read byte for byte from docs/protocol.md.

#[path = "support/documented.rs"]
mod documented;

use serde_json::json;
use sr_collector::rollup::generic;
use sr_collector::rollup::{rollup, LatestReport, NodeInput, NodeRecord, Policy};
use sr_protocol::report::ReportBody;
use sr_protocol::{NodeStatus, NodeType};
use std::sync::Arc;

const NOW: i64 = 1_800_000_000_000;

fn body(status: &str, freq: u32, signed_ext: bool) -> ReportBody {
    let legacy = if status == "Fail" { "Fail" } else { "OK" };
    let mut v = json!({
        "reporting_freq": freq,
        "timestamp": "20270115080000+0000",
        "report": {"status": legacy, "services": {"Manager Rest-Service": {"status": if legacy == "OK" {"Active"} else {"Inactive"}, "extra_info": {}}}}
    });
    if signed_ext {
        v["status_reporter"] = json!({
            "version": 1, "node_status": status, "node_name": "ignored-here", "agent_version": "0.1.0",
            "boot_id": "b1", "seq": 1,
            "reasons": if status == "OK" { json!([]) } else { json!([{"code": "service_inactive", "message": "Manager Rest-Service is inactive"}]) }
        });
    }
    ReportBody::decode(&serde_json::to_vec(&v).unwrap())
        .unwrap()
        .body
}

fn record(name: &str, latest: Option<(ReportBody, i64, i64, bool)>) -> NodeRecord {
    NodeRecord {
        node_type: NodeType::Manager,
        node_id: format!("id-{name}"),
        name: name.into(),
        private_ip: Some("10.0.0.1".into()),
        key_mismatch: false,
        latest: latest.map(|(body, received_ms, skew_ms, signed)| {
            Arc::new(LatestReport {
                body,
                received_ms,
                skew_ms,
                signed,
            })
        }),
        status_changes_ms: Vec::new(),
    }
}

fn managers_only() -> Policy {
    Policy {
        required_types: vec![NodeType::Manager],
        ..Policy::default()
    }
}

fn check(name: &str, records: &[NodeRecord], policy: &Policy) -> serde_json::Value {
    let inputs: Vec<NodeInput> = records
        .iter()
        .map(|r| NodeInput::from_record(r, NOW, policy))
        .collect();
    let view = serde_json::to_value(rollup(&inputs, NOW, policy)).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let rendered = serde_json::to_string_pretty(&view).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        rendered,
        want,
        "view differs from {}; UPDATE_GOLDEN=1 refreshes it",
        path.display()
    );
    view
}

#[test]
fn an_empty_cluster_is_never_ok() {
    let v = check("empty", &[], &Policy::default());
    assert_eq!(v["status"], "Fail");
    assert_eq!(v["services"].as_object().unwrap().len(), 3);
    let v = check(
        "empty_no_required_types",
        &[],
        &Policy {
            required_types: vec![],
            ..Policy::default()
        },
    );
    assert_eq!(v["status"], "Fail");
}

#[test]
fn node_judgments_stale_mismatch_flapping_skew_legacy() {
    let fresh = NOW - 2_000;
    let mut mismatch = record(
        "m3-key-mismatch",
        Some((body("OK", 5, true), fresh, -10, true)),
    );
    mismatch.key_mismatch = true;
    let mut flapping = record("m6-flapping", Some((body("OK", 5, true), fresh, -10, true)));
    flapping.status_changes_ms = (0..6).map(|i| NOW - 60_000 + i * 5_000).collect();
    let mut old_flaps = record(
        "m8-old-flaps",
        Some((body("OK", 5, true), fresh, -10, true)),
    );
    old_flaps.status_changes_ms = (0..6).map(|i| NOW - 3_600_000 + i * 5_000).collect();
    let records = vec![
        record("m1-ok", Some((body("OK", 5, true), fresh, -12, true))),
        // 5 s period × 3 = 15 s; 16 s of silence is stale, whatever the reporter's clock said.
        record(
            "m2-stale",
            Some((body("OK", 5, true), NOW - 16_000, 0, true)),
        ),
        mismatch,
        record("m4-never-reported", None),
        record(
            "m5-future-clock",
            Some((body("OK", 5, true), fresh, 5_000, true)),
        ),
        flapping,
        record(
            "m7-legacy-fail",
            Some((body("Fail", 5, false), fresh, -400, false)),
        ),
        old_flaps,
        record(
            "m9-degraded",
            Some((body("Degraded", 5, true), fresh, -10, true)),
        ),
    ];
    let v = check("managers_mixed", &records, &managers_only());
    let nodes = &v["services"]["manager"]["nodes"];
    assert_eq!(
        v["status"], "Degraded",
        "one healthy manager keeps the service up"
    );
    assert_eq!(nodes["m1-ok"]["status"], "OK");
    assert_eq!(nodes["m2-stale"]["status"], "Fail");
    assert_eq!(nodes["m3-key-mismatch"]["status"], "Fail");
    assert_eq!(nodes["m4-never-reported"]["status"], "Fail");
    assert_eq!(nodes["m4-never-reported"]["services"], json!({}));
    assert_eq!(
        nodes["m5-future-clock"]["status"], "OK",
        "a report from the future is accepted"
    );
    assert_eq!(nodes["m5-future-clock"]["reasons"][0]["code"], "clock_skew");
    assert_eq!(nodes["m6-flapping"]["status"], "Degraded");
    assert_eq!(nodes["m6-flapping"]["flapping"], true);
    assert_eq!(nodes["m8-old-flaps"]["flapping"], false);
    assert_eq!(nodes["m7-legacy-fail"]["signed"], false);
    assert_eq!(nodes["m9-degraded"]["status"], "Degraded");
    for (name, n) in nodes.as_object().unwrap() {
        if n["status"] != "OK" {
            let reasons = n["reasons"].as_array().unwrap();
            assert!(!reasons.is_empty(), "{name} is not OK but has no reason");
            assert!(
                reasons.iter().all(|r| r["node"] == name.as_str()),
                "{name}: {reasons:?}"
            );
        }
    }
}

#[test]
fn stale_uses_the_nodes_own_period() {
    // A 60 s reporter 100 s silent is fresh (stale after 180 s); a 5 s one is not.
    let records = [
        record("slow", Some((body("OK", 60, true), NOW - 100_000, 0, true))),
        record("fast", Some((body("OK", 5, true), NOW - 100_000, 0, true))),
    ];
    let inputs: Vec<NodeInput> = records
        .iter()
        .map(|r| NodeInput::from_record(r, NOW, &managers_only()))
        .collect();
    assert!(inputs[0].fresh && inputs[0].status == NodeStatus::Ok);
    assert!(!inputs[1].fresh && inputs[1].status == NodeStatus::Fail);
}

#[test]
fn all_managers_down_is_fail() {
    let records = vec![
        record("a", Some((body("OK", 5, true), NOW - 60_000, 0, true))),
        record("b", None),
    ];
    let v = check("managers_all_down", &records, &managers_only());
    assert_eq!(v["status"], "Fail");
    assert!(v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["code"] == "quorum_lost"));
}

#[test]
fn generic_quorum_for_db_and_broker_is_a_majority() {
    let policy = Policy::default();
    let input = |t: NodeType, ok: bool, i: usize| {
        let mut r = record(
            &format!("n{i}"),
            Some((body(if ok { "OK" } else { "Fail" }, 5, true), NOW, 0, true)),
        );
        r.node_type = t;
        NodeInput::from_record(&r, NOW, &policy)
    };
    for t in [NodeType::Db, NodeType::Broker] {
        let three = |fails: usize| (0..3).map(|i| input(t, i >= fails, i)).collect::<Vec<_>>();
        assert_eq!(generic::rollup(&three(0), &policy).0, NodeStatus::Ok);
        assert_eq!(generic::rollup(&three(1), &policy).0, NodeStatus::Degraded);
        let (s, reasons) = generic::rollup(&three(2), &policy);
        assert_eq!(s, NodeStatus::Fail);
        assert!(reasons.iter().any(|r| r.code == "quorum_lost"));
        let four: Vec<_> = (0..4).map(|i| input(t, i >= 2, i)).collect();
        assert_eq!(
            generic::rollup(&four, &policy).0,
            NodeStatus::Fail,
            "2 of 4 is below ⌊4/2⌋+1"
        );
    }
    // 1 OK + 2 Fail managers: still Degraded (any manager serves).
    let m: Vec<_> = (0..3)
        .map(|i| input(NodeType::Manager, i == 0, i))
        .collect();
    assert_eq!(generic::rollup(&m, &policy).0, NodeStatus::Degraded);
}

/// A 5.0.5 reporter's body as docs/protocol.md gives it, byte for byte.
fn documented_body(name: &str) -> Vec<u8> {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    documented::documented_body(&doc, name)
}

/// A node whose last report, a second old, is the documented legacy body `body`, unsigned
/// as 5.0.5 sends it.
fn legacy_record(node_type: NodeType, name: &str, body: &str) -> NodeRecord {
    let body = ReportBody::decode(&documented_body(body)).unwrap().body;
    assert!(body.extension.is_none());
    let mut r = record(name, Some((body, NOW - 1_000, 0, false)));
    r.node_type = node_type;
    r
}

fn only(t: NodeType) -> Policy {
    Policy {
        required_types: vec![t],
        ..Policy::default()
    }
}

#[test]
fn a_healthy_legacy_db_cluster_is_ok() {
    // A master with a sync and an async streaming replica, all three 5.0.5 reporters.
    let records = [
        legacy_record(NodeType::Db, "db1", "db-master"),
        legacy_record(NodeType::Db, "db2", "db-replica"),
        legacy_record(NodeType::Db, "db3", "db-replica"),
    ];
    let v = check("legacy_db_healthy", &records, &only(NodeType::Db));
    assert_eq!(v["status"], "OK", "{v:#}");
    let nodes = &v["services"]["db"]["nodes"];
    assert_eq!(nodes["db1"]["role"], "leader");
    assert_eq!(nodes["db2"]["role"], "replica");
    assert_eq!(nodes["db3"]["signed"], false);
}

#[test]
fn contradicting_legacy_broker_views_are_split_brain() {
    // broker1 and broker2 see broker3 down; broker3 sees both of them down.
    let records = [
        legacy_record(NodeType::Broker, "broker1", "broker-majority"),
        legacy_record(NodeType::Broker, "broker2", "broker-majority"),
        legacy_record(NodeType::Broker, "broker3", "broker-minority"),
    ];
    let v = check(
        "legacy_broker_split_brain",
        &records,
        &only(NodeType::Broker),
    );
    assert_eq!(v["status"], "Fail");
    let split: Vec<&serde_json::Value> = v["services"]["broker"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "split_brain")
        .collect();
    assert_eq!(split.len(), 2, "broker1|broker3 and broker2|broker3: {v:#}");
    assert!(split
        .iter()
        .all(|r| r["message"].as_str().unwrap().contains("broker3")));

    // Views that agree are no split brain, even while they see a member down.
    let healed = [
        legacy_record(NodeType::Broker, "broker1", "broker-majority"),
        legacy_record(NodeType::Broker, "broker2", "broker-majority"),
        legacy_record(NodeType::Broker, "broker3", "broker-majority"),
    ];
    let inputs: Vec<NodeInput> = healed
        .iter()
        .map(|r| NodeInput::from_record(r, NOW, &only(NodeType::Broker)))
        .collect();
    let view = rollup(&inputs, NOW, &only(NodeType::Broker));
    assert_eq!(view.status, NodeStatus::Ok, "{view:?}");
}
