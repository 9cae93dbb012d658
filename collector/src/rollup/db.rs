//! The db cluster rule: Patroni (one agreed leader, replicas streaming and caught up,
//! a failover candidate) and etcd (one leader, one cluster id, quorum).
//!
//! It reads every db node's facts, not only the leader's: the original made db `Fail`
//! whenever the leader's own reporter went silent, even while PostgreSQL served. Here a
//! node whose reporter is silent but which fresh peers' `/cluster` views show running is
//! "vouched for": it counts towards quorum and, if it is the leader, db is Degraded with a
//! reason, not Fail.
//!
//! Decisions, worst wins:
//! - two self-declared leaders (Patroni role on fresh reports): split brain, Fail;
//! - no leader anywhere (neither self-declared nor in a fresh view): Fail;
//! - healthy (not Fail, or vouched for) nodes below ⌊n/2⌋+1: Fail;
//! - etcd: different cluster ids, or no reachable healthy member: Fail; healthy members
//!   below quorum or members disagreeing on the etcd leader: Degraded;
//! - everything else that is not right is Degraded with a reason naming the node: any
//!   unhealthy node, views naming another leader, a silent or unreachable leader, a
//!   replica not streaming, on another timeline or lagging over
//!   `maximum_lag_on_failover`, no sync standby with `synchronous_mode`, no
//!   failover-capable replica, a PostgreSQL accepting writes outside Patroni.

use super::{generic, NodeInput, Policy};
use sr_protocol::facts::{DbFacts, MemberView};
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, NodeType, Reason};
use std::collections::{BTreeMap, BTreeSet};

/// A `/cluster` view older than this (it is read at a lower rate than `/patroni`) is not
/// used to vouch for a silent node or to name the leader.
const MAX_VIEW_AGE_S: u64 = 60;
/// Patroni's default, used when no node reported `/config`.
const DEFAULT_MAX_LAG: u64 = 1_048_576;

/// One db node with its Patroni member name resolved.
struct Member<'a> {
    node: &'a NodeInput,
    /// Patroni member name: from the node's (possibly stale) facts, else its node name.
    member: String,
    /// Facts of a fresh report only.
    facts: Option<&'a DbFacts>,
}

fn db_facts(n: &NodeInput) -> Option<&DbFacts> {
    n.facts.as_ref().and_then(|f| f.db.as_ref())
}

