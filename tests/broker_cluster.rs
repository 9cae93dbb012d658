//! Issue 5's broker scenarios end to end, on ONE shared real 3-node RabbitMQ cluster per
//! version set (issue 13: `broker_cluster_set_a` on RabbitMQ 3.10.8 with Mnesia,
//! `broker_cluster_set_b` on 4.0.5 with the Khepri metadata store on; the scenarios are
//! written once, and where a version legitimately answers differently the expectation is
//! stated per set in [`Expect`], with why):
//! three real agents (`status-reporter run`, node type broker, one per RabbitMQ node, the
//! `rabbitmq` probe on that node's management API and AMQP port, reporting every second)
//! push signed reports over TLS to one real collector (`status-reporter collector run`,
//! certificate from a throwaway rcgen CA), and every verdict is read the operator's way,
//! with `status-reporter cluster status --json` and its exit code.
//!
//! Scenarios, in sequence: 1 healthy; 2 one node stopped and started (transitions
//! recorded); 3 a memory alarm on one node; 4 two nodes stopped (on set B with a quorum
//! queue, which loses its majority); 5 one node's management API unreachable while AMQP
//! works; 6 detection at the default 5 s interval: node 3's beam.smp SIGKILLed three times,
//! kill → broker not OK printed (`kill->visible`), the agent's process watch (issue 17)
//! checked to be on that beam; then `rabbitmqctl stop_app` three times (beam.smp lives on),
//! stop → broker not OK printed, the agent's held AMQP connection checked to be what woke
//! it. A real partition is `tests/broker_partition.rs`.
//!
//! Only broker agents report here, so the overall status (and so the exit code) is always
//! Fail: the collector requires manager and db nodes too (`no_nodes`). The broker verdicts
//! are read from `services.broker`; every `cluster status` call also checks that its exit
//! code is the one its own JSON implies.
//!
//! Everything waits by polling `cluster status` with deadlines; nothing sleeps to
//! synchronise. Timings are printed (`BENCH` lines), never asserted. Skips when RabbitMQ
//! is not installed, fails under `CI=true`.
mod harness;

use harness::lab::rabbitmq::broker_probe;
use harness::lab::{exclusive, require_set, RabbitCluster, RabbitOpts, VersionSet, MONITOR_USER};
use harness::{Agent, Collector, Status};
use sr_probes::rabbitmq::{self, Config};
use sr_probes::ProbeConfig;
use sr_protocol::{NodeStatus, NodeType};
use std::time::{Duration, Instant};

/// Agent node names (what `cluster status` shows); agent i watches RabbitMQ node i.
const AGENTS: [&str; 3] = ["broker-1", "broker-2", "broker-3"];
/// Deadline of one expected state; node stops and starts take 6-15 s on a busy box.
const DEADLINE: Duration = Duration::from_secs(90);

/// The probe one agent runs: its own node, on the ports the lab picked.
fn probe_config(c: &RabbitCluster, i: usize) -> Config {
    broker_probe(c.mgmt_url(i), c.amqp_port(i), c.node_name(i))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn all_ok(s: &Status) -> bool {
    s.broker_status() == Some(NodeStatus::Ok)
        && s.broker().is_some_and(|b| b.nodes.len() == 3)
        && AGENTS
            .iter()
            .all(|a| s.node_status(a) == Some(NodeStatus::Ok))
}

/// Broker-level status changes seen across every poll, in order.
struct History(Vec<NodeStatus>);

impl History {
    fn see(&mut self, s: &Status) {
        if let Some(st) = s.broker_status() {
            if self.0.last() != Some(&st) {
                self.0.push(st);
            }
        }
    }
}

/// The quorum queue scenario 4 declares on set B.
const QQ: &str = "sr-lab-qq";

/// Where the two version sets legitimately differ, stated once.
struct Expect {
    /// The lone survivor of scenario 4 (two of three nodes down): its status and the
    /// codes its reasons must carry.
    survivor: (NodeStatus, &'static [&'static str]),
    /// Whether scenario 4 runs with a quorum queue on all three nodes.
    quorum_queue: bool,
    /// The codes the stopped node's first Fail transition (scenario 2) may carry.
    stopping: &'static [&'static str],
    /// The codes a survivor's Fail may carry while a peer stops (scenario 2); empty: it
    /// must not Fail at all.
    survivor_blip: &'static [&'static str],
}

