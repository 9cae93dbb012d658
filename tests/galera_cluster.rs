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
//! And the agents' node-local check endpoint used as OpenStack uses `clustercheck`: each
//! agent serves `/check/galera` on its management address (port 9200), and a real HAProxy
//! in the switch namespace fronts the three MariaDB servers with `option httpchk GET
//! /check/galera?strict` (only a Synced, healthy node takes traffic). A fourth agent there
//! (`lb-1`, the `haproxy` probe on HAProxy's stats socket) feeds the `lb` service. In 1.
//! every server is UP; in 2. the donor's server goes DOWN and comes back UP after
//! `wsrep_desync=OFF`; in 3. the partitioned node's server goes DOWN and comes back UP after
//! the heal; each read from HAProxy's stats socket and from `lb` in `cluster status`.
//!
//! Needs root, iproute2, mariadb-server, galera-4, rsync, haproxy and socat; skips without
//! them unless `CI=true`, which makes it fail. Timings are printed, never asserted.
mod harness;

use harness::lab::galera::{CHECK_PORT, COLLECTOR_IP};
use harness::lab::{require_netns_services, GaleraCluster, MONITOR_PASSWORD, MONITOR_USER};
use harness::{poll, Collector, Pki, Status};
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
/// `lb` (HAProxy in front of the nodes) at `status` with its one member.
fn lb_is(s: &Status, status: NodeStatus) -> bool {
    s.service("lb")
        .is_some_and(|l| l.status == status && l.nodes.contains_key(LB))
}
/// `lb`'s `lb_server_down` reason names server `g<i+1>` as DOWN.
fn lb_names_down(s: &Status, i: usize) -> bool {
    let down = format!("g{} (DOWN", i + 1);
    s.service("lb").is_some_and(|l| {
        l.reasons
            .iter()
            .any(|r| r.code == "lb_server_down" && r.message.contains(&down))
    })
}

/// Waits until HAProxy's own status of server `g<i+1>` is `want` (UP, DOWN).
fn wait_server(lab: &GaleraCluster, i: usize, want: &str) -> Duration {
    poll::poll(DEADLINE, Duration::from_millis(200), || {
        let got = lab.lb_server_status(i).unwrap_or_else(|e| e.to_string());
        if got == want {
            Ok(())
        } else {
            Err(got)
        }
    })
    .unwrap_or_else(|last| panic!("HAProxy galera/g{} never {want}; last {last}", i + 1))
    .1
}

const LB: &str = "lb-1";

