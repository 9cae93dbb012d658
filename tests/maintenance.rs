//! `status-reporter maintenance on|off|list` against a real collector: a failing node or
//! service type in maintenance (a manager node: the generic rules; a db node without
//! Patroni facts also fails the db rules, which maintenance does not hide) shows who, why and until when and does not turn the cluster
//! to Fail; it ends with `off` or by itself at `--until`; it survives a collector restart;
//! hostile targets, reasons, times and credentials are clear errors.

mod harness;

use harness::fixtures::{now_ms, Node};
use harness::{Collector, Status, DEADLINE};
use sr_protocol::{NodeStatus, SIGNATURE_HEADER, TOKEN_HEADER};

fn maintenance(c: &Collector, token: &str, args: &[&str]) -> (i32, String, String) {
    let manager = c.addr.to_string();
    let mut all = vec!["maintenance"];
    all.extend(args);
    all.extend(["--manager", &manager, "--ca-path", c.ca.to_str().unwrap()]);
    harness::cli(Some(&c.dir), &all, &[("STATUS_REPORTER_TOKEN", token)])
}

/// The messages of the node's `maintenance` reasons, in whichever service it reports.
fn maintenance_reasons(s: &Status, node: &str) -> Vec<String> {
    s.node_json(node)
        .and_then(|n| n["reasons"].as_array())
        .map(|rs| {
            rs.iter()
                .filter(|r| r["code"] == "maintenance")
                .filter_map(|r| r["message"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn cluster(s: &Status) -> Option<NodeStatus> {
    s.view.as_ref().map(|v| v.status)
}

#[test]
fn a_node_or_service_in_maintenance_is_shown_and_never_fails_the_cluster() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Collector::start_in_temp_dir(&[("required_types", "[\"manager\"]")]);
    let admin = c.token("admin");
    let mut mgr = Node::new("manager", "mgr-maint-1");
    let (body, sig) = mgr.next("Fail", now_ms());
    let token = c.token("manager");
    let headers = [
        ("Content-Type", "application/json"),
        (TOKEN_HEADER, token.as_str()),
        (SIGNATURE_HEADER, sig.as_str()),
    ];
    assert_eq!(rt.block_on(c.put(&mgr.path(), &headers, body)).0, 200);
    c.wait("the failing node to fail the cluster", DEADLINE, |s| {
        cluster(s) == Some(NodeStatus::Fail)
    });

    let (code, out, err) = maintenance(
        &c,
        &admin,
        &[
            "on",
            "mgr-maint-1",
            "--reason",
            "disk swap",
            "--by",
            "alice",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("disk swap") && out.contains("alice"), "{out}");
    let (s, _) = c.wait("maintenance to lift the Fail", DEADLINE, |s| {
        cluster(s) == Some(NodeStatus::Degraded)
    });
    let shown = maintenance_reasons(&s, "mgr-maint-1");
    assert_eq!(shown.len(), 1, "{}", s.describe());
    assert!(
        shown[0].contains("disk swap")
            && shown[0].contains("alice")
            && shown[0].contains("until turned off"),
        "{shown:?}"
    );
    let (code, out, _) = maintenance(&c, &admin, &["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("mgr-maint-1") && out.contains("disk swap"),
        "{out}"
    );

    // Durable: a restarted collector still has it.
    assert!(c.stop().success());
    c.spawn();
    let s = c.status();
    assert_eq!(cluster(&s), Some(NodeStatus::Degraded), "{}", s.describe());

    let (code, out, err) = maintenance(&c, &admin, &["off", "mgr-maint-1"]);
    assert_eq!(code, 0, "{out}{err}");
    c.wait("the Fail to come back after off", DEADLINE, |s| {
        cluster(s) == Some(NodeStatus::Fail)
    });
    let (code, _, err) = maintenance(&c, &admin, &["off", "mgr-maint-1"]);
    assert_eq!(code, 3, "nothing to end: {err}");
    assert!(err.contains("not in maintenance"), "{err}");

    // The service type, ending by itself.
    let (code, out, err) = maintenance(
        &c,
        &admin,
        &["on", "manager", "--reason", "upgrade", "--until", "3s"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (s, _) = c.wait("the service window to apply", DEADLINE, |s| {
        cluster(s) == Some(NodeStatus::Degraded)
    });
    assert!(maintenance_reasons(&s, "mgr-maint-1")[0].contains("upgrade"));
    c.wait("the window to end by itself", DEADLINE, |s| {
        cluster(s) == Some(NodeStatus::Fail)
    });
    let (_, out, _) = maintenance(&c, &admin, &["list"]);
    assert!(out.contains("Nothing is in maintenance."), "{out}");
}

#[test]
fn hostile_maintenance_input_is_refused_clearly() {
    let c = Collector::start_in_temp_dir(&[]);
    let admin = c.token("admin");
    for (args, code, says) in [
        (vec!["on", "db1", "--reason", ""], 2, "reason"),
        (vec!["on", "db1", "--reason", &"x".repeat(300)], 2, "reason"),
        (vec!["on", "db1", "--reason", "a\u{1b}[2Jb"], 2, "control"),
        (
            vec!["on", "db1", "--reason", "r", "--until", "yesterday"],
            2,
            "until",
        ),
        (
            vec![
                "on",
                "db1",
                "--reason",
                "r",
                "--until",
                "2001-01-01T00:00:00Z",
            ],
            2,
            "future",
        ),
        (
            vec!["on", "db1", "--reason", "r", "--until", "400d"],
            2,
            "days",
        ),
        (vec!["on", "../etc", "--reason", "r"], 2, "target"),
        (vec!["on", &"n".repeat(200), "--reason", "r"], 2, "target"),
        (vec!["off", "a b"], 2, "target"),
    ] {
        let (got, out, err) = maintenance(&c, &admin, &args);
        let shown: Vec<String> = args.iter().map(|a| a.chars().take(30).collect()).collect();
        assert_eq!(got, code, "{shown:?}: {out}{err}");
        assert!(err.contains(says), "{shown:?}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "no raw escape reaches the terminal"
        );
    }
    // Readers only: a reporter token, a wrong token.
    let (code, _, err) = maintenance(&c, &c.token("db"), &["on", "db1", "--reason", "r"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = maintenance(&c, "srt_wrong", &["list"]);
    assert_eq!(code, 3, "{err}");
    let secrets: Vec<_> = ["admin", "db", "broker", "manager"]
        .iter()
        .map(|r| (*r, c.token(r)))
        .collect();
    assert!(harness::fixtures::assert_no_secrets(&c.dir, &secrets) > 0);
}
