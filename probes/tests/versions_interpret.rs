//! Issue 13: the pure `interpret` functions of the `patroni`, `etcd` and `rabbitmq` probes,
//! fed bodies captured from the second version set (Patroni 4.0.7 and 4.1.5, etcd 3.5.16,
//! PostgreSQL 17, RabbitMQ 4.0.5 with Khepri; `probes/fixtures/<service>-<version>/`,
//! captured by `tests/lab/versions/capture-fixtures.sh`).
//!
//! Each test asserts the verdict that is correct for the scenario. The five misreadings
//! docs/versions-lab.md lists (legacy role `primary`, quorum-critical node, quorum queue
//! without a majority, minority side of a Khepri cut, etcd's `/health` reason) were ignored
//! tests here until the probes read them.

use serde_json::Value;
use sr_probes::etcd::Etcd;
use sr_probes::net::{Fetch, Secret, TlsFiles};
use sr_probes::patroni::Patroni;
use sr_probes::rabbitmq::Rabbitmq;
use sr_probes::rabbitmq::{self, Reply};
use sr_probes::{etcd, patroni, Finding, TypedProbe};
use sr_protocol::{NodeStatus, ServiceStatus};
use std::path::PathBuf;

/// The Patroni builds captured: Debian 13's package and the PyPI release.
const PATRONI_SETS: [&str; 2] = ["patroni-4.0.7", "patroni-4.1.5"];
const ETCD: &str = "etcd-3.5.16";
const RABBITMQ: &str = "rabbitmq-4.0.5";

