//! The `haproxy` probe's pure `interpret`, driven by `show stat` answers captured from a
//! real HAProxy 2.6 (`fixtures/haproxy-2.6/*.csv`, captured by `tests/lab/haproxy-ctl.sh
//! DIR cmd show stat`, see that directory's README) and by hostile variants of them.
//!
//! Every captured scenario has a golden finding (`golden/haproxy/<name>.finding.json`);
//! `UPDATE_GOLDEN=1 cargo test -p sr-probes --test haproxy_interpret` refreshes them. The
//! asserts next to each golden say what must hold whatever the golden says.

mod common;

use sr_probes::haproxy::{parse_stat, Config, Haproxy, Raw, MAX_ANSWER};
use sr_probes::{Finding, TypedProbe};
use sr_protocol::NodeStatus;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    let path = root()
        .join("fixtures/haproxy-2.6")
        .join(format!("{name}.csv"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Only backend `app`: `checked` is DOWN in every capture (nothing served its check).
fn cfg(backends: &[&str]) -> Config {
    Config {
        socket: "/run/haproxy/admin.sock".into(),
        backends: backends.iter().map(|b| b.to_string()).collect(),
        timeout_ms: 2000,
    }
}

fn interpret(name: &str) -> Finding {
    Haproxy::interpret(&cfg(&["app"]), &Raw::Answered(fixture(name)))
}

fn golden(name: &str, f: &Finding) {
    common::golden("haproxy", name, f)
}

fn codes(f: &Finding) -> Vec<&str> {
    f.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn status_of(f: &Finding, server: &str) -> String {
    f.facts.lb.as_ref().unwrap().backends["app"].servers[server]
        .status
        .clone()
}

#[test]
fn all_up_is_ok() {
    let f = interpret("show-stat-all-up");
    golden("show-stat-all-up", &f);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let lb = f.facts.lb.as_ref().unwrap();
    assert!(lb.reachable && !lb.truncated);
    assert_eq!(lb.backends.keys().collect::<Vec<_>>(), ["app"]);
    let app = &lb.backends["app"];
    assert_eq!(app.servers.len(), 3);
    assert!(app.servers.values().all(|s| s.status == "UP"
        && s.check_status.as_deref() == Some("L4OK")
        && s.last_change_s.is_some()));
}

#[test]
fn all_backends_by_default_so_a_down_one_shows() {
    let f = Haproxy::interpret(&cfg(&[]), &Raw::Answered(fixture("show-stat-all-up")));
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["lb_backend_down"]);
    assert!(
        f.reasons[0].message.contains("n1 (DOWN L4CON)"),
        "{}",
        f.reasons[0].message
    );
}

#[test]
fn one_down_is_degraded_naming_it() {
    let f = interpret("show-stat-one-down");
    golden("show-stat-one-down", &f);
    assert_eq!(f.status, NodeStatus::Degraded);
    assert_eq!(codes(&f), ["lb_server_down"]);
    assert!(f.reasons[0]
        .message
        .contains("2 of 3 up; down: s2 (DOWN L4CON)"));
}

#[test]
fn maint_and_drain_are_shown_as_such() {
    let f = interpret("show-stat-one-down-one-maint");
    golden("show-stat-one-down-one-maint", &f);
    assert_eq!(f.status, NodeStatus::Degraded);
    assert_eq!(codes(&f), ["lb_server_down", "lb_server_maint"]);
    assert_eq!(status_of(&f, "s3"), "MAINT");
    assert!(f.reasons[1].message.contains("s3 (MAINT)"));

    let f = interpret("show-stat-one-down-one-drain");
    golden("show-stat-one-down-one-drain", &f);
    assert_eq!(codes(&f), ["lb_server_down", "lb_server_maint"]);
    assert!(status_of(&f, "s3").starts_with("DRAIN"));
}

#[test]
fn all_down_is_fail() {
    let f = interpret("show-stat-all-down");
    golden("show-stat-all-down", &f);
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["lb_backend_down"]);
    assert!(f.reasons[0].message.contains("no server up of 3"));
}

#[test]
fn a_named_backend_missing_is_fail() {
    let f = Haproxy::interpret(
        &cfg(&["app", "api"]),
        &Raw::Answered(fixture("show-stat-all-up")),
    );
    assert_eq!(f.status, NodeStatus::Fail);
    assert!(f
        .reasons
        .iter()
        .any(|r| r.message.contains("backend api: not in")));
}

#[test]
fn a_failed_socket_is_fail_and_still_a_member() {
    let f = Haproxy::interpret(&cfg(&[]), &Raw::Failed("connect /x: No such file".into()));
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["lb_unreachable"]);
    let lb = f
        .facts
        .lb
        .as_ref()
        .expect("facts are written when unreachable");
    assert!(!lb.reachable);
}

#[test]
fn truncated_answers_are_never_ok() {
    // Cut at every byte: HAProxy's closing empty line is gone, so every cut is refused
    // whole (unreachable, Fail) rather than judged from the servers that made it.
    for name in ["show-stat-all-up", "show-stat-one-down"] {
        let text = fixture(name);
        for n in 0..text.len() - 1 {
            let Some(part) = text.get(..n) else { continue };
            assert!(parse_stat(part, &[]).is_err(), "{name} cut at {n}");
            let f = Haproxy::interpret(&cfg(&["app"]), &Raw::Answered(part.to_string()));
            assert_eq!(f.status, NodeStatus::Fail, "{name} cut at {n}");
        }
    }
}

#[test]
fn malformed_and_oversized_answers_are_clear_errors() {
    let text = fixture("show-stat-all-up");
    // A quote opened and never closed, a line with too few fields, a header renamed.
    let bad_quote = text.replacen("app,s1,", "app,\"s1,", 1);
    assert!(parse_stat(&bad_quote, &[]).is_err());
    let short = text.replacen("app,s2,", "app\n", 1);
    assert!(parse_stat(&short, &[]).unwrap_err().contains("fields"));
    let renamed = text.replacen("status,", "state,", 1);
    assert!(parse_stat(&renamed, &[]).unwrap_err().contains("lacks"));
    // An answer past MAX_ANSWER is refused, not parsed.
    let mut huge = text.trim_end().to_string();
    while huge.len() <= MAX_ANSWER {
        huge.push_str("\napp,sX,UP,1,1,0,0,,0,0,0,,0,,0,0,0,0,UP");
    }
    huge.push_str("\n\n");
    assert!(parse_stat(&huge, &[]).unwrap_err().contains("larger"));
    // A huge server name is cut, so the facts stay bounded.
    let long = text.replacen("app,s1,", &format!("app,{},", "s".repeat(10_000)), 1);
    let f = parse_stat(&long, &[]).unwrap();
    assert!(f.backends["app"].servers.keys().all(|k| k.len() <= 80));
}
