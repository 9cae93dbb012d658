//! The `opensearch` probe's pure `interpret`, driven by answers written from OpenSearch's
//! own sources (`fixtures/opensearch-2/`, see its README: not captured from a live server)
//! and by hostile variants of them.
//!
//! Every scenario has a golden finding (`golden/opensearch/<name>.finding.json`);
//! `UPDATE_GOLDEN=1 cargo test -p sr-probes --test opensearch_interpret` refreshes them. The
//! asserts next to each golden say what must hold whatever the golden says.

mod common;

use sr_probes::net::Reply;
use sr_probes::opensearch::{parse_cat_nodes, parse_health, Config, Opensearch, Raw};
use sr_probes::{Finding, TypedProbe};
use sr_protocol::NodeStatus;
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/opensearch-2")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ok(name: &str) -> Reply {
    answered(200, name)
}

fn answered(status: u16, name: &str) -> Reply {
    Reply::Answered {
        status,
        body: fixture(name),
    }
}

fn cfg() -> Config {
    toml::from_str("url = 'https://127.0.0.1:9200'\ntls = { ca_file = '/etc/ca.pem' }\nusername = 'monitor'\npassword = 'x'").unwrap()
}

fn interpret(health: Reply, nodes: &str) -> Finding {
    Opensearch::interpret(
        &cfg(),
        &Raw {
            root: ok("root-os1.json"),
            health,
            nodes: ok(nodes),
        },
    )
}

fn codes(f: &Finding) -> Vec<&str> {
    f.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn green_is_ok_with_names_roles_and_the_elected_manager() {
    let f = interpret(ok("health-green.json"), "cat-nodes-3.json");
    common::golden("opensearch", "green", &f);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let s = f.facts.search.as_ref().unwrap();
    assert!(s.reachable);
    assert_eq!(s.cluster_name.as_deref(), Some("automate-os"));
    assert_eq!(s.cluster_uuid.as_deref(), Some("Hy3dOe6QSxCe2rGkO1yvqw"));
    assert_eq!((s.number_of_nodes, s.unassigned_shards), (Some(3), Some(0)));
    assert_eq!(s.nodes.len(), 3);
    assert_eq!(s.cluster_manager.as_deref(), Some("os1"));
    assert_eq!(s.role().as_deref(), Some("dimr *"));
}

#[test]
fn yellow_is_degraded_naming_unassigned_shards() {
    let f = interpret(ok("health-yellow.json"), "cat-nodes-2.json");
    common::golden("opensearch", "yellow", &f);
    assert_eq!(f.status, NodeStatus::Degraded);
    assert_eq!(codes(&f), ["search_yellow"]);
    assert!(
        f.reasons[0]
            .message
            .contains("8 unassigned shards, 66.7 % active"),
        "{}",
        f.reasons[0].message
    );
}

#[test]
fn red_is_fail() {
    let f = interpret(ok("health-red.json"), "cat-nodes-2.json");
    common::golden("opensearch", "red", &f);
    assert_eq!(f.status, NodeStatus::Fail);
    assert_eq!(codes(&f), ["search_red"]);
    assert!(f.services["OpenSearch"].status == sr_protocol::ServiceStatus::Inactive);
}

#[test]
fn a_timed_out_health_request_still_reads_the_document() {
    let f = interpret(answered(408, "health-timed-out.json"), "cat-nodes-2.json");
    common::golden("opensearch", "timed-out", &f);
    assert_eq!(codes(&f), ["search_yellow", "search_health_timed_out"]);
}

#[test]
fn refusals_are_named_as_credentials_or_a_missing_manager() {
    let f = interpret(answered(401, "health-401.txt"), "cat-nodes-3.json");
    common::golden("opensearch", "unauthorized", &f);
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Fail, vec!["search_auth"])
    );
    assert!(f.reasons[0].message.contains("HTTP 401: Unauthorized"));

    let f = interpret(answered(403, "health-403.json"), "cat-nodes-3.json");
    assert_eq!(codes(&f), ["search_auth"]);
    assert!(f.reasons[0]
        .message
        .contains("no permissions for [cluster:monitor/health]"));

    let f = interpret(
        answered(503, "health-503-no-cluster-manager.json"),
        "cat-nodes-3.json",
    );
    common::golden("opensearch", "no-cluster-manager", &f);
    assert_eq!(codes(&f), ["search_unreachable"]);
    assert!(f.reasons[0]
        .message
        .contains("cluster_manager_not_discovered_exception"));
    let s = f.facts.search.as_ref().unwrap();
    assert!(!s.reachable, "facts are written when unreachable");

    // Health readable, node list refused: the role lacks a permission; said loudly.
    let f = Opensearch::interpret(
        &cfg(),
        &Raw {
            root: ok("root-os1.json"),
            health: ok("health-green.json"),
            nodes: answered(403, "health-403.json"),
        },
    );
    assert_eq!(codes(&f), ["search_auth"]);
}

#[test]
fn no_answer_is_fail_and_still_a_member() {
    let failed = || Reply::Failed {
        error: "cannot connect: Connection refused".into(),
    };
    let f = Opensearch::interpret(
        &cfg(),
        &Raw {
            root: failed(),
            health: failed(),
            nodes: failed(),
        },
    );
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Fail, vec!["search_unreachable"])
    );
    assert!(f.facts.search.is_some());
}

#[test]
fn truncated_answers_are_never_ok() {
    for name in ["health-green.json", "health-yellow.json"] {
        let text = fixture(name);
        for n in 0..text.len() {
            let f = interpret(
                Reply::Answered {
                    status: 200,
                    body: text[..n].to_string(),
                },
                "cat-nodes-3.json",
            );
            assert_ne!(f.status, NodeStatus::Ok, "{name} cut at {n}");
        }
    }
    let nodes = fixture("cat-nodes-3.json");
    for n in 0..nodes.len() {
        assert!(parse_cat_nodes(&nodes[..n]).is_err(), "cut at {n}");
    }
}

#[test]
fn malformed_oversized_and_hostile_answers_are_clear() {
    let green = fixture("health-green.json");
    // A status as a number, a negative count, an unknown colour, a huge name.
    assert!(parse_health(&green.replace("\"green\"", "1")).is_err());
    assert!(
        parse_health(&green.replace("\"number_of_nodes\":3", "\"number_of_nodes\":-3")).is_err()
    );
    let purple = interpret(
        Reply::Answered {
            status: 200,
            body: green.replace("\"green\"", "\"purple\""),
        },
        "cat-nodes-3.json",
    );
    assert_eq!(purple.status, NodeStatus::Fail);
    let long = green.replace("automate-os", &"a".repeat(100_000));
    let h = parse_health(&long).unwrap();
    assert!(h.cluster_name.len() <= 200);
    let nan = green.replace("100.0", "1e999");
    assert!(parse_health(&nan)
        .map(|h| h.active_shards_percent_as_number.is_none())
        .unwrap_or(true));
    // Garbage and an HTML error page from a proxy.
    for body in [
        "",
        "not json",
        "<html><body>502 Bad Gateway</body></html>",
        "[]",
        "null",
    ] {
        let f = interpret(
            Reply::Answered {
                status: 200,
                body: body.into(),
            },
            "cat-nodes-3.json",
        );
        assert_eq!(f.status, NodeStatus::Fail, "{body:?}");
        assert_eq!(codes(&f), ["search_unreachable"], "{body:?}");
    }
    let f = interpret(
        Reply::Answered {
            status: 502,
            body: "<html>\u{202e}".repeat(10_000),
        },
        "cat-nodes-3.json",
    );
    assert!(f.reasons[0].message.len() < 400, "bounded");
}