/// Status and reasons of the db service type. `nodes` are all of type db.
pub fn rollup(nodes: &[NodeInput], policy: &Policy) -> (NodeStatus, Vec<Reason>) {
    if nodes.is_empty() {
        return generic::rollup(nodes, policy);
    }
    let members: Vec<Member> = nodes
        .iter()
        .map(|n| Member {
            node: n,
            member: db_facts(n)
                .and_then(|d| d.member.clone())
                .unwrap_or_else(|| n.name.clone()),
            facts: if n.fresh { db_facts(n) } else { None },
        })
        .collect();
    let node_of = |member: &str| -> String {
        members
            .iter()
            .find(|m| m.member == member)
            .map(|m| m.node.name.clone())
            .unwrap_or_else(|| member.to_string())
    };
    let mut out = Outcome::default();

    // Fresh, DCS-connected `/cluster` views, by the member that holds them.
    let views: Vec<(&str, &BTreeMap<String, MemberView>, Option<&str>)> = members
        .iter()
        .filter_map(|m| {
            let f = m.facts?;
            let usable = f.dcs_reachable != Some(false)
                && f.patroni_reachable == Some(true)
                && f.cluster_view_age_s.is_some_and(|a| a <= MAX_VIEW_AGE_S)
                && !f.cluster_members.is_empty();
            usable.then_some((
                m.member.as_str(),
                &f.cluster_members,
                f.cluster_leader.as_deref(),
            ))
        })
        .collect();
    let seen_running_by = |member: &str| -> Vec<&str> {
        views
            .iter()
            .filter(|(holder, v, _)| {
                *holder != member
                    && v.get(member)
                        .is_some_and(|mv| mv.state == "running" || mv.state == "streaming")
            })
            .map(|(holder, _, _)| *holder)
            .collect()
    };

    // Node health and quorum, counting silent nodes that fresh peers see running.
    let n = members.len();
    let need = generic::quorum(NodeType::Db, n);
    let mut healthy = 0;
    for m in &members {
        let vouchers = if m.node.fresh {
            Vec::new()
        } else {
            seen_running_by(&m.member)
        };
        if m.node.status != NodeStatus::Fail || !vouchers.is_empty() {
            healthy += 1;
        }
        if m.node.status != NodeStatus::Ok {
            out.degrade_with(node_reasons(m.node));
        }
    }

    // Leaders.
    let self_declared: Vec<&Member> = members
        .iter()
        .filter(|m| {
            m.facts.is_some_and(|f| {
                f.patroni_reachable == Some(true) && f.role.as_deref() == Some("leader")
            })
        })
        .collect();
    let viewed_leaders: BTreeSet<&str> = views.iter().filter_map(|(_, _, l)| *l).collect();
    let leader: Option<String> = match self_declared.as_slice() {
        [] => viewed_leaders.iter().next().map(|s| s.to_string()),
        [one] => Some(one.member.clone()),
        many => {
            let names: Vec<String> = many.iter().map(|m| m.node.name.clone()).collect();
            out.push(
                NodeStatus::Fail,
                Reason::new(
                    codes::SPLIT_BRAIN,
                    format!(
                        "more than one node says it is the Patroni leader: {}",
                        names.join(", ")
                    ),
                ),
            );
            None
        }
    };
    if viewed_leaders.len() > 1
        || leader
            .as_deref()
            .is_some_and(|l| viewed_leaders.iter().any(|v| *v != l))
    {
        let detail: Vec<String> = views
            .iter()
            .map(|(h, _, l)| {
                format!(
                    "{} sees {}",
                    node_of(h),
                    l.map(&node_of).unwrap_or_else(|| "no leader".into())
                )
            })
            .collect();
        out.push(
            NodeStatus::Degraded,
            Reason::new(
                codes::LEADER_VIEWS_DISAGREE,
                format!("nodes disagree on the leader: {}", detail.join("; ")),
            ),
        );
    }
    match (&leader, self_declared.len()) {
        (None, 0) => out.push(
            NodeStatus::Fail,
            Reason::new(
                codes::NO_LEADER,
                "no node is the Patroni leader and no fresh view names one",
            ),
        ),
        (Some(l), 0) => {
            let lm = members.iter().find(|m| &m.member == l);
            let node = node_of(l);
            let seen = seen_running_by(l)
                .into_iter()
                .map(&node_of)
                .collect::<Vec<_>>();
            let msg = match lm {
                Some(m) if !m.node.fresh && !seen.is_empty() => {
                    format!(
                        "the leader {node}'s reporter is silent; {} still see it running as leader",
                        seen.join(", ")
                    )
                }
                Some(m) if m.facts.is_some_and(|f| f.patroni_reachable == Some(false)) => {
                    format!(
                        "the leader {node}'s Patroni does not answer; {} still see it as leader (failover follows after ttl)",
                        seen.join(", ")
                    )
                }
                _ => format!("no fresh report from the leader {node}; it is named only by other nodes' views"),
            };
            out.push(
                NodeStatus::Degraded,
                Reason::new(codes::LEADER_NOT_REPORTING, msg).on_node(node),
            );
        }
        _ => {}
    }

    let leader_member = leader
        .as_deref()
        .and_then(|l| members.iter().find(|m| m.member == l));
    let leader_facts = leader_member.and_then(|m| m.facts);

    // PostgreSQL accepting writes outside Patroni (e.g. after Patroni was SIGKILLed).
    for m in &members {
        if let Some(f) = m.facts {
            let writable = f.in_recovery == Some(false);
            let patroni_leader =
                f.patroni_reachable == Some(true) && f.role.as_deref() == Some("leader");
            if writable && !patroni_leader && leader.as_deref().is_some_and(|l| l != m.member) {
                out.push(
                    NodeStatus::Degraded,
                    Reason::new(
                        codes::ROGUE_PRIMARY,
                        format!(
                            "PostgreSQL on {} accepts writes but Patroni does not lead it; {} is the leader",
                            m.node.name,
                            node_of(leader.as_deref().unwrap_or_default())
                        ),
                    )
                    .on_node(m.node.name.clone()),
                );
            }
        }
    }

    // Replicas against the leader: streaming, timeline, lag, failover candidates.
    let max_lag = leader_facts
        .and_then(|f| f.maximum_lag_on_failover)
        .or_else(|| {
            members
                .iter()
                .filter_map(|m| m.facts?.maximum_lag_on_failover)
                .next()
        })
        .unwrap_or(DEFAULT_MAX_LAG);
    let view_of =
        |member: &str| -> Option<&MemberView> { views.iter().find_map(|(_, v, _)| v.get(member)) };
    let leader_timeline = leader_facts
        .and_then(|f| f.timeline)
        .or_else(|| leader.as_deref().and_then(view_of).and_then(|v| v.timeline));
    let mut candidates = Vec::new();
    if let Some(l) = leader.as_deref() {
        for m in members.iter().filter(|m| m.member != l) {
            let name = m.node.name.clone();
            let view = view_of(&m.member);
            // A failed node is already reported; a silent one that peers see running is
            // still judged on what those views say.
            let vouched = !m.node.fresh && view.is_some_and(|v| v.state == "running");
            if m.node.status == NodeStatus::Fail && !vouched {
                continue;
            }
            if let Some(lf) = leader_facts.filter(|f| f.patroni_reachable == Some(true)) {
                match lf.replication.get(&m.member) {
                    Some(r) if r.state == "streaming" => {}
                    Some(r) => out.push(
                        NodeStatus::Degraded,
                        Reason::new(
                            codes::REPLICA_NOT_STREAMING,
                            format!("{name} is {:?} on the leader, not streaming", r.state),
                        )
                        .on_node(name.clone()),
                    ),
                    None => out.push(
                        NodeStatus::Degraded,
                        Reason::new(
                            codes::REPLICA_NOT_STREAMING,
                            format!("{name} is not in the leader's replication list"),
                        )
                        .on_node(name.clone()),
                    ),
                }
            }
            let timeline = m
                .facts
                .and_then(|f| f.timeline)
                .or_else(|| view.and_then(|v| v.timeline));
            if let (Some(t), Some(lt)) = (timeline, leader_timeline) {
                if t != lt {
                    out.push(
                        NodeStatus::Degraded,
                        Reason::new(
                            codes::TIMELINE_MISMATCH,
                            format!("{name} is on timeline {t}, the leader on {lt}"),
                        )
                        .on_node(name.clone()),
                    );
                }
            }
            let lag = leader_facts
                .and_then(|f| f.replica_lag_bytes.get(&m.member).copied())
                .or_else(|| m.facts.and_then(|f| f.lag_bytes))
                .or_else(|| view.and_then(|v| v.lag_bytes));
            match lag {
                Some(b) if b > max_lag => out.push(
                    NodeStatus::Degraded,
                    Reason::new(
                        codes::REPLICA_LAG,
                        format!("{name} lags {b} bytes, over maximum_lag_on_failover {max_lag}"),
                    )
                    .on_node(name.clone()),
                ),
                Some(_) => {}
                None => out.push(
                    NodeStatus::Degraded,
                    Reason::new(
                        codes::REPLICA_LAG_UNKNOWN,
                        format!("no numeric lag is known for {name}"),
                    )
                    .on_node(name.clone()),
                ),
            }
            let nofailover =
                m.facts.is_some_and(|f| f.nofailover) || view.is_some_and(|v| v.nofailover);
            if !nofailover && lag.is_some_and(|b| b <= max_lag) {
                candidates.push(name);
            }
        }
        if candidates.is_empty() {
            out.push(
                NodeStatus::Degraded,
                Reason::new(
                    codes::NO_FAILOVER_CANDIDATE,
                    "no healthy replica without the nofailover tag is caught up: the cluster cannot fail over",
                ),
            );
        }
        let sync_mode = leader_facts.and_then(|f| f.synchronous_mode).or_else(|| {
            members
                .iter()
                .filter_map(|m| m.facts?.synchronous_mode)
                .next()
        });
        if sync_mode == Some(true) {
            let has_sync = match leader_facts.filter(|f| f.patroni_reachable == Some(true)) {
                Some(lf) => lf.replication.values().any(|r| {
                    r.state == "streaming" && matches!(r.sync_state.as_str(), "sync" | "quorum")
                }),
                None => views.iter().any(|(_, v, _)| {
                    v.values()
                        .any(|mv| mv.role == "sync_standby" && mv.state == "running")
                }),
            };
            if !has_sync {
                out.push(
                    NodeStatus::Degraded,
                    Reason::new(
                        codes::NO_SYNC_STANDBY,
                        "synchronous_mode is on but no synchronous standby is streaming",
                    ),
                );
            }
        }
    }

    etcd_rules(&members, &mut out);

    let unreachable_dcs: Vec<String> = members
        .iter()
        .filter(|m| m.facts.is_some_and(|f| f.dcs_reachable == Some(false)))
        .map(|m| m.node.name.clone())
        .collect();
    if !unreachable_dcs.is_empty() {
        out.push(
            NodeStatus::Degraded,
            Reason::new(
                codes::DCS_UNREACHABLE,
                format!(
                    "DCS (etcd) unreachable from Patroni on {}",
                    unreachable_dcs.join(", ")
                ),
            ),
        );
    }

    if healthy < need {
        out.push(
            NodeStatus::Fail,
            Reason::new(
                codes::QUORUM_LOST,
                format!("{healthy} of {n} db nodes healthy, below quorum {need}"),
            ),
        );
    } else if out.status != NodeStatus::Ok && healthy < n {
        out.push(
            NodeStatus::Degraded,
            Reason::new(
                codes::DEGRADED_MEMBERS,
                format!("{healthy} of {n} db nodes healthy (quorum {need})"),
            ),
        );
    }
    (out.status, out.reasons)
}

