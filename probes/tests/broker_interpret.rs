//! The `rabbitmq` probe's pure `interpret`, driven by responses captured from a real
//! 3-node RabbitMQ 3.10.8 cluster (`golden/broker/raw/*.json`, each one a serialized
//! `rabbitmq::Raw`) and by hostile variants of them.
//!
//! Every captured scenario has a golden finding (`golden/broker/<name>.finding.json`);
//! `UPDATE_GOLDEN=1 cargo test -p sr-probes --test broker_interpret` refreshes them. The
//! asserts next to each golden say what must hold whatever the golden says.

use sr_probes::net::amqp::{Outcome, Step};
use sr_probes::net::{Secret, TlsFiles};
use sr_probes::rabbitmq::{AmqpSeen, Config, Rabbitmq, Raw, Reply};
use sr_probes::{Finding, TypedProbe};
use sr_protocol::{NodeStatus, ServiceStatus};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/broker")
}

fn cfg(amqp_port: u16) -> Config {
    Config {
        management_url: "http://127.0.0.1:15783".into(),
        tls: TlsFiles::default(),
        username: "monitor".into(),
        password: Secret::new("monitor"),
        node_name: None,
        amqp_host: "127.0.0.1".into(),
        amqp_port,
        vhost: "/".into(),
        amqp_every: 6,
        amqp_publish: true,
        amqp_timeout_ms: 5000,
        cert_expiry_days: 30,
        fd_warn_ratio: 0.9,
        timeout_ms: 2000,
        max_body_bytes: 1 << 20,
    }
}

fn raw(name: &str) -> Raw {
    let path = dir().join("raw").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn summary(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "status": f.status,
        "reasons": f.reasons,
        "services": f.services,
        "facts": f.facts,
    })
}

/// Compares with the golden file, or rewrites it under `UPDATE_GOLDEN=1`.
fn golden(name: &str, f: &Finding) {
    let path = dir().join(format!("{name}.finding.json"));
    let got = serde_json::to_string_pretty(&summary(f)).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        got,
        want,
        "golden {} differs (UPDATE_GOLDEN=1 refreshes it)",
        path.display()
    );
}

fn codes(f: &Finding) -> Vec<&str> {
    f.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn cluster_status(f: &Finding) -> &serde_json::Map<String, serde_json::Value> {
    f.services["RabbitMQ"].extra_info["cluster_status"]
        .as_object()
        .expect("cluster_status is a map")
}

fn ok_amqp() -> AmqpSeen {
    AmqpSeen {
        outcome: Outcome {
            failed_step: None,
            error: None,
            blocked: false,
            connect_ms: Some(3),
            round_trip_ms: Some(1),
            closed_cleanly: true,
        },
        cycles_ago: 0,
    }
}

#[test]
fn healthy_cluster_is_ok_with_the_exact_legacy_shape() {
    let f = Rabbitmq::interpret(&cfg(5783), &raw("healthy"));
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    assert!(f.reasons.is_empty());
    let entry = &f.services["RabbitMQ"];
    assert_eq!(entry.status, ServiceStatus::Active);
    assert_eq!(entry.is_remote, None);
    assert_eq!(
        entry.extra_info["node_status"],
        serde_json::json!({"status": "ok"})
    );
    let cs = cluster_status(&f);
    assert_eq!(cs.len(), 3);
    assert!(cs.values().all(|v| v == "OK"), "{cs:?}");
    let b = f.facts.broker.as_ref().unwrap();
    assert_eq!(b.node_name.as_deref(), Some("brk1@localhost"));
    assert_eq!(b.local_alarm, Some(false));
    assert_eq!(b.management_ok, Some(true));
    assert!(b.partitions.is_empty());
    assert_eq!(b.cluster_view.values().filter(|r| **r).count(), 3);
    golden("healthy", &f);
    golden(
        "healthy-node2",
        &Rabbitmq::interpret(&cfg(5784), &raw("healthy-node2")),
    );
}

#[test]
fn a_stopped_peer_degrades_and_is_named() {
    let f = Rabbitmq::interpret(&cfg(5783), &raw("node-stopped"));
    assert_eq!(f.status, NodeStatus::Degraded);
    assert_eq!(codes(&f), ["peer_down"]);
    assert!(f.reasons[0].message.contains("brk3@localhost"));
    assert_eq!(f.reasons[0].node.as_deref(), Some("brk3@localhost"));
    assert_eq!(cluster_status(&f)["brk3@localhost"], "Fail");
    assert_eq!(cluster_status(&f)["brk1@localhost"], "OK");
    assert_eq!(f.services["RabbitMQ"].status, ServiceStatus::Active);
    golden("node-stopped", &f);
}

#[test]
fn the_stopped_node_itself_fails_as_management_unreachable() {
    let mut c = cfg(5785);
    c.node_name = Some("brk3@localhost".into());
    let f = Rabbitmq::interpret(&c, &raw("node-stopped-self"));
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["management_unreachable"]);
    assert!(
        f.reasons[0].message.contains("refused"),
        "{}",
        f.reasons[0].message
    );
    assert!(f.reasons[0].message.contains("AMQP not checked yet"));
    assert_eq!(f.services["RabbitMQ"].status, ServiceStatus::Inactive);
    assert_eq!(
        f.services["RabbitMQ"].extra_info["node_status"]["status"],
        "failed"
    );
    assert_eq!(
        f.facts.broker.as_ref().unwrap().node_name.as_deref(),
        Some("brk3@localhost")
    );
    golden("node-stopped-self", &f);
}