fn fixture(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn ok(rel: &str) -> Fetch {
    Fetch::Answered {
        status: 200,
        body: fixture(rel),
    }
}

fn timed(fetch: Fetch) -> Option<patroni::Timed> {
    Some(patroni::Timed { fetch, at: 0 })
}

fn codes(f: &Finding) -> Vec<&str> {
    f.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn db(f: &Finding) -> &sr_protocol::facts::DbFacts {
    f.facts.db.as_ref().expect("db facts")
}

// ---- Patroni ------------------------------------------------------------------------

fn patroni_cfg(member: &str) -> patroni::Config {
    toml::from_str(&format!(
        "url = 'http://127.0.0.1:8008'\nmember = '{member}'"
    ))
    .unwrap()
}

/// `/patroni` of `file` in set `set` judged as `member`, with a `/cluster` and `/config`,
/// "a moment after capture" (`dcs_last_seen` + 1).
fn judge(set: &str, member: &str, patroni: &str, cluster: Option<&str>, config: &str) -> Finding {
    let p = format!("{set}/{patroni}");
    let raw = patroni::Raw {
        patroni: ok(&p),
        cluster: cluster.and_then(|c| timed(ok(&format!("{set}/{c}")))),
        config: timed(ok(&format!("{set}/{config}"))),
        now: json(&p)["dcs_last_seen"].as_i64().expect("dcs_last_seen") + 1,
    };
    Patroni::interpret(&patroni_cfg(member), &raw)
}

/// (name, role, state) of every member of a captured `/cluster`.
fn members(rel: &str) -> Vec<(String, String, String)> {
    json(rel)["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("role"), s("state"))
        })
        .collect()
}

fn member_with(set: &str, cluster: &str, role: &str) -> String {
    members(&format!("{set}/{cluster}"))
        .into_iter()
        .find(|m| m.1 == role)
        .unwrap_or_else(|| panic!("{set}/{cluster}: no {role}"))
        .0
}

/// The name a member's own `/patroni` gives (Patroni >= 3.2 says it).
fn own_name(set: &str, patroni: &str) -> String {
    json(&format!("{set}/{patroni}"))["patroni"]["name"]
        .as_str()
        .expect("patroni.name")
        .into()
}

#[test]
fn patroni4_healthy_leader_is_ok() {
    for set in PATRONI_SETS {
        let leader = member_with(set, "leader-cluster.json", "leader");
        let f = judge(
            set,
            &leader,
            "leader-patroni.json",
            Some("leader-cluster.json"),
            "config.json",
        );
        assert_eq!(f.status, NodeStatus::Ok, "{set}: {:?}", f.reasons);
        assert_eq!(db(&f).role.as_deref(), Some("leader"), "{set}");
        assert_eq!(
            db(&f).cluster_leader.as_deref(),
            Some(leader.as_str()),
            "{set}"
        );
        assert_eq!(db(&f).replication.len(), 2, "{set}");
        assert!(
            db(&f).replication.values().all(|r| r.state == "streaming"),
            "{set}"
        );
        assert_eq!(f.services["Patroni"].status, ServiceStatus::Active, "{set}");
    }
}

#[test]
fn patroni4_legacy_body_says_master() {
    for set in PATRONI_SETS {
        let leader = member_with(set, "leader-cluster.json", "leader");
        let f = judge(
            set,
            &leader,
            "leader-patroni.json",
            Some("leader-cluster.json"),
            "config.json",
        );
        assert_eq!(
            f.services["Patroni"].extra_info["patroni_status"]["role"], "master",
            "{set}"
        );
    }
}

#[test]
fn patroni4_streaming_replicas_are_ok() {
    for set in PATRONI_SETS {
        let cluster = format!("{set}/leader-cluster.json");
        let replicas: Vec<_> = members(&cluster)
            .into_iter()
            .filter(|m| m.1 == "replica")
            .collect();
        assert_eq!(replicas.len(), 2, "{set}");
        // Patroni 4 says a replica is "streaming" in /cluster (its /patroni still says "running").
        assert!(
            replicas.iter().all(|m| m.2 == "streaming"),
            "{set}: {replicas:?}"
        );
        let me = own_name(set, "replica-patroni.json");
        let f = judge(
            set,
            &me,
            "replica-patroni.json",
            Some("leader-cluster.json"),
            "config.json",
        );
        assert_eq!(f.status, NodeStatus::Ok, "{set}: {:?}", f.reasons);
        assert_eq!(db(&f).role.as_deref(), Some("replica"), "{set}");
        assert!(db(&f).lag_bytes.is_some(), "{set}: numeric lag");
        assert_eq!(db(&f).cluster_members[&me].state, "streaming", "{set}");
    }
}

#[test]
fn patroni4_sync_standby_is_seen() {
    for set in PATRONI_SETS {
        let leader = member_with(set, "cluster-sync.json", "leader");
        let f = judge(
            set,
            &leader,
            "leader-patroni-sync.json",
            Some("cluster-sync.json"),
            "config-sync.json",
        );
        assert_eq!(f.status, NodeStatus::Ok, "{set}: {:?}", f.reasons);
        assert_eq!(db(&f).synchronous_mode, Some(true), "{set}");
        assert_eq!(
            db(&f)
                .replication
                .values()
                .filter(|r| r.sync_state == "sync")
                .count(),
            1,
            "{set}"
        );
    }
}

#[test]
fn patroni4_quorum_commit_is_ok() {
    for set in PATRONI_SETS {
        let leader = member_with(set, "cluster-quorum.json", "leader");
        let f = judge(
            set,
            &leader,
            "leader-patroni-quorum.json",
            Some("cluster-quorum.json"),
            "config-quorum.json",
        );
        assert_eq!(f.status, NodeStatus::Ok, "{set}: {:?}", f.reasons);
        assert_eq!(
            db(&f).synchronous_mode,
            Some(true),
            "{set}: 'quorum' is a synchronous mode"
        );
        assert!(
            db(&f)
                .replication
                .values()
                .all(|r| r.sync_state == "quorum"),
            "{set}: {:?}",
            db(&f).replication
        );
        assert!(
            db(&f)
                .cluster_members
                .values()
                .filter(|m| m.role == "quorum_standby")
                .count()
                == 2,
            "{set}"
        );
    }
}

#[test]
fn patroni4_replay_paused_degrades() {
    for set in PATRONI_SETS {
        let me = own_name(set, "replica-patroni-paused.json");
        let f = judge(set, &me, "replica-patroni-paused.json", None, "config.json");
        assert_eq!(
            (f.status, codes(&f)),
            (NodeStatus::Degraded, vec!["replay_paused"]),
            "{set}"
        );
    }
}

#[test]
fn patroni4_postgres_down_under_patroni_fails() {
    for set in PATRONI_SETS {
        let me = own_name(set, "replica-patroni-pg-down.json");
        let doc = json(&format!("{set}/replica-patroni-pg-down.json"));
        assert!(
            doc.get("xlog").is_none() && doc.get("timeline").is_none(),
            "{set}: sparse body"
        );
        let f = judge(
            set,
            &me,
            "replica-patroni-pg-down.json",
            Some("cluster-pg-down.json"),
            "config.json",
        );
        assert_eq!(f.status, NodeStatus::Fail, "{set}: {:?}", f.reasons);
        assert_eq!(codes(&f)[0], "postgres_not_running", "{set}");
        assert_eq!(
            f.services["Patroni"].status,
            ServiceStatus::Inactive,
            "{set}"
        );
    }
}

#[test]
fn patroni4_stopped_member_seen_from_the_leader() {
    for set in PATRONI_SETS {
        let cluster = format!("{set}/cluster-member-stopped.json");
        let stopped = members(&cluster)
            .into_iter()
            .find(|m| m.2 == "stopped")
            .expect("stopped")
            .0;
        let leader = member_with(set, "cluster-member-stopped.json", "leader");
        let f = judge(
            set,
            &leader,
            "leader-patroni.json",
            Some("cluster-member-stopped.json"),
            "config.json",
        );
        assert_eq!(f.status, NodeStatus::Ok, "{set}: {:?}", f.reasons);
        let m = &db(&f).cluster_members[&stopped];
        assert_eq!((m.state.as_str(), m.lag_bytes), ("stopped", None), "{set}");
    }
}

#[test]
fn patroni4_etcd_down_degrades_the_demoted_leader() {
    for set in PATRONI_SETS {
        let me = own_name(set, "patroni-etcd-down.json");
        let p = format!("{set}/patroni-etcd-down.json");
        let seen = json(&p)["dcs_last_seen"].as_i64().unwrap();
        let raw = patroni::Raw {
            patroni: ok(&p),
            cluster: Some(patroni::Timed {
                fetch: Fetch::NoResponse("connection closed before message completed".into()),
                at: seen + 14,
            }),
            config: timed(ok(&format!("{set}/config.json"))),
            now: seen + 15,
        };
        let f = Patroni::interpret(&patroni_cfg(&me), &raw);
        assert_eq!(f.status, NodeStatus::Degraded, "{set}: {:?}", f.reasons);
        assert!(
            codes(&f).contains(&"dcs_unreachable"),
            "{set}: {:?}",
            codes(&f)
        );
        assert_eq!(db(&f).role.as_deref(), Some("replica"), "{set}");
    }
}

#[test]
fn patroni4_new_leader_after_failover_is_ok() {
    for set in PATRONI_SETS {
        let leader = member_with(set, "leader-cluster-after-failover.json", "leader");
        let f = judge(
            set,
            &leader,
            "leader-patroni-after-failover.json",
            Some("leader-cluster-after-failover.json"),
            "config.json",
        );
        assert_eq!(f.status, NodeStatus::Ok, "{set}: {:?}", f.reasons);
        assert!(db(&f).timeline.unwrap() >= 2, "{set}");
    }
}

// ---- etcd 3.5 -----------------------------------------------------------------------

fn etcd_cfg() -> etcd::Config {
    toml::from_str("url = 'http://127.0.0.1:2379'").unwrap()
}

#[test]
fn etcd35_healthy_leader_is_ok() {
    let f = Etcd::interpret(
        &etcd_cfg(),
        &etcd::Raw {
            status: ok(&format!("{ETCD}/maintenance-status.json")),
            health: ok(&format!("{ETCD}/health-ok.json")),
        },
    );
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let e = db(&f).etcd.as_ref().unwrap();
    assert_eq!(e.leader, e.member_id);
    assert_eq!(e.is_learner, Some(false), "isLearner absent means false");
    assert_eq!(f.services["Etcd"].extra_info["is_leader"], true);
    assert_eq!(f.services["Etcd"].extra_info["version"], "3.5.16");
}

#[test]
fn etcd35_follower_is_ok() {
    let f = Etcd::interpret(
        &etcd_cfg(),
        &etcd::Raw {
            status: ok(&format!("{ETCD}/maintenance-status-follower.json")),
            health: ok(&format!("{ETCD}/health-ok.json")),
        },
    );
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    let e = db(&f).etcd.as_ref().unwrap();
    assert!(e.leader.is_some());
}

#[test]
fn etcd35_quorum_loss_degrades_with_the_reason() {
    let raw = etcd::Raw {
        status: ok(&format!("{ETCD}/maintenance-status-no-leader.json")),
        health: Fetch::Answered {
            status: 503,
            body: fixture(&format!("{ETCD}/health-fail.json")),
        },
    };
    let f = Etcd::interpret(&etcd_cfg(), &raw);
    assert_eq!(f.status, NodeStatus::Degraded, "{:?}", f.reasons);
    assert_eq!(
        codes(&f),
        vec!["etcd_no_leader", "etcd_alarm", "etcd_unhealthy"]
    );
    assert_eq!(f.services["Etcd"].status, ServiceStatus::Inactive);
}

#[test]
fn etcd35_health_reason_is_reported() {
    let body = fixture(&format!("{ETCD}/health-fail.json"));
    let said: Value = serde_json::from_slice(&body).unwrap();
    let reason = said["reason"]
        .as_str()
        .expect("3.5 gives a reason")
        .to_string();
    assert!(!reason.is_empty());
    let raw = etcd::Raw {
        status: ok(&format!("{ETCD}/maintenance-status-no-leader.json")),
        health: Fetch::Answered { status: 503, body },
    };
    let f = Etcd::interpret(&etcd_cfg(), &raw);
    let unhealthy = f
        .reasons
        .iter()
        .find(|r| r.code == "etcd_unhealthy")
        .unwrap();
    assert!(unhealthy.message.contains(&reason), "{}", unhealthy.message);
}

// ---- RabbitMQ 4.0 with Khepri ------------------------------------------------------

fn rmq_cfg(node: &str) -> rabbitmq::Config {
    rabbitmq::Config {
        management_url: "http://127.0.0.1:15672".into(),
        tls: TlsFiles::default(),
        username: "monitor".into(),
        password: Secret::new("monitor"),
        node_name: Some(node.into()),
        amqp_host: "127.0.0.1".into(),
        amqp_port: 5672,
        vhost: "/".into(),
        amqp_every: 6,
        amqp_publish: true,
        amqp_timeout_ms: 5000,
        cert_expiry_days: 30,
        fd_warn_ratio: 0.9,
        timeout_ms: 2000,
        max_body_bytes: 1 << 20,
    }
}

fn reply(file: &str, status: u16) -> Reply {
    Reply::Answered {
        status,
        body: String::from_utf8(fixture(&format!("{RABBITMQ}/{file}"))).unwrap(),
    }
}

/// The probe's five management replies on node `node` (1-based), from captured bodies.
/// The overview was captured on node 1; for another node only its `node` field is changed.
fn rmq_raw(node: u8, nodes: &str, local_alarms: (&str, u16)) -> rabbitmq::Raw {
    let overview = String::from_utf8(fixture(&format!("{RABBITMQ}/overview.json")))
        .unwrap()
        .replace("rabbit1@localhost", &format!("rabbit{node}@localhost"));
    rabbitmq::Raw {
        overview: Reply::Answered {
            status: 200,
            body: overview,
        },
        local_alarms: reply(local_alarms.0, local_alarms.1),
        port_listener: reply("port-listener-ok.json", 200),
        virtual_hosts: reply("virtual-hosts-ok.json", 200),
        nodes: reply(nodes, 200),
        certificate_expiration: None,
        amqp: None,
        quorum_critical: None,
        queues: None,
        feature_flags: None,
        reused: Vec::new(),
    }
}

/// `/api/queues` as the probe asks it (a list) holding the one captured queue.
fn queues_with(file: &str) -> Reply {
    let queue: Value = json(&format!("{RABBITMQ}/{file}"));
    Reply::Answered {
        status: 200,
        body: serde_json::to_string(&vec![queue]).unwrap(),
    }
}

fn broker(f: &Finding) -> &sr_protocol::facts::BrokerFacts {
    f.facts.broker.as_ref().expect("broker facts")
}

#[test]
fn rabbitmq4_healthy_cluster_is_ok() {
    let f = Rabbitmq::interpret(
        &rmq_cfg("rabbit1@localhost"),
        &rmq_raw(
            1,
            "nodes-healthy-columns.json",
            ("local-alarms-ok.json", 200),
        ),
    );
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    assert_eq!(broker(&f).cluster_view.values().filter(|r| **r).count(), 3);
    assert!(broker(&f).partitions.is_empty());
    assert_eq!(
        f.services["RabbitMQ"].extra_info["node_status"],
        serde_json::json!({"status": "ok"})
    );
}

#[test]
fn rabbitmq4_stopped_peer_degrades() {
    let f = Rabbitmq::interpret(
        &rmq_cfg("rabbit1@localhost"),
        &rmq_raw(1, "nodes-one-stopped.json", ("local-alarms-ok.json", 200)),
    );
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Degraded, vec!["peer_down"])
    );
    assert_eq!(f.reasons[0].node.as_deref(), Some("rabbit3@localhost"));
}

