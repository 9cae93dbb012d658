//! Issue 14: a real Pacemaker 2.1.5 + Corosync pair, seen end to end in `cluster status`.
//!
//! Each node runs in its own network, mount and UTS namespace (`harness::lab::pacemaker`,
//! lab.md §H), with the primitive `dummy` and the clone `dummy-clone` (`ocf:pacemaker:Dummy`).
//! A real agent per host (node type `node`, in the host's network namespace so it reaches
//! the collector on the management network) runs a `pacemaker` probe whose command enters
//! that node's namespaces (`nsenter -t <pacemakerd> -n -m -u crm_mon`) and pushes to a real
//! collector in the switch namespace, configured with `[services.pacemaker] required = true,
//! size = 2`. Scenarios in sequence, each waited for by polling `cluster status --json`
//! (exit code checked against the view; the time each took is printed, never asserted):
//! 1. healthy: `pacemaker` OK, one member the DC;
//! 2. `crm_resource --fail` on `dummy` where it runs, then on the clone's copy on the other
//!    node: Degraded (Pacemaker restarts both; a copy always runs), each failed action named
//!    with its resource and node; `crm_resource --cleanup`: OK;
//! 3. pc2 in standby: shown as `maintenance` (Degraded, never Fail), on pc2's row too, and
//!    the clone copy it stopped is not a failure; standby off: OK;
//! 4. the cluster's `maintenance-mode` on: a maintenance window on the service; off: OK;
//! 5. every process of pc2 SIGKILLed: pc1 keeps quorum (`two_node`): Degraded, pc2 offline
//!    (seen by pc1) and its own `crm_mon` unreachable, never Fail.
//!
//! Needs root, iproute2, util-linux (nsenter, unshare) and pacemaker, corosync and
//! resource-agents; skips without them unless `CI=true`, which makes it fail.
mod harness;

use harness::lab::pacemaker::{CLONED, COLLECTOR_IP, NODES, PRIMITIVE};
use harness::lab::{require_netns_services, PacemakerPair};
use harness::{Collector, Pki, Status};
use sr_probes::pacemaker::{parse_xml, Parsed};
use sr_probes::ProbeConfig;
use sr_protocol::view::ServiceTypeView;
use sr_protocol::NodeStatus;
use std::time::Duration;

const AGENTS: [&str; NODES] = ["pc1", "pc2"];
const DEADLINE: Duration = Duration::from_secs(45);

fn pcmk(s: &Status) -> Option<&ServiceTypeView> {
    s.service("pacemaker")
}
fn service_is(s: &Status, status: NodeStatus) -> bool {
    pcmk(s).is_some_and(|p| p.status == status && p.nodes.len() == NODES)
}
fn reason(s: &Status, code: &str, says: &str) -> bool {
    pcmk(s).is_some_and(|p| {
        p.reasons
            .iter()
            .any(|r| r.code == code && r.message.contains(says))
    })
}
fn codes(s: &Status) -> Vec<String> {
    pcmk(s).map_or(Vec::new(), |p| {
        p.reasons.iter().map(|r| r.code.clone()).collect()
    })
}
fn ok(s: &Status) -> bool {
    service_is(s, NodeStatus::Ok) && s.code == Some(0)
}

/// Where `resource` runs, as node 0's `crm_mon` says.
fn runs_on(lab: &PacemakerPair, resource: &str) -> usize {
    let Ok(Parsed::Status(f)) = parse_xml(lab.xml(0).unwrap().as_bytes()) else {
        panic!("crm_mon gave no status")
    };
    let node = f
        .resources
        .iter()
        .find(|r| r.id == resource && r.active)
        .and_then(|r| r.nodes.first())
        .unwrap_or_else(|| panic!("{resource} runs nowhere: {f:?}"))
        .clone();
    (0..NODES)
        .find(|i| lab.node_name(*i) == node)
        .unwrap_or_else(|| panic!("unknown node {node}"))
}