#[test]
fn a_local_memory_alarm_fails_that_node_only() {
    let f = Rabbitmq::interpret(&cfg(5784), &raw("mem-alarm-self"));
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["local_alarm"]);
    assert!(
        f.reasons[0].message.contains("memory") && f.reasons[0].message.contains("brk2@localhost")
    );
    assert_eq!(f.facts.broker.as_ref().unwrap().local_alarm, Some(true));
    golden("mem-alarm-self", &f);

    // The same moment seen from a peer: the peer is not blamed.
    let peer = Rabbitmq::interpret(&cfg(5783), &raw("mem-alarm-peer"));
    assert_eq!(peer.status, NodeStatus::Ok, "{:?}", peer.reasons);
    assert_eq!(peer.facts.broker.as_ref().unwrap().local_alarm, Some(false));
    golden("mem-alarm-peer", &peer);
}

#[test]
fn a_local_disk_alarm_fails_with_the_resource_named() {
    let f = Rabbitmq::interpret(&cfg(5784), &raw("disk-alarm-self"));
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["local_alarm"]);
    assert!(
        f.reasons[0].message.contains("disk space"),
        "{}",
        f.reasons[0].message
    );
    golden("disk-alarm-self", &f);
}

#[test]
fn a_just_booted_node_without_metrics_is_ok() {
    let f = Rabbitmq::interpret(&cfg(5785), &raw("just-booted"));
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let metrics = f.services["RabbitMQ"].extra_info["metrics"]
        .as_object()
        .unwrap();
    assert!(
        metrics.is_empty(),
        "no metrics right after boot: {metrics:?}"
    );
    golden("just-booted", &f);
}

#[test]
fn management_down_but_amqp_fine_says_which_path_failed() {
    let mut r = raw("node-stopped-self");
    r.amqp = Some(ok_amqp());
    let mut c = cfg(5785);
    c.node_name = Some("brk3@localhost".into());
    let f = Rabbitmq::interpret(&c, &r);
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["management_unreachable"]);
    assert!(
        f.reasons[0]
            .message
            .contains("AMQP on port 5785 still works"),
        "{}",
        f.reasons[0].message
    );
    let b = f.facts.broker.as_ref().unwrap();
    assert_eq!((b.management_ok, b.amqp_ok), (Some(false), Some(true)));
}