fn expect(set: VersionSet) -> Expect {
    if set.khepri() {
        Expect {
            // Khepri is a Raft cluster: with two of three nodes down the survivor takes no
            // metadata change (no queue, user, vhost or binding can be declared) and its
            // quorum queue has no leader: Fail, not just a peer down. The probe sees it
            // from /api/nodes (1 of 3 running, Khepri on) and /api/queues (state minority).
            survivor: (
                NodeStatus::Fail,
                &["cluster_minority", "quorum_queue_minority"],
            ),
            quorum_queue: true,
            // 4.0.5 stops in ~1.3 s and answers HTTP 500 on /api/overview while it does:
            // the first Fail can be the management API's error before it is unreachable
            // (which the view shows right after, checked in scenario 2 either way)
            stopping: &["management_unreachable", "management_error"],
            // While node 3 stops, node 1's AMQP connection open took over 700 ms for ~3.6 s
            // (the Khepri metadata store changing membership, its leader possibly moving):
            // a client connecting then would fail too, so the survivor truly Fails
            // `amqp_failed` for those seconds before its peer_down Degraded.
            survivor_blip: &["amqp_failed", "quorum_critical", "peer_down"],
        }
    } else {
        Expect {
            // Mnesia: a lone node still serves its classic queues and takes definitions.
            survivor: (NodeStatus::Degraded, &["peer_down"]),
            quorum_queue: false,
            // 3.10.8 too can answer HTTP 500 on /api/overview in the stop's first moments
            // (seen once, 2026-11-29): a cycle then Fails `management_error` first
            stopping: &["management_unreachable", "management_error"],
            // Mnesia keeps serving, but on a loaded host (CI beside other builds, load 8,
            // 2026-11-29) node 1's publisher confirm missed the probe's deadline for one
            // cycle while node 3 rejoined (12.3 s after the stop, OK again 1.5 s later):
            // a client publishing then waited as long, so that Fail is true. Any other
            // reason on a survivor still fails the scenario.
            survivor_blip: &["amqp_failed", "peer_down"],
        }
    }
}

#[test]
fn broker_cluster_set_a() {
    broker_suite(VersionSet::Debian12);
}

#[test]
fn broker_cluster_set_b() {
    broker_suite(VersionSet::Trixie);
}