#[test]
fn rabbitmq4_local_memory_alarm_fails_that_node() {
    let f = Rabbitmq::interpret(
        &rmq_cfg("rabbit2@localhost"),
        &rmq_raw(
            2,
            "nodes-memory-alarm.json",
            ("local-alarms-memory.json", 503),
        ),
    );
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Fail, vec!["local_alarm"])
    );
    assert!(
        f.reasons[0].message.contains("memory"),
        "{}",
        f.reasons[0].message
    );
    let peer = Rabbitmq::interpret(
        &rmq_cfg("rabbit1@localhost"),
        &rmq_raw(
            1,
            "nodes-memory-alarm.json",
            ("local-alarms-memory-other-node.json", 200),
        ),
    );
    assert_eq!(peer.status, NodeStatus::Ok, "{:?}", peer.reasons);
}

#[test]
fn rabbitmq4_just_booted_peer_is_ok() {
    let f = Rabbitmq::interpret(
        &rmq_cfg("rabbit1@localhost"),
        &rmq_raw(1, "nodes-just-booted.json", ("local-alarms-ok.json", 200)),
    );
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
}

#[test]
fn rabbitmq4_link_cut_with_khepri_gives_the_roll_up_contradicting_views() {
    // Khepri: no `partitions` entry on either side, so the split-brain rule has only the
    // views: node 1 sees node 3 down, node 3 sees nodes 1 and 2 down, each sees itself up.
    let majority = Rabbitmq::interpret(
        &rmq_cfg("rabbit1@localhost"),
        &rmq_raw(
            1,
            "nodes-link-cut-majority.json",
            ("local-alarms-ok.json", 200),
        ),
    );
    let minority = Rabbitmq::interpret(
        &rmq_cfg("rabbit3@localhost"),
        &rmq_raw(
            3,
            "nodes-link-cut-minority.json",
            ("local-alarms-ok.json", 200),
        ),
    );
    for f in [&majority, &minority] {
        assert!(
            broker(f).partitions.is_empty(),
            "Khepri: partitions stays empty"
        );
        assert!(!codes(f).contains(&"partition"));
    }
    let up = |f: &Finding, n: &str| broker(f).cluster_view.get(n).copied();
    assert_eq!(up(&majority, "rabbit1@localhost"), Some(true));
    assert_eq!(up(&majority, "rabbit3@localhost"), Some(false));
    assert_eq!(up(&minority, "rabbit3@localhost"), Some(true));
    assert_eq!(up(&minority, "rabbit1@localhost"), Some(false));
    assert_eq!(
        majority.status,
        NodeStatus::Degraded,
        "{:?}",
        majority.reasons
    );
}

