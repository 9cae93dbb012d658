//! The `galera` probe's pure `interpret`, driven by `SHOW GLOBAL STATUS LIKE 'wsrep_%'`
//! captured from a real 3-node MariaDB 10.11 Galera cluster
//! (`fixtures/galera-10.11/*.tsv`, captured by `tests/lab/galera-ctl.sh status`) and by
//! hostile variants of them.
//!
//! Every captured scenario has a golden finding (`golden/galera/<name>.finding.json`);
//! `UPDATE_GOLDEN=1 cargo test -p sr-probes --test galera_interpret` refreshes them. The
//! asserts next to each golden say what must hold whatever the golden says.

mod common;

use sr_probes::galera::{parse_tsv, Config, Galera, Raw};
use sr_probes::{Finding, TypedProbe};
use sr_protocol::NodeStatus;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    let path = root()
        .join("fixtures/galera-10.11")
        .join(format!("{name}.tsv"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cfg() -> Config {
    Config {
        socket: Some("/run/mysqld/mysqld.sock".into()),
        host: "127.0.0.1".into(),
        port: 3306,
        user: "monitor".into(),
        password: None,
        timeout_ms: 2000,
    }
}

fn interpret(text: &str) -> Finding {
    let rows = parse_tsv(text).expect("captured output parses");
    Galera::interpret(
        &cfg(),
        &Raw::Answered {
            rows,
            read_only: None,
        },
    )
}

fn golden(name: &str, f: &Finding) {
    common::golden("galera", name, f)
}

fn codes(f: &Finding) -> Vec<&str> {
    f.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn synced_primary_is_ok() {
    let f = interpret(&fixture("synced-primary"));
    golden("synced-primary", &f);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let g = f.facts.galera.as_ref().unwrap();
    assert_eq!(
        (g.cluster_size, g.local_state.as_deref()),
        (Some(3), Some("Synced"))
    );
    assert_eq!(g.read_only, Some(false), "the read_only row is read");
    assert!(g.state_uuid.is_some());
}

#[test]
fn donor_is_degraded() {
    let f = interpret(&fixture("donor-desynced"));
    golden("donor-desynced", &f);
    assert_eq!(f.status, NodeStatus::Degraded);
    assert_eq!(codes(&f), ["galera_donor"]);
}

#[test]
fn non_primary_is_fail() {
    let f = interpret(&fixture("non-primary-partitioned"));
    golden("non-primary-partitioned", &f);
    assert_eq!(f.status, NodeStatus::Fail);
    for c in ["galera_non_primary", "galera_not_ready"] {
        assert!(codes(&f).contains(&c), "{c}: {:?}", codes(&f));
    }
}

#[test]
fn primary_of_two_is_ok_on_its_own() {
    // The node cannot know the configured size: a missing member is the roll-up's call.
    let f = interpret(&fixture("primary-of-two"));
    golden("primary-of-two", &f);
    assert_eq!(f.status, NodeStatus::Ok);
    assert_eq!(f.facts.galera.as_ref().unwrap().cluster_size, Some(2));
}

#[test]
fn truncated_and_malformed_captures_are_never_ok() {
    let text = fixture("synced-primary");
    // Cut at every line boundary: whatever is missing, the result is never a silent OK
    // unless every variable the verdict needs is there.
    let lines: Vec<&str> = text.lines().collect();
    let needed = [
        "wsrep_ready",
        "wsrep_cluster_status",
        "wsrep_local_state_comment",
    ];
    for n in 0..lines.len() {
        let part = lines[..n].join("\n");
        let f = interpret(&part);
        let has_all = needed
            .iter()
            .all(|v| lines[..n].iter().any(|l| l.starts_with(&format!("{v}\t"))));
        if !has_all {
            assert_ne!(f.status, NodeStatus::Ok, "cut after {n} lines");
        }
    }
    // A line without a tab, and oversized values, are errors or ignored, never a panic.
    assert!(parse_tsv("wsrep_ready ON\n").is_err());
    let huge = text.replace("Synced", &"S".repeat(1 << 16));
    assert_ne!(interpret(&huge).status, NodeStatus::Ok);
}