fn broker_suite(set: VersionSet) {
    if !require_set(set, &["rabbitmq"]) {
        return;
    }
    let _one_cluster_at_a_time = exclusive();
    let expect = expect(set);
    let label = set.label();
    let c = RabbitCluster::start(RabbitOpts {
        set,
        ..Default::default()
    })
    .expect("start the RabbitMQ cluster");
    eprintln!(
        "rabbitmq[{label}]: 3 nodes up in {:.1}s",
        c.started_in().as_secs_f64()
    );
    // The AMQP round trip needs a server-named queue: configure/read on amq.gen-*, write
    // on the default exchange. Nothing else.
    c.ctl(
        0,
        &[
            "set_permissions",
            "-p",
            "/",
            MONITOR_USER,
            r"^amq\.gen-.*",
            r"^amq\.(gen-.*|default)$",
            r"^amq\.gen-.*",
        ],
    )
    .expect("grant the monitor user its probe queue");

    let tmp = tempfile::tempdir().unwrap();
    // The scenarios flip node states on purpose many times within minutes: flap damping
    // (its own tests are in the collector) would hold nodes at Degraded and hide the
    // verdicts under test.
    let collector = Collector::start(
        &tmp.path().join("collector"),
        "127.0.0.1:0",
        &["127.0.0.1", "localhost"],
        None,
        &[("flap_threshold", "1000"), ("shutdown_grace_secs", "1")],
    );
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| {
            Agent::for_collector(
                &tmp.path().join(AGENTS[i]),
                AGENTS[i],
                "broker",
                &collector,
                vec![ProbeConfig::Rabbitmq(probe_config(&c, i))],
                None,
            )
        })
        .collect();
    for a in &mut agents {
        a.start();
    }
    let mut history = History(Vec::new());

    // 1. Healthy: broker OK with 3 nodes; every node sees 3 running members and its
    //    AMQP round trip worked; the legacy shape is filled.
    let (s, t) = collector.wait("a healthy broker", DEADLINE, |s| {
        all_ok(s)
            && AGENTS.iter().all(|a| {
                s.rabbit_info(a).is_some_and(|x| {
                    x.get("amqp").is_some_and(|q| {
                        q.get("failed_step").is_none() && q.get("connect_ms").is_some()
                    })
                })
            })
    });
    history.see(&s);
    eprintln!(
        "scenario 1: broker OK after {:.1}s from the agents' start",
        t.as_secs_f64()
    );
    let v = s.view.as_ref().unwrap();
    // Only brokers report: overall Fail because manager and db have no nodes.
    assert_eq!(
        (v.status, s.code),
        (NodeStatus::Fail, Some(2)),
        "{}",
        s.describe()
    );
    assert!(
        v.reasons.iter().all(|r| r.code == "no_nodes"),
        "{:?}",
        v.reasons
    );
    assert!(s.broker().unwrap().reasons.is_empty());
    for (i, a) in AGENTS.iter().enumerate() {
        let x = s.rabbit_info(a).unwrap();
        assert_eq!(x["node_name"], c.node_name(i), "{x:?}");
        assert_eq!(x["node_status"]["status"], "ok", "{x:?}");
        let cs = x["cluster_status"].as_object().unwrap();
        assert_eq!(cs.len(), 3, "{cs:?}");
        assert!(
            c.node_names()
                .iter()
                .all(|n| cs.get(n) == Some(&"OK".into())),
            "{cs:?}"
        );
        let node = s.node(a).unwrap();
        assert!(node.signed && node.last_seen.is_some(), "{a}: {node:?}");
        assert_eq!(node.services["RabbitMQ"]["status"], "Active");
    }
    eprintln!(
        "amqp on broker-1: {}",
        s.rabbit_info(AGENTS[0]).unwrap()["amqp"]
    );

    // Fast path cost: the management requests of one probe cycle, AMQP excluded, straight
    // against node 1 (the agents' own cycle time includes scheduling on a busy box).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg0 = probe_config(&c, 0);
    let client = cfg0.tls.client(Duration::from_millis(cfg0.timeout_ms));
    let auth = sr_probes::net::basic_auth(&cfg0.username, &cfg0.password);
    // A sample cut by the probe's own 700 ms deadline (the box is shared) is counted, not
    // failed: this loop measures; any other verdict than OK would still be wrong.
    let mut cut: Vec<String> = Vec::new();
    let mut samples: Vec<f64> =
        (0..30)
            .map(|_| {
                let t = Instant::now();
                let raw = rt.block_on(rabbitmq::collect_management(&cfg0, &client, &auth));
                let f = <rabbitmq::Rabbitmq as sr_probes::TypedProbe>::interpret(&cfg0, &raw);
                if f.status != NodeStatus::Ok {
                    assert!(
                        f.reasons.iter().all(|r| r.code == "management_error"
                            && r.message.contains("no answer within")),
                        "{:?}",
                        f.reasons
                    );
                    cut.push(f.reasons[0].message.clone());
                }
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "BENCH[{label}] broker probe cycle (management only, AMQP excluded), 30 runs: median {:.1} ms, p90 {:.1} ms, max {:.1} ms ({} cut at 700 ms: {cut:?})",
        samples[15], samples[27], samples[29], cut.len()
    );

    // 2. Stop node 3: Degraded, naming it. Timed from the stop command, polled while the
    //    (graceful, ~6 s) stop is still running.
    let rabbit3 = c.node_name(2).to_string();
    let stop_at = Instant::now();
    let stop_wall_ms = now_ms();
    let (s, to_degraded, beam_gone) = std::thread::scope(|sc| {
        let stopper = sc.spawn(|| {
            c.stop_node(2).expect("stop node 3");
            stop_at.elapsed()
        });
        let (s, t) = collector.wait("broker Degraded with node 3 stopped", DEADLINE, |s| {
            s.broker_status() == Some(NodeStatus::Degraded)
                && s.node_status(AGENTS[2]) == Some(NodeStatus::Fail)
        });
        (s, t, stopper.join().unwrap())
    });
    history.see(&s);
    eprintln!(
        "BENCH[{label}] stop node → broker Degraded in `cluster status`: {:.2}s from the stop command (beam.smp exited after {:.2}s; agents report every 1 s)",
        to_degraded.as_secs_f64(),
        beam_gone.as_secs_f64()
    );
    let b = s.broker().unwrap();
    assert!(
        b.reasons.iter().any(|r| r.code == "degraded"),
        "{}",
        s.describe()
    );
    for a in &AGENTS[..2] {
        assert_ne!(
            s.node_status(a),
            Some(NodeStatus::Fail),
            "{a} is not Fail: {}",
            s.describe()
        );
    }
    // Once beam is gone: node 3 unreachable, and both survivors name the stopped member.
    let (s, _) = collector.wait(
        "node 3 unreachable and both survivors naming it",
        DEADLINE,
        |s| {
            s.broker_status() == Some(NodeStatus::Degraded)
                && s.has_reason("management_unreachable", AGENTS[2])
                && AGENTS[..2].iter().all(|a| {
                    s.node_status(a) == Some(NodeStatus::Degraded)
                        && s.node_reasons(a, "peer_down")
                            .iter()
                            .any(|m| m.contains(&rabbit3))
                        && s.rabbit_info(a)
                            .is_some_and(|x| x["cluster_status"][&rabbit3] == "Fail")
                })
        },
    );
    history.see(&s);
    let why = s.node_reasons(AGENTS[2], "management_unreachable");
    assert!(why[0].contains(&c.mgmt_url(2)), "{why:?}");

    let restart_at = Instant::now();
    c.start_node(2).expect("start node 3");
    let (s, _) = collector.wait("broker OK after node 3 is back", DEADLINE, all_ok);
    history.see(&s);
    eprintln!(
        "scenario 2: OK again {:.1}s after the start command",
        restart_at.elapsed().as_secs_f64()
    );
    // The transitions are recorded: the broker went OK → Degraded → OK in the view, and
    // the collector's store holds each node's own transitions, with reasons.
    assert!(
        history
            .0
            .windows(3)
            .any(|w| w == [NodeStatus::Ok, NodeStatus::Degraded, NodeStatus::Ok]),
        "{:?}",
        history.0
    );
    let after_stop = |a: &Agent| -> Vec<(String, String, String)> {
        collector
            .node_transitions(NodeType::Broker, &a.node_id)
            .into_iter()
            .filter(|t| t.at_ms >= stop_wall_ms - 1000)
            .map(|t| (t.from, t.to, t.reasons_json))
            .collect()
    };
    let t3 = after_stop(&agents[2]);
    let t1 = after_stop(&agents[0]);
    let pairs = |t: &[(String, String, String)]| {
        t.iter()
            .map(|(f, to, _)| format!("{f}->{to}"))
            .collect::<Vec<_>>()
    };
    assert!(
        t3.first()
            .is_some_and(|(f, to, _)| f == "OK" && to == "Fail")
            && t3
                .iter()
                .any(|(_, to, why)| to == "Fail" && expect.stopping.iter().any(|c| why.contains(c)))
            && t3.last().is_some_and(|(_, to, _)| to == "OK"),
        "broker-3 transitions since the stop: {:?}",
        t3
    );
    let blip_ok = |why: &str| {
        let v: serde_json::Value = serde_json::from_str(why).unwrap_or_default();
        v.as_array().is_some_and(|rs| {
            rs.iter().all(|r| {
                expect
                    .survivor_blip
                    .iter()
                    .any(|c| r["code"].as_str() == Some(*c))
            })
        })
    };
    assert!(
        t1.iter()
            .any(|(_, to, why)| to == "Degraded" && why.contains(&rabbit3))
            && t1
                .iter()
                .filter(|(_, to, _)| to == "Fail")
                .all(|(_, _, why)| blip_ok(why))
            && t1.last().is_some_and(|(_, to, _)| to == "OK"),
        "broker-1 transitions since the stop: {:?}; all of them: {:?}",
        t1,
        collector
            .node_transitions(NodeType::Broker, &agents[0].node_id)
            .into_iter()
            .map(|t| (t.at_ms - stop_wall_ms, t.from, t.to, t.reasons_json))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "scenario 2 transitions: broker {:?}; broker-3 {:?}; broker-1 {:?}",
        history.0,
        pairs(&t3),
        pairs(&t1)
    );

    // 3. A memory alarm on node 2: that node Fail with the alarm as its reason; the others
    //    are not blamed (their publishers are blocked too, but by node 2's alarm).
    let rabbit2 = c.node_name(1).to_string();
    c.ctl(1, &["set_vm_memory_high_watermark", "0.0001"])
        .expect("raise the memory alarm");
    let (s, _) = collector.wait(
        "node 2 Fail with its memory alarm, the others OK",
        DEADLINE,
        |s| {
            s.node_status(AGENTS[1]) == Some(NodeStatus::Fail)
                && s.has_reason("local_alarm", AGENTS[1])
                && [AGENTS[0], AGENTS[2]]
                    .iter()
                    .all(|a| s.node_status(a) == Some(NodeStatus::Ok))
        },
    );
    history.see(&s);
    assert_eq!(
        s.broker_status(),
        Some(NodeStatus::Degraded),
        "{}",
        s.describe()
    );
    let alarm = s.node_reasons(AGENTS[1], "local_alarm");
    assert!(
        alarm[0].contains("memory") && alarm[0].contains(&rabbit2),
        "{alarm:?}"
    );
    for other in [AGENTS[0], AGENTS[2]] {
        let b = s.broker().unwrap();
        assert!(
            b.reasons.iter().all(|r| r.node.as_deref() != Some(other)),
            "{other} is blamed: {}",
            s.describe()
        );
    }
    assert_eq!(
        s.rabbit_info(AGENTS[1]).unwrap()["node_status"]["status"],
        "failed"
    );
    c.ctl(1, &["set_vm_memory_high_watermark", "0.4"])
        .expect("clear the memory alarm");
    let (s, _) = collector.wait("broker OK after the alarm clears", DEADLINE, all_ok);
    history.see(&s);

    // 4. Two nodes down: below quorum, Fail, naming both. Node 3 crashes (SIGKILL: no
    //    goodbye to its peers, the detection a real crash gets), then node 2 is stopped.
    //    On set B a quorum queue on all three nodes loses its majority with them.
    if expect.quorum_queue {
        c.declare_quorum_queue(0, QQ)
            .expect("declare the quorum queue");
        collector.wait("broker OK with the quorum queue", DEADLINE, all_ok);
    }
    let kill_at = Instant::now();
    c.kill_node(2).expect("kill node 3");
    let killed = kill_at.elapsed();
    let (s, _) = collector.wait("broker Degraded with node 3 killed", DEADLINE, |s| {
        s.broker_status() == Some(NodeStatus::Degraded)
            && s.node_status(AGENTS[2]) == Some(NodeStatus::Fail)
    });
    history.see(&s);
    eprintln!(
        "BENCH[{label}] kill node (SIGKILL) → broker Degraded in `cluster status`: {:.2}s from the kill (beam gone after {:.2}s)",
        kill_at.elapsed().as_secs_f64(),
        killed.as_secs_f64()
    );
    let stop2_at = Instant::now();
    c.stop_node(1).expect("stop node 2");
    let (s, _) = collector.wait("broker Fail with two nodes stopped", DEADLINE, |s| {
        s.broker_status() == Some(NodeStatus::Fail)
            && s.has_reason("management_unreachable", AGENTS[1])
            && s.has_reason("management_unreachable", AGENTS[2])
    });
    history.see(&s);
    eprintln!(
        "scenario 4: broker Fail {:.1}s after the stop commands",
        stop2_at.elapsed().as_secs_f64()
    );
    let b = s.broker().unwrap();
    assert!(
        b.reasons.iter().any(|r| r.code == "quorum_lost"),
        "{}",
        s.describe()
    );
    // The survivor, per set (see `expect`).
    let (survivor, codes) = expect.survivor;
    let (s, _) = collector.wait(
        &format!("the survivor {survivor:?} with {codes:?}"),
        DEADLINE,
        |s| {
            s.node_status(AGENTS[0]) == Some(survivor)
                && codes
                    .iter()
                    .all(|c| !s.node_reasons(AGENTS[0], c).is_empty())
        },
    );
    eprintln!(
        "scenario 4[{label}]: survivor {survivor:?}: {:?}",
        codes
            .iter()
            .flat_map(|c| s.node_reasons(AGENTS[0], c))
            .collect::<Vec<_>>()
    );
    if expect.quorum_queue {
        assert!(
            s.node_reasons(AGENTS[0], "quorum_queue_minority")
                .iter()
                .any(|m| m.contains(QQ)),
            "{}",
            s.describe()
        );
    }
    assert_eq!(s.code, Some(2));
    assert!(
        s.view
            .as_ref()
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.code == "quorum_lost"),
        "the overall reasons carry the broker's"
    );
    std::thread::scope(|sc| {
        let a = sc.spawn(|| c.start_node(1).expect("start node 2"));
        let b = sc.spawn(|| c.start_node(2).expect("start node 3"));
        a.join().unwrap();
        b.join().unwrap();
    });
    let (s, _) = collector.wait("broker OK after both are back", DEADLINE, all_ok);
    history.see(&s);

    // 5. Node 1's management API unreachable (its agent is reloaded, SIGHUP, with the
    //    probe on a closed port): Fail on the management path, and the AMQP check, run
    //    fresh in that same cycle, still reports the truth: AMQP works.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = probe_config(&c, 0);
    cfg.management_url = format!("http://127.0.0.1:{closed_port}");
    agents[0].reload_with(vec![ProbeConfig::Rabbitmq(cfg)]);
    let (s, _) = collector.wait(
        "broker-1 Fail on the management path with a fresh AMQP result",
        DEADLINE,
        |s| {
            s.node_reasons(AGENTS[0], "management_unreachable")
                .iter()
                .any(|m| m.contains("(0 cycles ago)"))
        },
    );
    history.see(&s);
    let why = &s.node_reasons(AGENTS[0], "management_unreachable")[0];
    assert!(
        why.contains(&format!("127.0.0.1:{closed_port}"))
            && why.contains(&format!("AMQP on port {} still works", c.amqp_port(0))),
        "{why}"
    );
    assert_eq!(s.node_status(AGENTS[0]), Some(NodeStatus::Fail));
    let x = s.rabbit_info(AGENTS[0]).unwrap();
    assert!(
        x["amqp"].get("failed_step").is_none() && x["amqp"]["connect_ms"].is_u64(),
        "{x:?}"
    );
    assert_eq!(x["node_status"]["status"], "failed");
    assert!(
        x["node_status"]["reason"]
            .as_str()
            .unwrap()
            .contains("management API"),
        "{x:?}"
    );
    assert_eq!(
        s.broker_status(),
        Some(NodeStatus::Degraded),
        "{}",
        s.describe()
    );
    eprintln!("scenario 5: {why}");
    // And back: the reloaded agent is healthy again.
    agents[0].reload_with(vec![ProbeConfig::Rabbitmq(probe_config(&c, 0))]);
    let (s, _) = collector.wait(
        "broker OK after the probe is pointed back",
        DEADLINE,
        all_ok,
    );
    history.see(&s);
    eprintln!(
        "broker statuses seen in `cluster status`, in order: {:?}",
        history.0
    );

    // 6. Detection at the default 5 s interval (issue 17): SIGKILL a node's beam.smp.
    detection_at_default_interval(&c, &collector, &mut agents);

    // 7. The process watch without privilege (the packaged agent's situation): node 3's
    //    agent as `nobody` finds beam.smp by owner and name.
    unprivileged_process_watch(&c, &collector, &mut agents[2]);

    for a in &agents {
        assert!(!a.log_tail().contains("panicked"), "{}", a.log_tail());
    }
}

