//! Locks the wire format with golden JSON files under `tests/golden/`.
//! Refresh after an intended change with `UPDATE_GOLDEN=1 cargo test -p sr-protocol`.

use serde_json::json;
use sr_protocol::facts::DbFacts;
use sr_protocol::report::{
    AgentHealth, Extension, Facts, LegacyReport, ManagerDelivery, ReportBody, ServiceDetail,
    ServiceEntry, Transition,
};
use sr_protocol::view::{
    ClusterStatus, ListKind, NodeList, NodeListItem, NodeView, ServiceTypeView,
};
use sr_protocol::{NodeStatus, Reason, ServiceStatus};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn check_golden(name: &str, actual: &serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let rendered = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        rendered, expected,
        "{name} changed; if intended, refresh with UPDATE_GOLDEN=1"
    );
}

fn extended_report() -> ReportBody {
    let mut services = BTreeMap::new();
    services.insert(
        "Patroni".to_string(),
        ServiceEntry {
            status: ServiceStatus::Active,
            is_remote: None,
            extra_info: json!({"patroni_status": {"state": "running", "role": "master",
                "replications_state": [{"state": "streaming", "sync_state": "async"}]}})
            .as_object()
            .unwrap()
            .clone(),
        },
    );
    let mut details = BTreeMap::new();
    details.insert(
        "Patroni".to_string(),
        ServiceDetail {
            status: NodeStatus::Degraded,
            reasons: vec![Reason::new(
                "pending_restart",
                "PostgreSQL needs a restart to apply settings",
            )],
            duration_ms: 3,
        },
    );
    ReportBody {
        reporting_freq: 5,
        timestamp: "20261122161530+0000".into(),
        report: LegacyReport {
            status: NodeStatus::Degraded.legacy(),
            services,
        },
        extension: Some(Extension {
            version: 1,
            node_status: NodeStatus::Degraded,
            node_name: "db1".into(),
            private_ip: Some("10.0.0.21".into()),
            agent_version: "0.1.0".into(),
            boot_id: "5b0c1a8e-0d7f-4c1e-9a43-3e2f1f0c9d11".into(),
            seq: 42,
            reasons: vec![Reason::new(
                "pending_restart",
                "PostgreSQL needs a restart to apply settings",
            )],
            services: details,
            facts: Facts {
                db: Some(DbFacts {
                    member: Some("pg1".into()),
                    role: Some("leader".into()),
                    state: Some("running".into()),
                    timeline: Some(1),
                    ..Default::default()
                }),
                ..Facts::default()
            },
            agent_health: AgentHealth {
                managers: vec![ManagerDelivery {
                    manager: "10.0.0.11:53333".into(),
                    last_result: "ok".into(),
                    consecutive_failures: 0,
                    acked_seq: 41,
                }],
                last_cycle_ms: Some(4),
                persist_error: None,
            },
            transitions: vec![Transition {
                seq: 3,
                at_ms: 1_795_364_130_000,
                service: None,
                from: NodeStatus::Ok,
                to: NodeStatus::Degraded,
                reasons: vec![Reason::new(
                    "pending_restart",
                    "PostgreSQL needs a restart to apply settings",
                )],
            }],
            transitions_dropped: 0,
        }),
    }
}

#[test]
fn extended_report_v1_is_locked() {
    let report = extended_report();
    let value = serde_json::to_value(&report).unwrap();
    check_golden("report-extended-v1.json", &value);
    let bytes = serde_json::to_vec(&value).unwrap();
    assert_eq!(ReportBody::decode(&bytes).unwrap().body, report);
}

#[test]
fn python_reporter_body_decodes_as_legacy() {
    // The shape Cloudify 5.0.5's Python db reporter sends.
    let body = br#"{"reporting_freq": 5, "timestamp": "20200210121530+0000",
        "report": {"status": "OK", "services": {
            "Patroni": {"status": "Active", "extra_info": {"patroni_status":
                {"state": "running", "role": "master", "replications_state": []}}},
            "Etcd": {"status": "Active", "extra_info": {}}}}}"#;
    let decoded = ReportBody::decode(body).unwrap();
    assert!(decoded.body.extension.is_none());
    assert_eq!(decoded.body.node_status(), NodeStatus::Ok);
    assert_eq!(decoded.reporter_time, 1_581_336_930);
}