#[test]
fn rabbitmq4_minority_side_of_a_cut_fails() {
    let mut raw = rmq_raw(
        3,
        "nodes-link-cut-minority.json",
        ("local-alarms-ok.json", 200),
    );
    raw.feature_flags = Some(reply("feature-flags.json", 200));
    let f = Rabbitmq::interpret(&rmq_cfg("rabbit3@localhost"), &raw);
    assert_eq!(f.status, NodeStatus::Fail, "{:?}", f.reasons);
    assert!(codes(&f).contains(&"cluster_minority"), "{:?}", f.reasons);
    // Failing itself does not take the node out of the roll-up's contradicting-views
    // rule: its view still lists itself running and the other side down.
    assert_eq!(
        broker(&f).cluster_view.get("rabbit3@localhost"),
        Some(&true)
    );
    assert_eq!(
        broker(&f).cluster_view.get("rabbit1@localhost"),
        Some(&false)
    );
}

#[test]
fn rabbitmq4_quorum_critical_node_is_reported() {
    let mut raw = rmq_raw(1, "nodes-one-stopped.json", ("local-alarms-ok.json", 200));
    raw.quorum_critical = Some(reply("node-is-quorum-critical-fail.json", 503));
    let f = Rabbitmq::interpret(&rmq_cfg("rabbit1@localhost"), &raw);
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Degraded, vec!["peer_down", "quorum_critical"])
    );
    let critical = &f.reasons[1].message;
    assert!(
        critical.contains("fixture-qq") && critical.contains("metadata store"),
        "{critical}"
    );
    assert!(
        f.reasons.iter().any(|r| r.message.contains("quorum")),
        "{:?}",
        f.reasons
    );
}