/// etcd: one cluster id, one leader, healthy members ≥ quorum. Members are told apart by
/// member id; a node whose local etcd does not answer counts as one unhealthy member.
fn etcd_rules(members: &[Member], out: &mut Outcome) {
    let etcd: Vec<(&Member, &sr_protocol::facts::EtcdFacts)> = members
        .iter()
        .filter_map(|m| Some((m, m.facts?.etcd.as_ref()?)))
        .collect();
    if etcd.is_empty() {
        return;
    }
    let cluster_ids: BTreeSet<&str> = etcd
        .iter()
        .filter_map(|(_, e)| e.cluster_id.as_deref())
        .collect();
    if cluster_ids.len() > 1 {
        out.push(
            NodeStatus::Fail,
            Reason::new(
                codes::ETCD_CLUSTER_ID_MISMATCH,
                format!(
                    "db nodes see different etcd clusters: {}",
                    cluster_ids.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ),
        );
    }
    let leaders: BTreeSet<&str> = etcd
        .iter()
        .filter_map(|(_, e)| e.leader.as_deref())
        .collect();
    if leaders.len() > 1 {
        out.push(
            NodeStatus::Degraded,
            Reason::new(
                codes::ETCD_LEADER_DISAGREEMENT,
                format!("etcd members name {} different leaders", leaders.len()),
            ),
        );
    }
    let mut ids: BTreeMap<&str, bool> = BTreeMap::new();
    let mut unreachable = Vec::new();
    for (m, e) in &etcd {
        match e.member_id.as_deref() {
            Some(id) => {
                let slot = ids.entry(id).or_insert(false);
                *slot |= e.healthy == Some(true);
            }
            None => unreachable.push(m.node.name.clone()),
        }
    }
    let total = ids.len() + unreachable.len();
    let healthy = ids.values().filter(|h| **h).count();
    let need = total / 2 + 1;
    if healthy == 0 {
        let from = if unreachable.is_empty() {
            String::new()
        } else {
            format!(" (no answer on {})", unreachable.join(", "))
        };
        out.push(
            NodeStatus::Fail,
            Reason::new(
                codes::ETCD_UNAVAILABLE,
                format!("DCS unreachable: no healthy etcd member{from}"),
            ),
        );
    } else if healthy < need {
        out.push(
            NodeStatus::Degraded,
            Reason::new(
                codes::ETCD_QUORUM,
                format!("{healthy} of {total} etcd members healthy, below quorum {need}"),
            ),
        );
    } else if healthy < total {
        out.push(
            NodeStatus::Degraded,
            Reason::new(
                codes::ETCD_MEMBER_DOWN,
                format!("{healthy} of {total} etcd members healthy"),
            ),
        );
    }
}

fn node_reasons(n: &NodeInput) -> Vec<Reason> {
    let own: Vec<Reason> = n
        .reasons
        .iter()
        .filter(|r| r.code != codes::CLOCK_SKEW.code)
        .cloned()
        .collect();
    if own.is_empty() {
        vec![
            Reason::new(codes::NODE_UNHEALTHY, format!("node is {}", n.status))
                .on_node(n.name.clone()),
        ]
    } else {
        own
    }
}

/// The worst status so far and every reason behind it.
struct Outcome {
    status: NodeStatus,
    reasons: Vec<Reason>,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            status: NodeStatus::Ok,
            reasons: Vec::new(),
        }
    }
}

