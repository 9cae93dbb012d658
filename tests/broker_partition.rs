//! Issue 5, scenario 6: a real network partition of a real 3-node RabbitMQ cluster, seen
//! end to end as a split-brain Fail in `status-reporter cluster status`.
//!
//! Every RabbitMQ node runs on its own network-namespace host (`tests/support/netlab.rs`):
//! a cluster network for RabbitMQ and a management network on which the agents push to
//! the collector. A real agent runs inside each host (its `rabbitmq` probe on that host's
//! own management API and AMQP port); the real collector runs in the switch namespace on
//! the management network, and `cluster status` is run there too. Cutting host 3's
//! cluster link partitions RabbitMQ while every agent keeps reporting, so:
//! 1. healthy first: broker OK, 3 nodes;
//! 2. link cut: once both sides have declared the other down (`net_ticktime` 10 s), each
//!    side sees itself running and the other down: split brain, Fail, naming the nodes;
//! 3. link restored: what happens depends on the metadata store (stated per set in
//!    [`after_heal`]): with Mnesia (set A, RabbitMQ 3.10) the default partition handling
//!    (`ignore`) reconnects and keeps the partition in `/api/nodes` `partitions`: still split
//!    brain, Fail, now with the reported partition as the reason; with Khepri (set B,
//!    RabbitMQ 4.0.5) partition handling does not apply, `partitions` stays empty and the
//!    Raft store heals itself: the broker is OK again.
//!
//! Run per version set: `partition_set_a`, `partition_set_b` (one namespace lab each, one
//! after the other).
//!
//! Only namespaces and addresses this test creates are used (10.203.0.0/24 and
//! 10.203.1.0/24 exist only inside them); all are deleted at the end, also on failure.
//! Needs root and iproute2; skips without them unless `CI=true`, which makes it fail.
//! Waits poll with deadlines; timings are printed, never asserted.
mod harness;

use harness::lab::{
    exclusive, rabbitmq::broker_probe, require_set, VersionSet, MONITOR_PASSWORD, MONITOR_USER,
};
use harness::netlab::{self, NetLab, COLLECTOR_IP};
use harness::{ci, Agent, Collector, Status};
use sr_probes::rabbitmq::Config;
use sr_probes::ProbeConfig;
use sr_protocol::NodeStatus;
use std::time::{Duration, Instant};

const AGENTS: [&str; 3] = ["broker-1", "broker-2", "broker-3"];
const DEADLINE: Duration = Duration::from_secs(60);

/// The probe of the agent on host `i`: its own node, through the host's loopback.
fn probe_config(lab: &NetLab, i: usize) -> Config {
    broker_probe("http://127.0.0.1:15672".into(), 5672, lab.node_name(i))
}

