//! Issue 14: OpenSearch (`search`) and MinIO (`objectstore`) seen end to end in
//! `cluster status`, as on a Chef/Cinc HA backend tier.
//!
//! OpenSearch and MinIO are in no package registry this project reaches, so the services
//! are stood in for by `harness::fixture_server`: one loopback HTTPS port per node (the
//! suite's CA) answering with the fixtures written from the projects' own sources
//! (`probes/fixtures/opensearch-2`, `probes/fixtures/minio-2025-10-15`), switchable between
//! states. Everything else is real: three agents (node type `node`, the `opensearch` probe
//! with Basic auth and TLS, the `minio` probe with `maintenance = true`, each on its own
//! node's port) push every second to a real collector configured with
//! `[services.search] required, size 3` and `[services.objectstore] required, size 3`.
//! After each switch the suite polls `cluster status --json` (exit code checked against
//! the view) until the rule's status and reason show:
//! 1. green and quorum everywhere: both OK;
//! 2. yellow (a node gone, 8 replicas unassigned): `search` Degraded, `search_yellow`
//!    naming the shards, `search_nodes_missing` (2 of 3 nodes);
//! 3. red: `search` Fail (`search_red`), exit code 2;
//! 4. green again, node 3's MinIO down: `objectstore` Degraded (`objectstore_unreachable`
//!    on that node), quorum intact on the others;
//! 5. every cluster check 503: `objectstore` Fail (`objectstore_no_quorum`);
//! 6. quorum back, `?maintenance=true` 412: `objectstore` Degraded
//!    (`objectstore_maintenance`).
//!
//! Timings are printed, never asserted.
mod harness;

use harness::fixture_server::{Colour, FixtureServer};
use harness::{Collector, Pki, Status};
use sr_probes::net::{Secret, TlsFiles};
use sr_probes::ProbeConfig;
use sr_protocol::view::ServiceTypeView;
use sr_protocol::NodeStatus;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
const NODES: [&str; 3] = ["backend1", "backend2", "backend3"];

fn svc<'a>(s: &'a Status, name: &str) -> Option<&'a ServiceTypeView> {
    s.service(name)
}

fn is(s: &Status, name: &str, status: NodeStatus) -> bool {
    svc(s, name).is_some_and(|v| v.status == status && v.nodes.len() == NODES.len())
}

/// The message of the reason with `code` on service `name`, if any.
fn reason(s: &Status, name: &str, code: &str) -> Option<String> {
    svc(s, name)?
        .reasons
        .iter()
        .find(|r| r.code == code)
        .map(|r| r.message.clone())
}

fn probes(pki: &Pki, addr: &str) -> Vec<ProbeConfig> {
    let tls = TlsFiles {
        ca_file: Some(pki.ca.clone()),
        ..TlsFiles::default()
    };
    vec![
        ProbeConfig::Opensearch(sr_probes::opensearch::Config {
            url: format!("https://{addr}"),
            tls: tls.clone(),
            username: Some("monitor".into()),
            password: Some(Secret::new("os-monitor-pw")),
            timeout_ms: 2000,
            max_body_bytes: 256 << 10,
        }),
        ProbeConfig::Minio(sr_probes::minio::Config {
            url: format!("https://{addr}"),
            tls,
            maintenance: true,
            timeout_ms: 2000,
        }),
    ]
}