impl Outcome {
    fn push(&mut self, status: NodeStatus, reason: Reason) {
        self.status = self.status.max(status);
        self.reasons.push(reason);
    }
    fn degrade_with(&mut self, reasons: Vec<Reason>) {
        self.status = self.status.max(NodeStatus::Degraded);
        self.reasons.extend(reasons);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::facts::{EtcdFacts, ReplicationView};
    use sr_protocol::report::Facts;

    const MEMBERS: [&str; 3] = ["pg1", "pg2", "pg3"];

    /// A view of the cluster with `leader` leading and every member running.
    fn view(leader: &str) -> BTreeMap<String, MemberView> {
        MEMBERS
            .iter()
            .map(|m| {
                let role = if *m == leader { "leader" } else { "replica" };
                let lag = if *m == leader { None } else { Some(0) };
                (
                    m.to_string(),
                    MemberView {
                        role: role.into(),
                        state: "running".into(),
                        timeline: Some(1),
                        lag_bytes: lag,
                        nofailover: false,
                    },
                )
            })
            .collect()
    }

    fn etcd() -> EtcdFacts {
        EtcdFacts {
            cluster_id: Some("7".into()),
            member_id: Some("1".into()),
            leader: Some("1".into()),
            healthy: Some(true),
            reachable: Some(true),
            ..Default::default()
        }
    }

    fn facts(member: &str, leader: &str) -> DbFacts {
        let is_leader = member == leader;
        DbFacts {
            member: Some(member.into()),
            role: Some(if is_leader { "leader" } else { "replica" }.into()),
            state: Some("running".into()),
            timeline: Some(1),
            patroni_reachable: Some(true),
            postgres_running: Some(true),
            in_recovery: Some(!is_leader),
            dcs_reachable: Some(true),
            cluster_leader: Some(leader.into()),
            cluster_members: view(leader),
            cluster_view_age_s: Some(2),
            maximum_lag_on_failover: Some(1_048_576),
            synchronous_mode: Some(false),
            replication: if is_leader {
                MEMBERS
                    .iter()
                    .filter(|m| **m != leader)
                    .map(|m| {
                        (
                            m.to_string(),
                            ReplicationView {
                                state: "streaming".into(),
                                sync_state: "async".into(),
                            },
                        )
                    })
                    .collect()
            } else {
                BTreeMap::new()
            },
            replica_lag_bytes: if is_leader {
                MEMBERS
                    .iter()
                    .filter(|m| **m != leader)
                    .map(|m| (m.to_string(), 0))
                    .collect()
            } else {
                BTreeMap::new()
            },
            etcd: Some(etcd()),
            ..Default::default()
        }
    }

    fn node(i: usize, status: NodeStatus, fresh: bool, db: DbFacts) -> NodeInput {
        let name = format!("db{}", i + 1);
        let reasons = match (status, fresh) {
            (NodeStatus::Ok, _) => vec![],
            (_, false) => vec![
                Reason::new("stale", "last report 40 s ago; stale after 15 s")
                    .on_node(name.clone()),
            ],
            (s, true) => vec![
                Reason::new("reported_unhealthy", format!("node reports {s}"))
                    .on_node(name.clone()),
            ],
        };
        NodeInput {
            node_type: NodeType::Db,
            node_id: format!("id{i}"),
            name,
            status,
            reported_status: Some(status),
            fresh,
            reasons,
            facts: Some(Facts {
                db: Some(db),
                broker: None,
            }),
            role: None,
            version: None,
            private_ip: None,
            services: Default::default(),
            last_seen_ms: Some(1_795_360_000_000),
            skew_ms: Some(0),
            flapping: false,
            key_mismatch: false,
            signed: true,
        }
    }

    fn healthy(leader: &str) -> Vec<NodeInput> {
        MEMBERS
            .iter()
            .enumerate()
            .map(|(i, m)| node(i, NodeStatus::Ok, true, facts(m, leader)))
            .collect()
    }

    fn codes(r: &[Reason]) -> Vec<&str> {
        r.iter().map(|r| r.code.as_str()).collect()
    }

    fn run(nodes: &[NodeInput]) -> (NodeStatus, Vec<Reason>) {
        rollup(nodes, &Policy::default())
    }

    #[test]
    fn healthy_cluster_is_ok_without_reasons() {
        assert_eq!(run(&healthy("pg1")), (NodeStatus::Ok, vec![]));
    }

    #[test]
    fn two_self_declared_leaders_are_split_brain() {
        let mut nodes = healthy("pg1");
        nodes[1] = node(1, NodeStatus::Ok, true, facts("pg2", "pg2"));
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Fail);
        let split = r.iter().find(|r| r.code == "split_brain").unwrap();
        assert!(
            split.message.contains("db1") && split.message.contains("db2"),
            "{split:?}"
        );
    }