fn split_reasons(s: &Status) -> Vec<String> {
    s.broker()
        .map(|b| {
            b.reasons
                .iter()
                .filter(|r| r.code == "split_brain")
                .map(|r| r.message.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// What the broker looks like once the cut link is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterHeal {
    /// Mnesia with `ignore`: the partition is recorded and kept; split brain stays.
    PartitionKept,
    /// Khepri: no partition bookkeeping; the nodes reconnect and the cluster is whole again.
    Healed,
}

fn after_heal(set: VersionSet) -> AfterHeal {
    if set.khepri() {
        AfterHeal::Healed
    } else {
        AfterHeal::PartitionKept
    }
}

#[test]
fn partition_set_a() {
    partition_suite(VersionSet::Debian12);
}

#[test]
fn partition_set_b() {
    partition_suite(VersionSet::Trixie);
}

fn partition_suite(set: VersionSet) {
    if !require_set(set, &["rabbitmq", "curl"]) {
        return;
    }
    // before anything else: the namespaces (and the availability probe's) are named after
    // the process, so the two sets of this binary must not overlap even there
    let _one_lab_at_a_time = exclusive();
    let label = set.label();
    if let Err(e) = netlab::available() {
        if ci() {
            panic!("CI=true and network namespaces are unavailable (needs root and iproute2): {e}");
        }
        eprintln!("SKIP: network namespaces unavailable (needs root and iproute2): {e}");
        return;
    }
    let t_all = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // Declared first so it drops last: agents and collector stop before the namespaces go.
    let lab = NetLab::start(
        &tmp.path().join("rabbit"),
        set,
        3,
        (MONITOR_USER, MONITOR_PASSWORD),
        Duration::from_secs(150),
    )
    .expect("start RabbitMQ on three namespace hosts");
    eprintln!(
        "netlab[{label}]: 3 hosts, RabbitMQ clustered in {:.1}s ({})",
        lab.started_in().as_secs_f64(),
        set.versions()
    );

    let sw = lab.sw();
    let collector = Collector::start(
        &tmp.path().join("collector"),
        &format!("{COLLECTOR_IP}:53333"),
        &[COLLECTOR_IP],
        Some(&sw),
        &[("flap_threshold", "1000"), ("shutdown_grace_secs", "1")],
    );
    let hosts: Vec<String> = (0..3).map(|i| lab.host(i)).collect();
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| {
            Agent::for_collector(
                &tmp.path().join(AGENTS[i]),
                AGENTS[i],
                "broker",
                &collector,
                vec![ProbeConfig::Rabbitmq(probe_config(&lab, i))],
                Some(&hosts[i]),
            )
        })
        .collect();
    for a in &mut agents {
        a.start();
    }

    // 1. Healthy: every agent reports from its own host over the management network.
    let (s, t) = collector.wait("a healthy broker", DEADLINE, |s| {
        s.broker_status() == Some(NodeStatus::Ok)
            && s.broker().is_some_and(|b| b.nodes.len() == 3)
            && AGENTS
                .iter()
                .all(|a| s.node_status(a) == Some(NodeStatus::Ok))
    });
    eprintln!(
        "scenario 6.1: broker OK {:.1}s after the agents' start",
        t.as_secs_f64()
    );
    for (i, a) in AGENTS.iter().enumerate() {
        let x = s.rabbit_info(a).unwrap();
        assert_eq!(x["node_name"], lab.node_name(i));
        let cs = x["cluster_status"].as_object().unwrap();
        assert!(
            lab.node_names()
                .iter()
                .all(|n| cs.get(n) == Some(&"OK".into())),
            "{a}: {cs:?}"
        );
    }

    // 2. Cut host 3's cluster link. Both sides run on and, after net_ticktime, each sees
    //    the other down: split brain, reported while the partition lasts.
    let r3 = lab.node_name(2).to_string();
    let cut_at = Instant::now();
    lab.set_cluster_link(2, false)
        .expect("cut host 3's cluster link");
    // Both sides keep reporting (they are on the management network), and in the same
    // view each side names the other as not running. (The majority side's management API
    // stalls for a while during the partition, so its view comes and goes.)
    let r1 = lab.node_name(0).to_string();
    let sees = |s: &Status, agent: &str, node: &str| -> Option<String> {
        s.rabbit_info(agent)?
            .get("cluster_status")?
            .get(node)?
            .as_str()
            .map(str::to_string)
    };
    let (s, during) = collector.wait("split brain while host 3 is cut off", DEADLINE, |s| {
        s.broker_status() == Some(NodeStatus::Fail)
            && split_reasons(s)
                .iter()
                .any(|m| m.contains("views differ") && m.contains(&r3))
            && sees(s, AGENTS[2], &r3).as_deref() == Some("OK")
            && sees(s, AGENTS[2], &r1).as_deref() == Some("Fail")
            && AGENTS[..2]
                .iter()
                .any(|a| sees(s, a, &r3).as_deref() == Some("Fail"))
    });
    eprintln!(
        "BENCH[{label}] partition (link cut) → split-brain Fail in `cluster status`: {:.1}s (net_ticktime 10 s)",
        during.as_secs_f64()
    );
    assert!(
        s.node(AGENTS[2]).is_some_and(|n| n.last_seen.is_some()),
        "{}",
        s.describe()
    );
    assert_eq!(s.code, Some(2));
    if set.khepri() {
        // Set B: the cut-off node sees itself alone, a minority where Khepri and every
        // quorum queue have no majority: it Fails itself, from the same /api/nodes answer
        // that shows rabbit1 down above.
        assert!(
            !s.node_reasons(AGENTS[2], "cluster_minority").is_empty(),
            "{}",
            s.describe()
        );
    }
    eprintln!("scenario 6.2: {}", split_reasons(&s).join(" | "));

    // 3. Restore the link: the nodes reconnect; what the broker is then depends on the
    //    metadata store (see `after_heal`).
    lab.set_cluster_link(2, true)
        .expect("restore host 3's cluster link");
    match after_heal(set) {
        AfterHeal::PartitionKept => partition_kept(&lab, &collector, &cut_at),
        AfterHeal::Healed => healed(&lab, &collector, &cut_at),
    }

    for a in &agents {
        assert!(!a.log_tail().contains("panicked"), "{}", a.log_tail());
    }
    drop(agents);
    drop(collector);
    drop(lab);
    eprintln!(
        "scenario 6: {:.1}s wall time in all",
        t_all.elapsed().as_secs_f64()
    );
}

/// Mnesia (`ignore`): RabbitMQ records the partition and keeps it, and the collector says so.
fn partition_kept(lab: &NetLab, collector: &Collector, cut_at: &Instant) {
    let (s, after) = collector.wait(
        "split brain from the reported partition after the link heals",
        DEADLINE,
        |s| {
            s.broker_status() == Some(NodeStatus::Fail)
                && split_reasons(s)
                    .iter()
                    .any(|m| m.contains("reports a network partition with"))
                && AGENTS
                    .iter()
                    .all(|a| !s.node_reasons(a, "partition").is_empty())
        },
    );
    eprintln!(
        "scenario 6.3: partition reported {:.1}s after the link came back ({:.1}s after the cut)",
        after.as_secs_f64(),
        cut_at.elapsed().as_secs_f64()
    );
    let split = split_reasons(&s);
    assert!(
        split
            .iter()
            .any(|m| m.contains(AGENTS[2]) && m.contains(lab.node_name(0))),
        "{split:?}"
    );
    let seen_by_3 = s.node_reasons(AGENTS[2], "partition");
    assert!(
        seen_by_3
            .iter()
            .any(|m| m.contains(lab.node_name(0)) || m.contains(lab.node_name(1))),
        "{seen_by_3:?}"
    );
    assert_eq!(s.code, Some(2));
    // The truth on the nodes themselves: each side lists the other in `partitions`.
    let nodes3 = lab
        .mgmt_get(2, "/api/nodes?columns=name,partitions")
        .expect("node 3's /api/nodes");
    assert!(
        nodes3.contains(lab.node_name(0)) && nodes3.contains("\"partitions\":[\""),
        "{nodes3}"
    );
    eprintln!("scenario 6.3: {}", split.join(" | "));
}

/// Khepri: the nodes reconnect, no partition is recorded (`partitions` stays empty) and the
/// broker is whole again: OK, every node seeing all three running.
fn healed(lab: &NetLab, collector: &Collector, cut_at: &Instant) {
    let (s, after) = collector.wait("broker OK after the link heals", DEADLINE, |s| {
        s.broker_status() == Some(NodeStatus::Ok)
            && AGENTS
                .iter()
                .all(|a| s.node_status(a) == Some(NodeStatus::Ok))
    });
    eprintln!(
        "scenario 6.3: broker OK {:.1}s after the link came back ({:.1}s after the cut)",
        after.as_secs_f64(),
        cut_at.elapsed().as_secs_f64()
    );
    assert!(
        AGENTS
            .iter()
            .all(|a| s.node_reasons(a, "partition").is_empty()),
        "{}",
        s.describe()
    );
    let nodes3 = lab
        .mgmt_get(2, "/api/nodes?columns=name,running,partitions")
        .expect("node 3's /api/nodes");
    assert!(
        nodes3.matches("\"running\":true").count() == 3 && !nodes3.contains("\"partitions\":[\""),
        "{nodes3}"
    );
}