#[test]
fn rabbitmq4_quorum_queue_without_majority_is_reported() {
    let mut raw = rmq_raw(
        1,
        "nodes-two-stopped.json",
        ("local-alarms-minority.json", 200),
    );
    raw.queues = Some(queues_with("queue-quorum-no-majority.json"));
    let f = Rabbitmq::interpret(&rmq_cfg("rabbit1@localhost"), &raw);
    assert!(
        codes(&f).contains(&"quorum_queue_minority"),
        "{:?}",
        f.reasons
    );
    assert!(
        f.reasons.iter().any(|r| r.message.contains("quorum queue")),
        "{:?}",
        f.reasons
    );
}

#[test]
fn rabbitmq4_quorum_checks_pass_on_a_healthy_cluster() {
    let mut raw = rmq_raw(
        1,
        "nodes-healthy-columns.json",
        ("local-alarms-ok.json", 200),
    );
    raw.quorum_critical = Some(reply("node-is-quorum-critical-ok.json", 200));
    raw.queues = Some(queues_with("queue-quorum.json"));
    raw.feature_flags = Some(reply("feature-flags.json", 200));
    let f = Rabbitmq::interpret(&rmq_cfg("rabbit1@localhost"), &raw);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    assert_eq!(
        f.services["RabbitMQ"].extra_info["metadata_store"],
        "khepri"
    );
}