    #[test]
    fn a_silent_leader_reporter_is_degraded_while_replicas_see_it_running() {
        let mut nodes = healthy("pg1");
        nodes[0] = node(0, NodeStatus::Fail, false, facts("pg1", "pg1"));
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        let why = r.iter().find(|r| r.code == "leader_not_reporting").unwrap();
        assert_eq!(why.node.as_deref(), Some("db1"));
        assert!(
            why.message.contains("reporter is silent") && why.message.contains("db2, db3"),
            "{why:?}"
        );
        // With a replica down too, the vouched-for leader still keeps quorum.
        nodes[2] = node(
            2,
            NodeStatus::Fail,
            true,
            DbFacts {
                member: Some("pg3".into()),
                patroni_reachable: Some(false),
                ..Default::default()
            },
        );
        assert_eq!(run(&nodes).0, NodeStatus::Degraded);
    }

    #[test]
    fn a_silent_leader_nobody_vouches_for_leaves_no_leader() {
        let mut nodes = healthy("pg1");
        nodes[0] = node(0, NodeStatus::Fail, false, facts("pg1", "pg1"));
        for (i, n) in nodes.iter_mut().enumerate().skip(1) {
            let mut f = facts(MEMBERS[i], "pg1");
            f.cluster_leader = None;
            f.cluster_members.remove("pg1");
            *n = node(i, NodeStatus::Ok, true, f);
        }
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes(&r).contains(&"no_leader"), "{r:?}");
    }

    #[test]
    fn a_killed_leader_patroni_is_degraded_then_the_new_leader_with_a_rogue_primary() {
        let mut nodes = healthy("pg1");
        let dead = DbFacts {
            member: Some("pg1".into()),
            patroni_reachable: Some(false),
            postgres_running: Some(true),
            in_recovery: Some(false),
            etcd: Some(etcd()),
            ..Default::default()
        };
        nodes[0] = node(0, NodeStatus::Fail, true, dead);
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert!(
            r.iter().any(|r| r.code == "leader_not_reporting"
                && r.message.contains("Patroni does not answer")),
            "{r:?}"
        );
        // After failover pg2 leads; pg1's PostgreSQL still accepts writes.
        nodes[1] = node(1, NodeStatus::Ok, true, facts("pg2", "pg2"));
        let mut pg3 = facts("pg3", "pg2");
        pg3.cluster_members.remove("pg1");
        nodes[2] = node(2, NodeStatus::Ok, true, pg3);
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert!(codes(&r).contains(&"rogue_primary"), "{r:?}");
        assert!(!codes(&r).contains(&"split_brain"));
    }

    #[test]
    fn a_stopped_replica_is_named_and_two_stopped_members_fail() {
        let mut nodes = healthy("pg1");
        let down = |i: usize| {
            node(
                i,
                NodeStatus::Fail,
                true,
                DbFacts {
                    member: Some(MEMBERS[i].into()),
                    patroni_reachable: Some(false),
                    postgres_running: Some(false),
                    ..Default::default()
                },
            )
        };
        let mut lf = facts("pg1", "pg1");
        lf.replication.remove("pg3");
        nodes[0] = node(0, NodeStatus::Ok, true, lf);
        nodes[2] = down(2);
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Degraded);
        assert!(r.iter().any(|r| r.node.as_deref() == Some("db3")), "{r:?}");
        nodes[1] = down(1);
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes(&r).contains(&"quorum_lost"), "{r:?}");
        assert!(codes(&r).contains(&"no_failover_candidate"), "{r:?}");
    }

    #[test]
    fn replica_rules_lag_timeline_streaming_sync_and_nofailover() {
        let mut nodes = healthy("pg1");
        let mut lf = facts("pg1", "pg1");
        lf.replica_lag_bytes.insert("pg2".into(), 2_000_000);
        lf.replication.get_mut("pg3").unwrap().state = "catchup".into();
        lf.synchronous_mode = Some(true);
        nodes[0] = node(0, NodeStatus::Ok, true, lf);
        let mut f3 = facts("pg3", "pg1");
        f3.timeline = Some(2);
        nodes[2] = node(2, NodeStatus::Ok, true, f3);
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Degraded);
        let c = codes(&r);
        for want in [
            "replica_lag",
            "replica_not_streaming",
            "timeline_mismatch",
            "no_sync_standby",
        ] {
            assert!(c.contains(&want), "{want} missing in {r:?}");
        }
        assert_eq!(
            r.iter()
                .find(|r| r.code == "replica_lag")
                .unwrap()
                .node
                .as_deref(),
            Some("db2")
        );

        let mut nodes = healthy("pg1");
        for (i, n) in nodes.iter_mut().enumerate().skip(1) {
            let mut f = facts(MEMBERS[i], "pg1");
            f.nofailover = true;
            *n = node(i, NodeStatus::Ok, true, f);
        }
        let (s, r) = run(&nodes);
        assert_eq!(
            (s, codes(&r)),
            (NodeStatus::Degraded, vec!["no_failover_candidate"])
        );
    }

    #[test]
    fn etcd_cluster_id_mismatch_and_no_healthy_member_fail() {
        let mut nodes = healthy("pg1");
        let mut f = facts("pg2", "pg1");
        f.etcd.as_mut().unwrap().cluster_id = Some("8".into());
        nodes[1] = node(1, NodeStatus::Ok, true, f);
        assert!(codes(&run(&nodes).1).contains(&"etcd_cluster_id_mismatch"));
        assert_eq!(run(&nodes).0, NodeStatus::Fail);

        let nodes: Vec<NodeInput> = MEMBERS
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut f = facts(m, "pg1");
                f.etcd = Some(EtcdFacts {
                    reachable: Some(false),
                    healthy: Some(false),
                    ..Default::default()
                });
                f.dcs_reachable = Some(false);
                node(i, NodeStatus::Fail, true, f)
            })
            .collect();
        let (s, r) = run(&nodes);
        assert_eq!(s, NodeStatus::Fail);
        let why = r.iter().find(|r| r.code == "etcd_unavailable").unwrap();
        assert!(
            why.message.contains("DCS unreachable") && why.message.contains("db1, db2, db3"),
            "{why:?}"
        );
        assert!(codes(&r).contains(&"dcs_unreachable"));
    }

    #[test]
    fn etcd_members_below_quorum_degrade() {
        let mut nodes = healthy("pg1");
        for (i, n) in nodes.iter_mut().enumerate() {
            let mut f = facts(MEMBERS[i], "pg1");
            let e = f.etcd.as_mut().unwrap();
            e.member_id = Some(format!("{i}"));
            e.healthy = Some(i == 0);
            *n = node(i, NodeStatus::Ok, true, f);
        }
        let (s, r) = run(&nodes);
        assert_eq!((s, codes(&r)), (NodeStatus::Degraded, vec!["etcd_quorum"]));
    }
}