#[test]
fn pacemaker_scenarios_end_to_end() {
    if !require_netns_services(&["pacemaker"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Declared first so it drops last: agents and collector stop before the namespaces go.
    let lab = PacemakerPair::start().expect("start a Pacemaker pair");

    let dir = tmp.path().join("collector");
    let pki = Pki::with_sans(&dir.join("pki"), "pacemaker test CA", &[COLLECTOR_IP]);
    let collector = Collector::for_services(
        &dir,
        &pki,
        &format!("{COLLECTOR_IP}:53335"),
        Some(&lab.sw()),
        "[services.pacemaker]\nrequired = true\nsize = 2\n",
    );
    let commands: Vec<Vec<String>> = (0..NODES).map(|i| lab.crm_mon(i).unwrap()).collect();
    let agents = harness::Agent::start_nodes(
        tmp.path(),
        &AGENTS,
        &collector,
        |i| {
            ProbeConfig::Pacemaker(sr_probes::pacemaker::Config {
                command: commands[i].clone(),
                node_name: Some(lab.node_name(i)),
                timeout_ms: 5000,
            })
        },
        |i| Some(lab.host(i)),
    );

    // 1. Healthy.
    let (s, t) = collector.wait("pacemaker OK", DEADLINE, ok);
    eprintln!(
        "1. pacemaker OK {:.1}s after the agents' start",
        t.as_secs_f64()
    );
    let v = s.view.as_ref().unwrap();
    assert_eq!(v.status, NodeStatus::Ok);
    assert_eq!(
        v.services.keys().collect::<Vec<_>>(),
        ["pacemaker"],
        "node hosts are in no Cloudify view"
    );
    let roles: Vec<String> = AGENTS
        .iter()
        .map(|a| pcmk(&s).unwrap().nodes[*a].role.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| *r == "DC").count(),
        1,
        "exactly one DC: {roles:?}"
    );

    // 2. A failed monitor on the primitive, then on the clone's copy on the other node.
    let on = runs_on(&lab, PRIMITIVE);
    let other = 1 - on;
    lab.fail(on, PRIMITIVE).unwrap();
    let named = format!("{PRIMITIVE} asyncmon failed on {}", lab.node_name(on));
    let (s, t) = collector.wait("Degraded, the failed action named", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded) && reason(s, "pacemaker_failed_action", &named)
    });
    eprintln!(
        "2. crm_resource --fail {PRIMITIVE} on {}: Degraded in {:.1}s: {:?}",
        lab.node_name(on),
        t.as_secs_f64(),
        codes(&s)
    );
    assert_eq!(s.code, Some(1));
    lab.fail(other, CLONED).unwrap();
    let named2 = format!("{CLONED} asyncmon failed on {}", lab.node_name(other));
    let (s, t) = collector.wait("Degraded, both failed actions named", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded)
            && reason(s, "pacemaker_failed_action", &named)
            && reason(s, "pacemaker_failed_action", &named2)
    });
    eprintln!(
        "2. crm_resource --fail {CLONED} on {}: both named in {:.1}s",
        lab.node_name(other),
        t.as_secs_f64()
    );
    let failed = pcmk(&s).unwrap();
    assert!(
        failed
            .reasons
            .iter()
            .filter(|r| r.code == "pacemaker_failed_action")
            .all(|r| r.node.is_some()),
        "{failed:?}"
    );
    lab.cleanup(0).unwrap();
    let (_, t) = collector.wait("OK after cleanup", DEADLINE, ok);
    eprintln!("2. crm_resource --cleanup: OK in {:.1}s", t.as_secs_f64());

    // 3. pc2 in standby: maintenance, never Fail.
    lab.standby(1, true).unwrap();
    let (s, t) = collector.wait("standby shown as maintenance", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded) && reason(s, "maintenance", "pc2 is in standby")
    });
    eprintln!("3. pc2 standby: maintenance in {:.1}s", t.as_secs_f64());
    assert_eq!(s.code, Some(1));
    assert!(
        codes(&s).iter().all(|c| c == "maintenance"),
        "standby is maintenance only, its stopped clone copy no failure: {:?}",
        pcmk(&s).unwrap().reasons
    );
    let row = &pcmk(&s).unwrap().nodes["pc2"];
    assert_eq!(row.status, NodeStatus::Degraded, "{row:?}");
    assert!(
        row.reasons.iter().any(|r| r.code == "maintenance"),
        "{row:?}"
    );
    assert!(
        row.role.as_deref().unwrap_or("").contains("standby"),
        "{row:?}"
    );
    lab.standby(1, false).unwrap();
    let (_, t) = collector.wait("OK after standby off", DEADLINE, ok);
    eprintln!("3. standby off: OK in {:.1}s", t.as_secs_f64());

    // 4. The cluster's maintenance-mode: a window on the whole service.
    lab.maintenance_mode(0, true).unwrap();
    let (s, t) = collector.wait("maintenance-mode shown as maintenance", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded)
            && reason(s, "maintenance", "Pacemaker maintenance-mode is on")
    });
    eprintln!("4. maintenance-mode on: shown in {:.1}s", t.as_secs_f64());
    assert_ne!(s.code, Some(2));
    for (name, row) in &pcmk(&s).unwrap().nodes {
        assert!(
            row.reasons.iter().any(|r| r.code == "maintenance"),
            "{name}: {row:?}"
        );
    }
    lab.maintenance_mode(0, false).unwrap();
    let (_, t) = collector.wait("OK after maintenance-mode off", DEADLINE, ok);
    eprintln!("4. maintenance-mode off: OK in {:.1}s", t.as_secs_f64());

    // 5. pc2 killed outright: pc1 keeps quorum (two_node) and sees pc2 offline.
    lab.kill(1).unwrap();
    let (s, t) = collector.wait("Degraded, pc2 offline and unreachable", DEADLINE, |s| {
        service_is(s, NodeStatus::Degraded)
            && reason(s, "pacemaker_node_offline", "pc2 is offline (seen by pc1)")
            && codes(s).iter().any(|c| c == "pacemaker_unreachable")
    });
    eprintln!(
        "5. pc2 SIGKILLed: Degraded with pc2 offline in {:.1}s: {:?}",
        t.as_secs_f64(),
        codes(&s)
    );
    assert_eq!(s.code, Some(1));
    let p = pcmk(&s).unwrap();
    assert_eq!(p.nodes["pc2"].status, NodeStatus::Fail, "pc2's own row");
    assert_eq!(p.nodes["pc1"].role.as_deref(), Some("DC"));
    assert!(!codes(&s)
        .iter()
        .any(|c| c == "quorum_lost" || c == "pacemaker_split"));
    drop(agents);
    drop(collector);
}
