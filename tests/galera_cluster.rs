//! Issue 14: a real 3-node MariaDB Galera cluster, seen end to end in `cluster status`.
//!
//! Every MariaDB node runs on its own network-namespace host (`harness::lab::galera`): the
//! Galera network and a management network apart, so a node's Galera link can be cut while
//! its agent keeps reporting. A real agent on each host (node type `node`, a `galera` probe
//! on the host's own unix socket) pushes to a real collector in the switch namespace,
//! configured with `[services.galera] required = true, size = 3`. Scenarios, each waited
//! for by polling `cluster status --json` (exit code checked against the view):
//! 1. healthy: `galera` OK with 3 members, and no Cloudify type shown;
//! 2. a desynced node (`SET GLOBAL wsrep_desync=ON`, a donor): Degraded, not Fail;
//! 3. a node partitioned (its Galera link cut): that node Fail `galera_non_primary`, the
//!    service Degraded (`galera_member_missing`); healed: OK again;
//! 4. a node killed (SIGKILL): that node Fail `galera_unreachable`, the service Degraded;
//! 5. a second node killed: fewer than a majority of 3, Fail.
//!
//! Needs root, iproute2, mariadb-server, galera-4 and rsync; skips without them unless
//! `CI=true`, which makes it fail. Timings are printed, never asserted.
mod harness;

use harness::lab::galera::COLLECTOR_IP;
use harness::lab::{require_netns_services, GaleraCluster, MONITOR_PASSWORD, MONITOR_USER};
use harness::{Collector, Pki, Status};
use sr_probes::net::Secret;
use sr_probes::ProbeConfig;
use sr_protocol::NodeStatus;
use std::time::Duration;

const AGENTS: [&str; 3] = ["galera-1", "galera-2", "galera-3"];
const DEADLINE: Duration = Duration::from_secs(90);

fn galera(s: &Status) -> Option<&sr_protocol::view::ServiceTypeView> {
    s.service("galera")
}
fn member(s: &Status, name: &str) -> Option<NodeStatus> {
    galera(s)?.nodes.get(name).map(|n| n.status)
}
fn member_has(s: &Status, name: &str, code: &str) -> bool {
    galera(s)
        .and_then(|g| g.nodes.get(name))
        .is_some_and(|n| n.reasons.iter().any(|r| r.code == code))
}
fn service_is(s: &Status, status: NodeStatus) -> bool {
    galera(s).is_some_and(|g| g.status == status && g.nodes.len() == 3)
}

#[test]
fn galera_scenarios_end_to_end() {
    if !require_netns_services(&["galera"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Declared first so it drops last: agents and collector stop before the namespaces go.
    let lab = GaleraCluster::start(3).expect("start a 3-node Galera cluster");

    let dir = tmp.path().join("collector");
    let pki = Pki::with_sans(&dir.join("pki"), "galera test CA", &[COLLECTOR_IP]);
    let collector = Collector::for_services(
        &dir,
        &pki,
        &format!("{COLLECTOR_IP}:53333"),
        Some(&lab.sw()),
        "[services.galera]\nrequired = true\nsize = 3\n",
    );
    let agents = harness::Agent::start_nodes(
        tmp.path(),
        &AGENTS,
        &collector,
        |i| {
            ProbeConfig::Galera(sr_probes::galera::Config {
                socket: Some(lab.socket(i)),
                host: "127.0.0.1".into(),
                port: 3306,
                user: MONITOR_USER.into(),
                password: Some(Secret::new(MONITOR_PASSWORD)),
                timeout_ms: 2000,
            })
        },
        |i| Some(lab.host(i)),
    );

    // 1. Healthy.
    let (s, t) = collector.wait("galera OK with 3 members", DEADLINE, |s| {
        service_is(s, NodeStatus::Ok)
    });
    eprintln!(
        "1. galera OK {:.1}s after the agents' start",
        t.as_secs_f64()
    );
    let v = s.view.as_ref().unwrap();
    assert_eq!(v.status, NodeStatus::Ok);
    assert_eq!(s.code, Some(0));
    assert_eq!(
        v.services.keys().collect::<Vec<_>>(),
        ["galera"],
        "node hosts are in no Cloudify view"
    );
    for a in AGENTS {
        let n = &galera(&s).unwrap().nodes[a];
        assert_eq!(n.role.as_deref(), Some("Synced"), "{a}");
    }

    // 2. A donor: Degraded, not Fail.
    lab.desync(1, true).unwrap();
    let (s, t) = collector.wait("galera-2 a donor, galera Degraded", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded) && member_has(s, "galera-2", "galera_donor")
    });
    eprintln!("2. desync seen in {:.1}s", t.as_secs_f64());
    assert_eq!(member(&s, "galera-2"), Some(NodeStatus::Degraded));
    assert_eq!(s.code, Some(1));
    lab.desync(1, false).unwrap();
    collector.wait("galera OK after desync off", DEADLINE, |s| {
        service_is(s, NodeStatus::Ok)
    });

    // 3. A partition: the cut node is non-Primary (Fail), the majority goes on (Degraded).
    lab.set_link(2, false).unwrap();
    let (s, t) = collector.wait("galera-3 non-Primary, galera Degraded", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded)
            && member_has(s, "galera-3", "galera_non_primary")
            && galera(s)
                .is_some_and(|g| g.reasons.iter().any(|r| r.code == "galera_member_missing"))
    });
    eprintln!("3. partition seen in {:.1}s", t.as_secs_f64());
    assert_eq!(member(&s, "galera-3"), Some(NodeStatus::Fail));
    assert_eq!(member(&s, "galera-1"), Some(NodeStatus::Ok));
    lab.set_link(2, true).unwrap();
    let (_, t) = collector.wait("galera OK after the link is back", DEADLINE, |s| {
        service_is(s, NodeStatus::Ok)
    });
    eprintln!("3. healed in {:.1}s", t.as_secs_f64());

    // 4. A node killed: unreachable (Fail) while its agent reports; the service Degraded.
    lab.kill(2).unwrap();
    let (s, t) = collector.wait("galera-3 unreachable, galera Degraded", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded) && member_has(s, "galera-3", "galera_unreachable")
    });
    eprintln!("4. kill seen in {:.1}s", t.as_secs_f64());
    assert_eq!(member(&s, "galera-3"), Some(NodeStatus::Fail));

    // 5. A second node killed: 1 of 3, below a majority of the configured size: Fail.
    lab.kill(1).unwrap();
    let (s, t) = collector.wait("galera Fail below quorum", DEADLINE, |s| {
        service_is(s, NodeStatus::Fail)
            && galera(s).is_some_and(|g| g.reasons.iter().any(|r| r.code == "quorum_lost"))
    });
    eprintln!("5. quorum loss seen in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(2));
    assert_eq!(s.view.as_ref().unwrap().status, NodeStatus::Fail);
    drop(agents);
    drop(collector);
}