#[test]
fn bad_bodies_are_refused_with_a_reason() {
    let cases: &[(&[u8], &str)] = &[
        (b"{", "malformed"),
        (b"[]", "malformed"),
        (br#"{"reporting_freq": "5", "timestamp": "20200210121530+0000", "report": {"status": "OK", "services": {}}}"#, "malformed"),
        (br#"{"reporting_freq": 0, "timestamp": "20200210121530+0000", "report": {"status": "OK", "services": {}}}"#, "reporting_freq"),
        (br#"{"reporting_freq": 5, "timestamp": "yesterday", "report": {"status": "OK", "services": {}}}"#, "timestamp"),
        (br#"{"reporting_freq": 5, "timestamp": "20200210121530+0000", "report": {"status": "Degraded", "services": {}}}"#, "malformed"),
        (br#"{"reporting_freq": 5, "timestamp": "20200210121530+0000", "report": {"status": "OK", "services": {}}, "surprise": 1}"#, "unknown field"),
        (br#"{"reporting_freq": 5, "timestamp": "20200210121530+0000"}"#, "missing field"),
        (br#"{"reporting_freq": 5, "timestamp": "20200210121530+0000", "report": {"status": "OK", "services": {"x": {"status": "Up"}}}}"#, "malformed"),
    ];
    for (body, want) in cases {
        let err = ReportBody::decode(body).unwrap_err().to_string();
        assert!(
            err.contains(want),
            "{}: {err}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn cluster_status_view_is_locked() {
    let mut nodes = BTreeMap::new();
    nodes.insert(
        "db3".to_string(),
        NodeView {
            status: NodeStatus::Fail,
            node_id: "8245c7d4".into(),
            version: Some("0.1.0".into()),
            public_ip: None,
            private_ip: Some("10.0.0.23".into()),
            services: Default::default(),
            reasons: vec![
                Reason::new("stale", "no report for 17 s (stale after 15 s)").on_node("db3"),
            ],
            role: None,
            last_seen: Some("2026-11-22T16:15:13Z".into()),
            skew_ms: Some(-120),
            flapping: false,
            key_mismatch: false,
            signed: true,
            name: None,
            unvouched: false,
        },
    );
    let mut services = BTreeMap::new();
    services.insert(
        "db".to_string(),
        ServiceTypeView {
            status: NodeStatus::Degraded,
            is_external: false,
            nodes,
            reasons: vec![Reason::new("quorum_degraded", "2 of 3 db nodes healthy").on_node("db3")],
        },
    );
    let view = ClusterStatus {
        status: NodeStatus::Degraded,
        services,
        reasons: vec![],
    };
    check_golden(
        "cluster-status-v1.json",
        &serde_json::to_value(&view).unwrap(),
    );

    let item = |name: &str, node_id: &str, ip: &str, kind: ListKind| NodeListItem {
        id: name.into(),
        name: name.into(),
        hostname: name.into(),
        node_id: node_id.into(),
        private_ip: Some(ip.into()),
        public_ip: None,
        version: Some("0.1.0".into()),
        last_seen: None,
        networks: BTreeMap::from([("default".to_string(), ip.to_string())]),
        placeholder: false,
        kind,
    };
    let list = NodeList::new(vec![item(
        "manager1",
        "3d5d",
        "10.0.0.11",
        ListKind::Manager {
            edition: "community".into(),
            distribution: None,
            distro_release: None,
        },
    )]);
    check_golden(
        "managers-list-v1.json",
        &serde_json::to_value(&list).unwrap(),
    );
    let list = NodeList::new(vec![item(
        "broker1",
        "9a1b",
        "10.0.0.31",
        ListKind::Broker {
            host: Some("10.0.0.31".into()),
            port: None,
            is_external: false,
        },
    )]);
    check_golden(
        "brokers-list-v1.json",
        &serde_json::to_value(&list).unwrap(),
    );
    let mut placeholder = item(
        "collector-host",
        "collector-host",
        "10.0.0.11",
        ListKind::Db {
            host: Some("10.0.0.11".into()),
            is_external: false,
        },
    );
    placeholder.placeholder = true;
    let list = NodeList::new(vec![placeholder]);
    check_golden(
        "db-nodes-list-v1.json",
        &serde_json::to_value(&list).unwrap(),
    );
}