#[test]
fn rabbitmq_quorum_critical_404_means_not_available() {
    // 3.10 and other builds without the check: nothing to read, nothing wrong.
    let mut raw = rmq_raw(
        1,
        "nodes-healthy-columns.json",
        ("local-alarms-ok.json", 200),
    );
    raw.quorum_critical = Some(reply("metadata-store-initialized.json", 404));
    let f = Rabbitmq::interpret(&rmq_cfg("rabbit1@localhost"), &raw);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    assert_eq!(broker(&f).management_ok, Some(true));
}

#[test]
fn rabbitmq4_lone_survivor_without_khepri_is_not_a_minority_failure() {
    // Mnesia (or flags unreadable): a last node standing still serves classic queues;
    // only the roll-up's quorum rule fails the cluster.
    let f = Rabbitmq::interpret(
        &rmq_cfg("rabbit1@localhost"),
        &rmq_raw(
            1,
            "nodes-two-stopped.json",
            ("local-alarms-minority.json", 200),
        ),
    );
    assert_eq!(
        (f.status, codes(&f)),
        (NodeStatus::Degraded, vec!["peer_down", "peer_down"])
    );
}

/// RabbitMQ 4.0.5 holds a few management requests for 5 s (measured: ~1 in 30
/// `/api/overview`): a stalled call is read from the last clean cycle instead of failing a
/// healthy node; a stall without clean answers to stand in (none, or too old: the probe
/// passes `None`), or with nothing answering at all, is still reported.
#[test]
fn rabbitmq4_a_stalled_management_call_is_bridged() {
    let cfg = rmq_cfg("rabbit1@localhost");
    let clean = rmq_raw(
        1,
        "nodes-healthy-columns.json",
        ("local-alarms-ok.json", 200),
    );
    let stalled = || {
        let mut r = clean.clone();
        r.overview = Reply::Failed {
            error: "no answer within 700 ms".into(),
        };
        r
    };

    let mut bridged = stalled();
    assert!(!rabbitmq::bridge_stalls(&mut bridged, Some(&clean)));
    assert_eq!(bridged.reused, vec!["/api/overview".to_string()]);
    assert_eq!(bridged.overview, clean.overview);
    let f = Rabbitmq::interpret(&cfg, &bridged);
    assert_eq!(f.status, NodeStatus::Ok, "{:?}", f.reasons);
    assert_eq!(
        f.services["RabbitMQ"].extra_info["management_reused"],
        serde_json::json!(["/api/overview"])
    );

    // no clean answers young enough: reported
    let mut again = stalled();
    assert!(!rabbitmq::bridge_stalls(&mut again, None));
    assert!(again.reused.is_empty());
    let f = Rabbitmq::interpret(&cfg, &again);
    assert_eq!(codes(&f), ["management_error"], "{:?}", f.reasons);

    // nothing answered: the API is down, not stalled
    let mut down = clean.clone();
    for r in [
        &mut down.overview,
        &mut down.local_alarms,
        &mut down.port_listener,
        &mut down.virtual_hosts,
        &mut down.nodes,
    ] {
        *r = Reply::Failed {
            error: "no answer within 700 ms".into(),
        };
    }
    assert!(!rabbitmq::bridge_stalls(&mut down, Some(&clean)));
    assert!(down.reused.is_empty());
    assert_eq!(Rabbitmq::interpret(&cfg, &down).status, NodeStatus::Fail);

    // a refused call is no stall: never bridged
    let mut refused = clean.clone();
    refused.nodes = Reply::Failed {
        error: "cannot connect: refused".into(),
    };
    assert!(rabbitmq::bridge_stalls(&mut refused, Some(&clean)));
    assert!(refused.reused.is_empty());

    // a clean cycle may serve the next one
    let mut fine = clean.clone();
    assert!(rabbitmq::bridge_stalls(&mut fine, None));
}