#[test]
fn amqp_failing_while_management_answers_names_the_amqp_step() {
    let mut r = raw("healthy");
    r.amqp = Some(AmqpSeen {
        outcome: Outcome {
            failed_step: Some(Step::Connect),
            error: Some("ACCESS_REFUSED - Login was refused".into()),
            blocked: false,
            connect_ms: None,
            round_trip_ms: None,
            closed_cleanly: false,
        },
        cycles_ago: 2,
    });
    let f = Rabbitmq::interpret(&cfg(5783), &r);
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["amqp_failed"]);
    let m = &f.reasons[0].message;
    assert!(
        m.contains("connect/authenticate/open vhost")
            && m.contains("ACCESS_REFUSED")
            && m.contains("management API answers"),
        "{m}"
    );
}

#[test]
fn a_connection_blocked_by_an_alarm_elsewhere_does_not_blame_this_node() {
    let mut r = raw("mem-alarm-peer");
    r.amqp = Some(AmqpSeen {
        outcome: Outcome {
            failed_step: Some(Step::Confirm),
            error: Some(
                "connection blocked by the broker (resource alarm): no confirm before the deadline"
                    .into(),
            ),
            blocked: true,
            connect_ms: Some(2),
            round_trip_ms: None,
            closed_cleanly: false,
        },
        cycles_ago: 0,
    });
    let f = Rabbitmq::interpret(&cfg(5783), &r);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    assert_eq!(f.facts.broker.as_ref().unwrap().amqp_blocked, Some(true));
    assert_eq!(f.services["RabbitMQ"].extra_info["amqp"]["blocked"], true);
}

#[test]
fn expiring_certificates_and_fd_pressure_degrade() {
    let mut r = raw("healthy");
    r.certificate_expiration = Some(Reply::Answered {
        status: 503,
        body: r#"{"status":"failed","reason":"Certificates expiring","expired":[{"node":"brk1@localhost"}]}"#.into(),
    });
    if let Reply::Answered { body, .. } = &mut r.nodes {
        *body = body.replacen("\"fd_used\":41", "\"fd_used\":19000", 1);
    }
    let f = Rabbitmq::interpret(&cfg(5783), &r);
    assert_eq!(f.status, NodeStatus::Degraded, "{:?}", f.reasons);
    let mut c = codes(&f);
    c.sort();
    assert_eq!(c, ["certificate_expiring", "fd_usage"]);
}

#[test]
fn a_partition_fails_and_names_both_sides() {
    let mut r = raw("healthy");
    if let Reply::Answered { body, .. } = &mut r.nodes {
        let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
        v[0]["partitions"] = serde_json::json!(["brk3@localhost"]);
        *body = v.to_string();
    }
    let f = Rabbitmq::interpret(&cfg(5783), &r);
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["partition"]);
    assert!(
        f.reasons[0].message.contains("brk1@localhost")
            && f.reasons[0].message.contains("brk3@localhost")
    );
    assert_eq!(
        f.facts.broker.as_ref().unwrap().partitions,
        ["brk3@localhost"]
    );
}

/// Replaces one endpoint's reply in the healthy capture.
fn with(field: &str, reply: Reply) -> Raw {
    let mut r = raw("healthy");
    match field {
        "overview" => r.overview = reply,
        "local_alarms" => r.local_alarms = reply,
        "port_listener" => r.port_listener = reply,
        "virtual_hosts" => r.virtual_hosts = reply,
        "nodes" => r.nodes = reply,
        _ => unreachable!("{field}"),
    }
    r
}

fn answered(status: u16, body: &str) -> Reply {
    Reply::Answered {
        status,
        body: body.into(),
    }
}