/// The pids an agent's log says it armed a process watch on for the `rabbitmq` probe, in
/// order (`watching the process serving the probe probe=rabbitmq pid=N`).
fn watched_pids(a: &Agent) -> Vec<i32> {
    a.log()
        .lines()
        .filter(|l| l.contains("watching the process serving the probe") && l.contains("rabbitmq"))
        .filter_map(|l| {
            l.rsplit("pid=")
                .next()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Kills node 3's beam.smp a few times with the agents at the default 5 s interval, timing
/// kill → broker not OK in the view (`cluster-status`, polled every 50 ms; printed, never
/// asserted), then restarts it and waits for OK. Before each kill, node 3's agent must have
/// armed its process watch (agent/src/watch/process.rs) on exactly the pid in the node's
/// `beam.pid`: the process listening on the AMQP port, not the `rabbitmq-server` shell
/// above it, `erl_child_setup` below it or the private epmd beside it.
fn detection_at_default_interval(c: &RabbitCluster, collector: &Collector, agents: &mut [Agent]) {
    const KILLS: usize = 3;
    const NODE: usize = 2;
    let label = c.set().label();
    let start = Instant::now();
    let mut seen = watched_pids(&agents[NODE]).len();
    for a in agents.iter_mut() {
        a.set_reporting_freq(5);
    }
    let mut took = Vec::new();
    for _ in 0..KILLS {
        let beam: i32 =
            std::fs::read_to_string(c.dir().join(format!("rabbit{}/beam.pid", NODE + 1)))
                .expect("node 3's beam.pid")
                .trim()
                .parse()
                .expect("a pid in beam.pid");
        // The reload rebuilt the watches and each kill ends one: wait for the re-arm (after
        // the agent's next cycle) so that the kill is seen by the watch.
        let armed =
            harness::poll::wait_for("node 3's agent watching its beam.smp", DEADLINE, || {
                let pids = watched_pids(&agents[NODE]);
                (pids.len() > seen).then(|| pids[pids.len() - 1])
            });
        seen = watched_pids(&agents[NODE]).len();
        let comm = std::fs::read_to_string(format!("/proc/{armed}/comm")).unwrap_or_default();
        assert_eq!(
            (armed, comm.trim()),
            (beam, "beam.smp"),
            "the watch is on the AMQP listener's process"
        );
        let t0 = Instant::now();
        c.kill_node(NODE).expect("kill node 3");
        harness::poll::wait_until(
            "broker not OK after node 3's beam.smp was killed (5 s interval)",
            DEADLINE,
            Duration::from_millis(50),
            || Ok(collector.fetch_view()?["services"]["broker"]["status"] != "OK"),
        )
        .unwrap();
        took.push(t0.elapsed().as_secs_f64());
        c.start_node(NODE).expect("start node 3");
        collector.wait("broker OK after node 3 restarted", DEADLINE, all_ok);
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "BENCH[{label}] kill->visible at 5 s interval (SIGKILL beam.smp -> broker not OK): {:.2} s (median of {KILLS} kills; each: {})",
        took[KILLS / 2],
        took.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ")
    );
    stop_app_at_default_interval(c, collector, agents);
    for a in agents.iter_mut() {
        a.set_reporting_freq(1);
    }
    eprintln!(
        "broker_cluster[6]: {KILLS} kills and {KILLS} stop_app at the 5 s interval took {:.1}s of suite time",
        start.elapsed().as_secs_f64()
    );
}

/// `rabbitmqctl stop_app` on node 3 a few times with the agents at the default 5 s
/// interval, timing stop_app → broker not OK in the view (printed, never asserted), then
/// `start_app` and OK again. beam.smp lives on, so no process exits: the broker closes its
/// AMQP connections (320 CONNECTION_FORCED), and the agent's held AMQP connection
/// (agent/src/watch/session.rs) ending must be what woke it, and the only source that did.
fn stop_app_at_default_interval(c: &RabbitCluster, collector: &Collector, agents: &[Agent]) {
    const STOPS: usize = 3;
    const NODE: usize = 2;
    let label = c.set().label();
    let a = &agents[NODE];
    let mut took = Vec::new();
    for _ in 0..STOPS {
        harness::poll::wait_until(
            "node 3's agent has held an AMQP connection for 2 s (past the 1 s a session must live to wake it)",
            DEADLINE,
            Duration::from_millis(50),
            || Ok(a.session_held_for("rabbitmq").is_some_and(|d| d > Duration::from_secs(2))),
        )
        .unwrap();
        let woke_before = a.wake_lines("rabbitmq").len();
        let t0 = Instant::now();
        // rabbitmqctl takes a second or two to start: poll the view while it runs.
        let took_one = std::thread::scope(|s| {
            let stop = s.spawn(|| c.stop_app(NODE));
            harness::poll::wait_until(
                "broker not OK after stop_app on node 3 (5 s interval)",
                DEADLINE,
                Duration::from_millis(50),
                || Ok(collector.fetch_view()?["services"]["broker"]["status"] != "OK"),
            )
            .unwrap();
            let took = t0.elapsed().as_secs_f64();
            stop.join().unwrap().expect("stop_app on node 3");
            took
        });
        took.push(took_one);
        let woke = harness::poll::poll(DEADLINE, Duration::from_millis(50), || {
            let lines = a.wake_lines("rabbitmq");
            (lines.len() > woke_before)
                .then_some(lines)
                .ok_or_else(String::new)
        })
        .unwrap_or_else(|_| {
            panic!(
                "node 3's agent not woken after stop_app within {DEADLINE:?}:\n{}",
                a.log_tail()
            )
        })
        .0;
        for l in &woke[woke_before..] {
            assert!(
                l.contains("a watched session ended"),
                "beam.smp lives on: only the session watch may wake the agent: {l}"
            );
        }
        c.start_app(NODE).expect("start_app on node 3");
        collector.wait("broker OK after start_app on node 3", DEADLINE, all_ok);
    }
    took.sort_by(f64::total_cmp);
    eprintln!(
        "BENCH[{label}] kill->visible at 5 s interval (rabbitmqctl stop_app -> broker not OK, woken by the session watch; from the command's start, rabbitmqctl's own start-up included): {:.2} s (median of {STOPS}; each: {})",
        took[STOPS / 2],
        took.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>().join(", ")
    );
}

/// Restarts node 3's agent as `nobody` (uid 65534: it may not read root's `/proc/PID/fd`),
/// so its process watch cannot name the process holding the AMQP socket and falls back to
/// the socket owner's processes named `beam.smp` (agent/src/watch/listener.rs). The watch
/// armed must be that fallback's (every root `beam.smp` of this host, the three nodes'
/// among them, where the fd lookup finds exactly one); then node 3's beam.smp is SIGKILLed
/// at the 5 s interval and the agent must log that a watched process exited; kill → broker
/// not OK is printed. The agent stays unprivileged for the rest of the suite (the last
/// scenario).
fn unprivileged_process_watch(c: &RabbitCluster, collector: &Collector, a: &mut Agent) {
    const NOBODY: u32 = 65534;
    const NODE: usize = 2;
    let label = c.set().label();
    let beam_pid = |i: usize| -> i32 {
        std::fs::read_to_string(c.dir().join(format!("rabbit{}/beam.pid", i + 1)))
            .expect("beam.pid")
            .trim()
            .parse()
            .expect("a pid in beam.pid")
    };
    let beams: Vec<i32> = (0..3).map(beam_pid).collect();
    let owner = std::fs::metadata(format!("/proc/{}", beams[NODE]))
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap();
    assert_ne!(
        owner, NOBODY,
        "the broker must run as another user than the agent"
    );
    a.kill();
    a.set_reporting_freq_offline(5);
    let before = watched_pids(a).len();
    a.start_as(NOBODY, NOBODY, &[collector.ca.as_path()]);
    // One arm logs one line per pid it watches, all in the same cycle: wait for them.
    let armed =
        harness::poll::wait_for("the unprivileged agent watching beam.smp", DEADLINE, || {
            let pids = watched_pids(a);
            (pids.len() >= before + 3).then(|| pids[before..].to_vec())
        });
    eprintln!(
        "scenario 7: the agent as uid {NOBODY} watches {armed:?}; the nodes' beams are {beams:?}"
    );
    for b in &beams {
        assert!(
            armed.contains(b),
            "every root beam.smp is watched by name: {armed:?}"
        );
    }
    collector.wait(
        "broker OK with node 3's agent unprivileged",
        DEADLINE,
        all_ok,
    );
    let woke_before = a.wake_lines("rabbitmq").len();
    let t0 = Instant::now();
    c.kill_node(NODE).expect("kill node 3");
    harness::poll::wait_until(
        "broker not OK after node 3's beam.smp was killed (unprivileged agent, 5 s interval)",
        DEADLINE,
        Duration::from_millis(50),
        || Ok(collector.fetch_view()?["services"]["broker"]["status"] != "OK"),
    )
    .unwrap();
    let took = t0.elapsed().as_secs_f64();
    let woke = harness::poll::wait_for(
        "the unprivileged agent's process watch saw the kill",
        DEADLINE,
        || {
            let lines = a.wake_lines("rabbitmq");
            lines[woke_before.min(lines.len())..]
                .iter()
                .any(|l| l.contains("a watched process exited"))
                .then_some(lines)
        },
    );
    eprintln!(
        "BENCH[{label}] kill->visible at 5 s interval, agent as uid {NOBODY} (SIGKILL beam.smp -> broker not OK; process watch by owner and name): {took:.2} s; first wake: {}",
        woke[woke_before]
    );
    c.start_node(NODE).expect("start node 3");
    collector.wait("broker OK after node 3 restarted", DEADLINE, all_ok);
}