#[test]
fn galera_scenarios_end_to_end() {
    if !require_netns_services(&["galera", "haproxy", "socat"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Declared first so it drops last: agents and collector stop before the namespaces go.
    let lab = GaleraCluster::start(3, true).expect("start a 3-node Galera cluster");

    let dir = tmp.path().join("collector");
    let pki = Pki::with_sans(&dir.join("pki"), "galera test CA", &[COLLECTOR_IP]);
    let collector = Collector::for_services(
        &dir,
        &pki,
        &format!("{COLLECTOR_IP}:53333"),
        Some(&lab.sw()),
        "[services.galera]\nrequired = true\nsize = 3\n[services.lb]\nrequired = true\n",
    );
    // A galera agent per host, serving /check/galera on its management address.
    let mut agents: Vec<harness::Agent> = AGENTS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let probe = ProbeConfig::Galera(sr_probes::galera::Config {
                socket: Some(lab.socket(i)),
                host: "127.0.0.1".into(),
                port: 3306,
                user: MONITOR_USER.into(),
                password: Some(Secret::new(MONITOR_PASSWORD)),
                timeout_ms: 2000,
            });
            let a = harness::Agent::for_collector(
                &tmp.path().join(name),
                name,
                "node",
                &collector,
                vec![probe],
                Some(&lab.host(i)),
            );
            a.set_check_listen(Some(&format!("{}:{CHECK_PORT}", lab.mgmt_ip(i))));
            a
        })
        .collect();
    // The HAProxy host's agent, beside HAProxy in the switch namespace.
    agents.push(harness::Agent::for_collector(
        &tmp.path().join(LB),
        LB,
        "node",
        &collector,
        vec![ProbeConfig::Haproxy(sr_probes::haproxy::Config {
            socket: lab.lb_socket(),
            backends: vec!["galera".into()],
            timeout_ms: 2000,
        })],
        Some(&lab.sw()),
    ));
    for a in &mut agents {
        a.start();
    }

    // 1. Healthy: every node Synced, and HAProxy has every server UP through the checks.
    let (s, t) = collector.wait("galera and lb OK", DEADLINE, |s| {
        service_is(s, NodeStatus::Ok) && lb_is(s, NodeStatus::Ok)
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
        ["galera", "lb"],
        "node hosts are in no Cloudify view"
    );
    for a in AGENTS {
        let n = &galera(&s).unwrap().nodes[a];
        assert_eq!(n.role.as_deref(), Some("Synced"), "{a}");
    }
    for i in 0..3 {
        assert_eq!(lab.lb_server_status(i).unwrap(), "UP", "g{}", i + 1);
    }

    // 2. A donor: Degraded, not Fail.
    lab.desync(1, true).unwrap();
    let (s, t) = collector.wait("galera-2 a donor, galera Degraded", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded) && member_has(s, "galera-2", "galera_donor")
    });
    eprintln!("2. desync seen in {:.1}s", t.as_secs_f64());
    assert_eq!(member(&s, "galera-2"), Some(NodeStatus::Degraded));
    assert_eq!(s.code, Some(1));
    // clustercheck's rule: a donor takes no traffic. `?strict` answers 503 on Degraded.
    let t = wait_server(&lab, 1, "DOWN");
    eprintln!(
        "2. HAProxy marked the donor g2 DOWN in {:.1}s",
        t.as_secs_f64()
    );
    let (s, _) = collector.wait("lb Degraded naming g2", DEADLINE, |s| {
        lb_is(s, NodeStatus::Degraded) && lb_names_down(s, 1)
    });
    assert_eq!(lab.lb_server_status(0).unwrap(), "UP");
    assert_eq!(
        s.service("lb").unwrap().nodes[LB].status,
        NodeStatus::Degraded
    );
    lab.desync(1, false).unwrap();
    collector.wait("galera OK after desync off", DEADLINE, |s| {
        service_is(s, NodeStatus::Ok)
    });
    let t = wait_server(&lab, 1, "UP");
    eprintln!("2. g2 UP again {:.1}s after galera OK", t.as_secs_f64());
    collector.wait("lb OK after desync off", DEADLINE, |s| {
        lb_is(s, NodeStatus::Ok)
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
    // The cut node's agent still answers over the management network: 503, so DOWN.
    let t = wait_server(&lab, 2, "DOWN");
    eprintln!(
        "3. HAProxy marked the partitioned g3 DOWN in {:.1}s",
        t.as_secs_f64()
    );
    collector.wait("lb Degraded naming g3", DEADLINE, |s| {
        lb_is(s, NodeStatus::Degraded) && lb_names_down(s, 2)
    });
    let stat = harness::lab::haproxy::stats_command(&lab.lb_socket(), "show stat").unwrap();
    let g3 = stat.lines().find(|l| l.starts_with("galera,g3,")).unwrap();
    assert!(
        g3.contains("L7STS"),
        "the check's 503 is what HAProxy saw: {g3}"
    );
    lab.set_link(2, true).unwrap();
    let (_, t) = collector.wait("galera OK after the link is back", DEADLINE, |s| {
        service_is(s, NodeStatus::Ok)
    });
    eprintln!("3. healed in {:.1}s", t.as_secs_f64());
    wait_server(&lab, 2, "UP");
    collector.wait("lb OK after the heal", DEADLINE, |s| {
        lb_is(s, NodeStatus::Ok)
    });

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