#[test]
fn hostile_management_answers_fail_with_a_clear_reason_and_never_panic() {
    let healthy_nodes = match &raw("healthy").nodes {
        Reply::Answered { body, .. } => body.clone(),
        _ => unreachable!(),
    };
    let truncated = healthy_nodes[..healthy_nodes.len() / 2].to_string();
    let deep = "[".repeat(10_000);
    let cases: Vec<(&str, Reply, &str)> = vec![
        ("nodes", answered(200, &truncated), "invalid JSON"),
        ("nodes", answered(200, ""), "empty body"),
        (
            "nodes",
            answered(200, "<html>proxy error</html>"),
            "invalid JSON",
        ),
        ("nodes", answered(200, &deep), "invalid JSON"),
        (
            "nodes",
            answered(200, r#"{"name":"brk1@localhost"}"#),
            "invalid JSON",
        ),
        (
            "nodes",
            answered(200, r#"[{"name":"brk1@localhost","running":"yes"}]"#),
            "invalid JSON",
        ),
        (
            "nodes",
            answered(
                200,
                r#"[{"name":"brk1@localhost","running":true,"partitions":5}]"#,
            ),
            "invalid JSON",
        ),
        ("nodes", answered(200, r#"[{"name":42}]"#), "invalid JSON"),
        ("nodes", answered(200, "[]"), "empty list"),
        (
            "nodes",
            answered(200, r#"[{"name":"someone@else","running":true}]"#),
            "does not list this node",
        ),
        (
            "nodes",
            Reply::Failed {
                error: "response larger than 1048576 bytes".into(),
            },
            "larger than",
        ),
        ("nodes", answered(500, "oops"), "unexpected status"),
        (
            "overview",
            answered(200, r#"{"node":["x"]}"#),
            "invalid JSON",
        ),
        ("overview", answered(401, ""), "rejected the credentials"),
        (
            "local_alarms",
            answered(200, r#"{"status":"failed"}"#),
            "status \"failed\"",
        ),
        (
            "local_alarms",
            answered(503, "\u{fffd}\u{fffd}garbage"),
            "invalid JSON",
        ),
        ("local_alarms", answered(418, "{}"), "HTTP 418"),
        (
            "port_listener",
            answered(200, r#"{"status":17}"#),
            "invalid JSON",
        ),
        ("virtual_hosts", answered(403, ""), "monitoring tag"),
    ];
    for (field, reply, needle) in cases {
        let f = Rabbitmq::interpret(&cfg(5783), &with(field, reply.clone()));
        assert_eq!(
            f.status,
            NodeStatus::Fail,
            "{field} {reply:?}: {:?}",
            f.reasons
        );
        let r = f
            .reasons
            .iter()
            .find(|r| r.code == "management_error")
            .unwrap_or_else(|| panic!("{field} {reply:?}: {:?}", f.reasons));
        assert!(
            r.message.contains(needle),
            "{field}: want {needle:?} in {:?}",
            r.message
        );
        assert_eq!(f.facts.broker.as_ref().unwrap().management_ok, Some(false));
        assert!(f.services["RabbitMQ"]
            .extra_info
            .contains_key("cluster_status"));
    }
}

#[test]
fn oversized_names_and_member_lists_are_refused() {
    let long = "n".repeat(100_000);
    let f = Rabbitmq::interpret(
        &cfg(5783),
        &with(
            "nodes",
            answered(
                200,
                &format!(
                    r#"[{{"name":"brk1@localhost","running":true}},{{"name":"{long}","running":false}}]"#
                ),
            ),
        ),
    );
    assert_eq!(f.status, NodeStatus::Fail);
    assert!(
        f.reasons[0].message.contains("longer than 255"),
        "{}",
        f.reasons[0].message
    );
    assert!(f
        .reasons
        .iter()
        .all(|r| r.message.len() <= 1024 && r.node.as_deref().is_none_or(|n| n.len() <= 255)));
    let many: Vec<_> = (0..65)
        .map(|i| serde_json::json!({"name": format!("n{i}@h"), "running": true}))
        .collect();
    let f = Rabbitmq::interpret(
        &cfg(5783),
        &with(
            "nodes",
            answered(200, &serde_json::to_string(&many).unwrap()),
        ),
    );
    assert!(
        f.reasons[0].message.contains("more than 64"),
        "{}",
        f.reasons[0].message
    );
}

#[test]
fn captured_fixtures_round_trip_and_unknown_keys_are_rejected() {
    let r = raw("healthy");
    let again: Raw = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(again, r);
    let err = serde_json::from_str::<Raw>(r#"{"overview":{"error":"x"},"local_alarms":{"error":"x"},"port_listener":{"error":"x"},"virtual_hosts":{"error":"x"},"nodes":{"error":"x"},"extra":1}"#).unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}
