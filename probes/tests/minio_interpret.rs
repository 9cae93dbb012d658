//! The `minio` probe's pure `interpret`, driven by answers written from MinIO's own
//! sources (`fixtures/minio-2025-10-15/*.http`, see its README: not captured from a live
//! server) and by hostile variants of them.
//!
//! Every scenario has a golden finding (`golden/minio/<name>.finding.json`);
//! `UPDATE_GOLDEN=1 cargo test -p sr-probes --test minio_interpret` refreshes them.

mod common;

use sr_probes::minio::{facts, parse_capture, Answer, Config, Minio, Raw};
use sr_probes::{Finding, TypedProbe};
use sr_protocol::NodeStatus;
use std::path::PathBuf;

fn text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/minio-2025-10-15")
        .join(format!("{name}.http"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(name: &str) -> Answer {
    parse_capture(&text(name)).unwrap()
}

fn cfg() -> Config {
    toml::from_str("maintenance = true").unwrap()
}

fn interpret(live: &str, cluster: &str, maintenance: Option<&str>) -> Finding {
    Minio::interpret(
        &cfg(),
        &Raw {
            live: fixture(live),
            cluster: fixture(cluster),
            maintenance: maintenance.map(fixture),
        },
    )
}

fn codes(f: &Finding) -> Vec<&str> {
    f.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn live_and_quorum_are_ok() {
    let f = interpret("live-ok", "cluster-ok", Some("maintenance-ok"));
    common::golden("minio", "ok", &f);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let o = f.facts.objectstore.as_ref().unwrap();
    assert_eq!((o.cluster_status, o.write_quorum), (Some(200), Some(12)));
    assert!(o.serving());
}

#[test]
fn cluster_503_is_fail_no_quorum() {
    let f = interpret("live-ok", "cluster-no-quorum", None);
    common::golden("minio", "no-quorum", &f);
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Fail, vec!["objectstore_no_quorum"])
    );
    assert!(f.reasons[0]
        .message
        .contains("write quorum (12 drives per set)"));
}

#[test]
fn maintenance_412_is_degraded_with_its_reason() {
    let f = interpret("live-ok", "cluster-ok", Some("maintenance-412"));
    common::golden("minio", "maintenance-412", &f);
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Degraded, vec!["objectstore_maintenance"])
    );
}

#[test]
fn healing_drives_are_degraded() {
    let f = interpret("live-ok", "cluster-healing", None);
    common::golden("minio", "healing", &f);
    assert_eq!(codes(&f), ["objectstore_healing"]);
    assert!(f.reasons[0].message.contains("4 drives"));
}

#[test]
fn an_uninitialised_or_busy_server_is_fail() {
    let f = interpret("live-initialising", "cluster-offline", None);
    common::golden("minio", "initialising", &f);
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Fail, vec!["objectstore_offline"])
    );

    let f = interpret("live-busy", "cluster-ok", None);
    assert_eq!(codes(&f), ["objectstore_unreachable"]);
    assert!(f.reasons[0].message.contains("HTTP 503"));
}

#[test]
fn an_unreachable_endpoint_is_fail_and_still_a_member() {
    let failed = || Answer::Failed {
        error: "cannot connect: Connection refused".into(),
    };
    let f = Minio::interpret(
        &cfg(),
        &Raw {
            live: failed(),
            cluster: failed(),
            maintenance: Some(failed()),
        },
    );
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Fail, vec!["objectstore_unreachable"])
    );
    assert!(!f.facts.objectstore.as_ref().unwrap().reachable);
}

#[test]
fn missing_and_hostile_headers_are_never_ok() {
    let ok = text("cluster-ok");
    for (from, to) in [
        ("X-Minio-Write-Quorum: 12\r\n", ""),
        ("X-Minio-Write-Quorum: 12", "X-Minio-Write-Quorum: twelve"),
        ("X-Minio-Write-Quorum: 12", "X-Minio-Write-Quorum: -12"),
        ("X-Minio-Write-Quorum: 12", "X-Minio-Write-Quorum: 0"),
        (
            "X-Minio-Write-Quorum: 12",
            "X-Minio-Write-Quorum: 184467440737095516150",
        ),
    ] {
        let cluster = parse_capture(&ok.replace(from, to)).unwrap();
        let raw = Raw {
            live: fixture("live-ok"),
            cluster,
            maintenance: None,
        };
        let f = Minio::interpret(&cfg(), &raw);
        assert_eq!(
            (f.status, codes(&f)),
            (NodeStatus::Fail, vec!["objectstore_bad_answer"]),
            "{to:?}"
        );
        assert!(!facts(&raw).serving());
    }
    // A hostile server status: control characters dropped, length bounded.
    let live = parse_capture(&text("live-ok").replace(
        "Server: MinIO",
        &format!(
            "X-Minio-Server-Status: \u{1b}[31m{}\r\nServer: MinIO",
            "x".repeat(5000)
        ),
    ))
    .unwrap();
    let raw = Raw {
        live,
        cluster: fixture("cluster-ok"),
        maintenance: None,
    };
    let s = facts(&raw).server_status.unwrap();
    assert!(s.len() <= 64 && !s.contains('\u{1b}'), "{s:?}");
    // An unexpected status (a proxy's 502) is a bad answer, not OK.
    let f = interpret("live-ok", "live-busy", None);
    assert_eq!(f.status, NodeStatus::Fail);
}

#[test]
fn truncated_captures_are_errors() {
    let t = text("cluster-no-quorum");
    let head_end = t.find("\r\n\r\n").unwrap();
    for n in 0..head_end {
        assert!(parse_capture(&t[..n]).is_err(), "cut at {n}");
    }
}