#[test]
fn search_and_objectstore_scenarios_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"), "search test CA");
    let server = FixtureServer::start(&pki, NODES.len(), "monitor", "os-monitor-pw");
    let collector = Collector::for_services(
        &tmp.path().join("collector"),
        &pki,
        "127.0.0.1:0",
        None,
        "[services.search]\nrequired = true\nsize = 3\n[services.objectstore]\nrequired = true\nsize = 3\n",
    );
    let _agents: Vec<harness::Agent> = NODES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut a = harness::Agent::for_collector(
                &tmp.path().join(name),
                name,
                "node",
                &collector,
                probes(&pki, &server.addrs[i]),
                None,
            );
            a.start();
            a
        })
        .collect();

    // 1. Green, quorum everywhere.
    let (s, t) = collector.wait("search and objectstore OK", DEADLINE, |s| {
        is(s, "search", NodeStatus::Ok) && is(s, "objectstore", NodeStatus::Ok)
    });
    eprintln!("1. both OK {:.1}s after the agents' start", t.as_secs_f64());
    assert_eq!(s.code, Some(0));
    let search = svc(&s, "search").unwrap();
    assert_eq!(
        search.nodes["backend1"].role.as_deref(),
        Some("dimr *"),
        "os1 is the elected manager"
    );
    assert_eq!(search.nodes["backend2"].role.as_deref(), Some("dimr"));
    assert_eq!(
        s.view.as_ref().unwrap().services.keys().collect::<Vec<_>>(),
        ["objectstore", "search"],
        "node hosts are in no Cloudify view"
    );

    // 2. Yellow: a node gone, its replicas unassigned.
    server.set(|sc| sc.colour = Colour::Yellow);
    let (s, t) = collector.wait("search Degraded, yellow", DEADLINE, |s| {
        is(s, "search", NodeStatus::Degraded)
            && reason(s, "search", "search_yellow").is_some()
            && reason(s, "search", "search_nodes_missing").is_some()
    });
    eprintln!("2. yellow: Degraded in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(1));
    let m = reason(&s, "search", "search_yellow").unwrap();
    assert!(m.contains("8 unassigned shards"), "{m}");
    assert!(m.contains("seen by backend1, backend2, backend3"), "{m}");
    let m = reason(&s, "search", "search_nodes_missing").unwrap();
    assert!(m.contains("2 of 3 nodes: os1, os2"), "{m}");
    assert!(
        is(&s, "objectstore", NodeStatus::Ok),
        "objectstore is judged apart"
    );

    // 3. Red.
    server.set(|sc| sc.colour = Colour::Red);
    let (s, t) = collector.wait("search Fail, red", DEADLINE, |s| {
        is(s, "search", NodeStatus::Fail) && reason(s, "search", "search_red").is_some()
    });
    eprintln!("3. red: Fail in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(2));
    assert!(reason(&s, "search", "search_red")
        .unwrap()
        .contains("10 unassigned shards"));

    // 4. Green again; node 3's MinIO down while the others keep quorum.
    server.set(|sc| {
        sc.colour = Colour::Green;
        sc.minio_down.insert(2);
    });
    let (s, t) = collector.wait("objectstore Degraded, backend3 down", DEADLINE, |s| {
        is(s, "search", NodeStatus::Ok)
            && is(s, "objectstore", NodeStatus::Degraded)
            && reason(s, "objectstore", "objectstore_unreachable").is_some()
    });
    eprintln!("4. a MinIO down: Degraded in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(1));
    let o = svc(&s, "objectstore").unwrap();
    let r = o
        .reasons
        .iter()
        .find(|r| r.code == "objectstore_unreachable")
        .unwrap();
    assert_eq!(r.node.as_deref(), Some("backend3"));
    assert_eq!(
        o.nodes["backend3"].status,
        NodeStatus::Fail,
        "the node itself is down"
    );
    assert_eq!(o.nodes["backend1"].status, NodeStatus::Ok);

    // 5. Every cluster check 503: no write quorum.
    server.set(|sc| sc.cluster_503 = true);
    let (s, t) = collector.wait("objectstore Fail, no quorum", DEADLINE, |s| {
        is(s, "objectstore", NodeStatus::Fail)
            && reason(s, "objectstore", "objectstore_no_quorum").is_some()
    });
    eprintln!("5. cluster 503: Fail in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(2));
    assert!(reason(&s, "objectstore", "objectstore_no_quorum")
        .unwrap()
        .contains("write quorum (12 drives per set) not met"));

    // 6. Quorum back, every node up, but taking a node down would lose it.
    server.set(|sc| {
        sc.cluster_503 = false;
        sc.minio_down.clear();
        sc.maintenance_412 = true;
    });
    let (s, t) = collector.wait("objectstore Degraded, maintenance 412", DEADLINE, |s| {
        is(s, "objectstore", NodeStatus::Degraded)
            && reason(s, "objectstore", "objectstore_maintenance").is_some()
            && reason(s, "objectstore", "objectstore_unreachable").is_none()
    });
    eprintln!("6. maintenance 412: Degraded in {:.1}s", t.as_secs_f64());
    assert!(reason(&s, "objectstore", "objectstore_maintenance")
        .unwrap()
        .contains("412"));
}
