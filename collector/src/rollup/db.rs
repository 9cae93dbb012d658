//! The db cluster rule: Patroni (one agreed leader, replicas streaming and caught up,
//! a failover candidate) and etcd (one leader, one cluster id, quorum).
//!
//! It reads every db node's facts, not only the leader's: the original made db `Fail`
//! whenever the leader's own reporter went silent, even while PostgreSQL served. Here a
//! node whose reporter is silent but which fresh peers' `/cluster` views show running is
//! "vouched for": it counts towards quorum and, if it is the leader, db is Degraded with a
//! reason, not Fail.
//!
//! [`rollup`] composes small named rules; each returns its verdicts (a status and the
//! reason behind it), and the worst status wins:
//! - [`split_brain`]: two self-declared leaders (Patroni role on fresh reports), Fail;
//! - [`leader_presence`]: no leader anywhere (neither self-declared nor in a fresh view),
//!   Fail; a silent or unreachable leader, Degraded;
//! - [`quorum`]: healthy (not Fail, or vouched for) nodes below ⌊n/2⌋+1, Fail;
//! - [`etcd_rules`]: different cluster ids, or no reachable healthy member, Fail; healthy
//!   members below quorum or members disagreeing on the etcd leader, Degraded;
//! - everything else that is not right is Degraded with a reason naming the node:
//!   [`unhealthy_nodes`], views naming another leader ([`leader_views_disagree`]),
//!   [`rogue_primaries`] (a PostgreSQL accepting writes outside Patroni), and against the
//!   leader [`replica_rules`] (a replica not streaming, on another timeline or lagging over
//!   `maximum_lag_on_failover`, no failover-capable replica), [`sync_standby`] (none with
//!   `synchronous_mode`), [`dcs_unreachable`].
//!
//! A legacy (5.0.5) node's facts are thinner ([`super::legacy`]): its node name stands in
//! for the member name, and a legacy leader's walsenders carry no names, so
//! [`unnamed_walsenders`] counts them against the replicas instead of
//! [`replica_streaming`] looking each one up; lag that neither report could carry is not
//! judged.

use super::legacy::LegacyDetail;
use super::membership::{usable_db_view, Membership};
use super::{generic, NodeInput, Policy};
use sr_protocol::facts::{DbFacts, MemberView, ReplicationView};
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, NodeType, Reason};
use std::collections::{BTreeMap, BTreeSet};

/// Patroni's default, used when no node reported `/config`.
const DEFAULT_MAX_LAG: u64 = 1_048_576;

/// One status and the reason behind it: what every rule returns.
type Verdict = (NodeStatus, Reason);

fn degraded(reason: Reason) -> Verdict {
    (NodeStatus::Degraded, reason)
}

/// Status and reasons of the db service type. `nodes` are all of type db.
pub fn rollup(nodes: &[NodeInput], policy: &Policy) -> (NodeStatus, Vec<Reason>) {
    if nodes.is_empty() {
        return generic::rollup(nodes, policy);
    }
    let cluster = DbCluster::new(nodes);
    let leader = cluster.leader();
    let mut out = Outcome::default();
    out.extend(unhealthy_nodes(&cluster));
    out.extend(split_brain(&cluster));
    out.extend(leader_views_disagree(&cluster, leader));
    out.extend(leader_presence(&cluster, leader));
    out.extend(rogue_primaries(&cluster, leader));
    if let Some(leader) = leader.map(|l| Leader::new(&cluster, l)) {
        out.extend(replica_rules(&cluster, &leader));
        out.extend(sync_standby(&cluster, &leader));
    }
    out.extend(etcd_rules(&cluster.members));
    out.extend(dcs_unreachable(&cluster));
    out.extend(quorum(&cluster, &Membership::of(nodes, policy)));
    (out.status, out.reasons)
}

/// One db node with its Patroni member name resolved.
struct Member<'a> {
    node: &'a NodeInput,
    /// Patroni member name: from the node's (possibly stale) facts, else its node name.
    member: &'a str,
    /// Facts of a fresh report only.
    facts: Option<&'a DbFacts>,
    /// Set when those facts were read from a legacy (5.0.5) body.
    legacy: Option<&'a LegacyDetail>,
}

impl Member<'_> {
    /// Patroni answered this cycle and says this member leads.
    fn declares_leader(&self) -> bool {
        self.facts.is_some_and(|f| {
            f.patroni_reachable == Some(true) && f.role.as_deref() == Some("leader")
        })
    }
}

/// A fresh, DCS-connected `/cluster` view and the member that holds it.
struct View<'a> {
    holder: &'a str,
    members: &'a BTreeMap<String, MemberView>,
    leader: Option<&'a str>,
}

/// What every rule reads: the members and their usable views of the cluster.
struct DbCluster<'a> {
    members: Vec<Member<'a>>,
    views: Vec<View<'a>>,
}

/// A member a `/cluster` view shows in this state is up (it vouches for a silent member
/// and counts towards quorum): Patroni 3 says `running` for a healthy replica, Patroni 4
/// `streaming` (and `running` again just after a failover), or `in archive recovery` for
/// a replica replaying WAL from the archive, as healthy as the probe judges it.
fn runs(state: &str) -> bool {
    matches!(state, "running" | "streaming" | "in archive recovery")
}

/// A member in this state can be the synchronous standby: connected to the leader and
/// acknowledging commits. `running` is Patroni 3's word for a streaming replica; a replica
/// `in archive recovery` is up but not connected, so it acknowledges nothing.
fn can_be_sync(state: &str) -> bool {
    matches!(state, "running" | "streaming")
}

fn db_facts(n: &NodeInput) -> Option<&DbFacts> {
    n.facts.as_ref().and_then(|f| f.db.as_ref())
}

impl<'a> DbCluster<'a> {
    fn new(nodes: &'a [NodeInput]) -> Self {
        let members: Vec<Member<'a>> = nodes
            .iter()
            .map(|n| Member {
                node: n,
                member: db_facts(n)
                    .and_then(|d| d.member.as_deref())
                    .unwrap_or(n.name.as_str()),
                facts: if n.fresh { db_facts(n) } else { None },
                legacy: n
                    .legacy
                    .as_ref()
                    .filter(|_| n.fresh && db_facts(n).is_some()),
            })
            .collect();
        let views = members
            .iter()
            .filter_map(|m| {
                let f = m.facts?;
                // A `/cluster` view older than 60 s (it is read at a lower rate than
                // `/patroni`) is not used to vouch for a silent node or to name the leader.
                usable_db_view(f).then_some(View {
                    holder: m.member,
                    members: &f.cluster_members,
                    leader: f.cluster_leader.as_deref(),
                })
            })
            .collect();
        DbCluster { members, views }
    }

    fn member(&self, member: &str) -> Option<&Member<'a>> {
        self.members.iter().find(|m| m.member == member)
    }

    /// The node name of a Patroni member, for messages; the member name if no node has it.
    fn node_of(&self, member: &str) -> String {
        self.member(member)
            .map(|m| m.node.name.clone())
            .unwrap_or_else(|| member.to_string())
    }

    /// The members whose fresh views show `member` running (or streaming), itself aside.
    fn seen_running_by(&self, member: &str) -> Vec<&'a str> {
        self.views
            .iter()
            .filter(|v| {
                v.holder != member && v.members.get(member).is_some_and(|mv| runs(&mv.state))
            })
            .map(|v| v.holder)
            .collect()
    }

    /// `member` as the first fresh view that lists it shows it.
    fn view_of(&self, member: &str) -> Option<&'a MemberView> {
        self.views.iter().find_map(|v| v.members.get(member))
    }

    fn self_declared(&self) -> Vec<&Member<'a>> {
        self.members
            .iter()
            .filter(|m| m.declares_leader())
            .collect()
    }

    fn viewed_leaders(&self) -> BTreeSet<&'a str> {
        self.views.iter().filter_map(|v| v.leader).collect()
    }

    /// The one self-declared leader, else the leader a fresh view names; none when two
    /// declare themselves ([`split_brain`] says so).
    fn leader(&self) -> Option<&'a str> {
        match self.self_declared().as_slice() {
            [] => self.viewed_leaders().into_iter().next(),
            [one] => Some(one.member),
            _ => None,
        }
    }
}

/// Every node that is not OK, with its own reasons (a clock-skew flag aside).
fn unhealthy_nodes(c: &DbCluster) -> Vec<Verdict> {
    c.members
        .iter()
        .filter(|m| m.node.status != NodeStatus::Ok)
        .flat_map(|m| generic::node_reasons(m.node).into_iter().map(degraded))
        .collect()
}

/// Two members that both say they are the Patroni leader.
fn split_brain(c: &DbCluster) -> Option<Verdict> {
    let declared = c.self_declared();
    if declared.len() < 2 {
        return None;
    }
    let names: Vec<&str> = declared.iter().map(|m| m.node.name.as_str()).collect();
    Some((
        NodeStatus::Fail,
        Reason::new(
            codes::SPLIT_BRAIN,
            format!(
                "more than one node says it is the Patroni leader: {}",
                names.join(", ")
            ),
        ),
    ))
}

/// Fresh views that name different leaders, or another leader than the resolved one.
fn leader_views_disagree(c: &DbCluster, leader: Option<&str>) -> Option<Verdict> {
    let viewed = c.viewed_leaders();
    let disagree = viewed.len() > 1 || leader.is_some_and(|l| viewed.iter().any(|v| *v != l));
    if !disagree {
        return None;
    }
    let detail: Vec<String> = c
        .views
        .iter()
        .map(|v| {
            format!(
                "{} sees {}",
                c.node_of(v.holder),
                v.leader
                    .map(|l| c.node_of(l))
                    .unwrap_or_else(|| "no leader".into())
            )
        })
        .collect();
    Some(degraded(Reason::new(
        codes::LEADER_VIEWS_DISAGREE,
        format!("nodes disagree on the leader: {}", detail.join("; ")),
    )))
}

/// No leader at all (Fail), or a leader only other nodes' views name (Degraded): its
/// reporter is silent, or its Patroni does not answer.
fn leader_presence(c: &DbCluster, leader: Option<&str>) -> Option<Verdict> {
    if !c.self_declared().is_empty() {
        return None;
    }
    let Some(l) = leader else {
        return Some((
            NodeStatus::Fail,
            Reason::new(
                codes::NO_LEADER,
                "no node is the Patroni leader and no fresh view names one",
            ),
        ));
    };
    let node = c.node_of(l);
    let seen: Vec<String> = c
        .seen_running_by(l)
        .into_iter()
        .map(|h| c.node_of(h))
        .collect();
    let msg = match c.member(l) {
        Some(m) if !m.node.fresh && !seen.is_empty() => format!(
            "the leader {node}'s reporter is silent; {} still see it running as leader",
            seen.join(", ")
        ),
        Some(m) if m.facts.is_some_and(|f| f.patroni_reachable == Some(false)) => format!(
            "the leader {node}'s Patroni does not answer; {} still see it as leader (failover follows after ttl)",
            seen.join(", ")
        ),
        _ => format!(
            "no fresh report from the leader {node}; it is named only by other nodes' views"
        ),
    };
    Some(degraded(
        Reason::new(codes::LEADER_NOT_REPORTING, msg).on_node(node),
    ))
}

/// PostgreSQL accepting writes outside Patroni (e.g. after Patroni was SIGKILLed) on a
/// member other than the leader.
fn rogue_primaries(c: &DbCluster, leader: Option<&str>) -> Vec<Verdict> {
    let Some(l) = leader else {
        return Vec::new();
    };
    c.members
        .iter()
        .filter(|m| {
            m.facts.is_some_and(|f| f.in_recovery == Some(false))
                && !m.declares_leader()
                && m.member != l
        })
        .map(|m| {
            degraded(
                Reason::new(
                    codes::ROGUE_PRIMARY,
                    format!(
                        "PostgreSQL on {} accepts writes but Patroni does not lead it; {} is the leader",
                        m.node.name,
                        c.node_of(l)
                    ),
                )
                .on_node(m.node.name.clone()),
            )
        })
        .collect()
}

/// What the replica rules compare every replica against.
struct Leader<'a> {
    member: &'a str,
    /// Facts of the leader's fresh report.
    facts: Option<&'a DbFacts>,
    /// The leader's walsenders by application name, when its Patroni answered.
    walsenders: Option<&'a BTreeMap<String, ReplicationView>>,
    /// A legacy leader's walsenders, which carry no names (then `walsenders` is empty).
    unnamed: Option<&'a [ReplicationView]>,
    timeline: Option<u64>,
    max_lag: u64,
}

impl<'a> Leader<'a> {
    fn new(c: &DbCluster<'a>, member: &'a str) -> Self {
        let leader = c.member(member);
        let facts = leader.and_then(|m| m.facts);
        let answered = facts.filter(|f| f.patroni_reachable == Some(true));
        let max_lag = facts
            .and_then(|f| f.maximum_lag_on_failover)
            .or_else(|| {
                c.members
                    .iter()
                    .find_map(|m| m.facts?.maximum_lag_on_failover)
            })
            .unwrap_or(DEFAULT_MAX_LAG);
        Leader {
            member,
            facts,
            walsenders: answered.map(|f| &f.replication),
            unnamed: answered
                .and(leader.and_then(|m| m.legacy))
                .map(|l| l.unnamed_walsenders.as_slice()),
            timeline: facts
                .and_then(|f| f.timeline)
                .or_else(|| c.view_of(member).and_then(|v| v.timeline)),
            max_lag,
        }
    }
}

/// A member other than the leader that the replica rules judge.
struct Replica<'a> {
    name: &'a str,
    member: &'a str,
    facts: Option<&'a DbFacts>,
    /// How a fresh view shows it.
    view: Option<&'a MemberView>,
    /// Its facts were read from a legacy (5.0.5) body.
    legacy: bool,
}

/// The members other than the leader worth judging: a failed node is already reported,
/// but a silent one that peers see running is still judged on what those views say.
fn replicas<'a>(c: &DbCluster<'a>, leader: &Leader) -> Vec<Replica<'a>> {
    c.members
        .iter()
        .filter(|m| m.member != leader.member)
        .filter_map(|m| {
            let view = c.view_of(m.member);
            let vouched = !m.node.fresh && view.is_some_and(|v| runs(&v.state));
            (m.node.status != NodeStatus::Fail || vouched).then_some(Replica {
                name: m.node.name.as_str(),
                member: m.member,
                facts: m.facts,
                view,
                legacy: m.legacy.is_some(),
            })
        })
        .collect()
}

/// Each replica streaming, on the leader's timeline and caught up; then at least one
/// failover candidate among them. Reasons come replica by replica.
fn replica_rules(c: &DbCluster, leader: &Leader) -> Vec<Verdict> {
    let replicas = replicas(c, leader);
    let mut verdicts = Vec::new();
    for r in &replicas {
        verdicts.extend(replica_streaming(leader, r));
        verdicts.extend(replica_timeline(leader, r));
        verdicts.extend(replica_lag(leader, r));
    }
    verdicts.extend(unnamed_walsenders(leader, &replicas));
    verdicts.extend(failover_candidate(leader, &replicas));
    verdicts
}

/// The leader's walsender for this replica is streaming (judged only when the leader's
/// Patroni answered).
fn replica_streaming(leader: &Leader, r: &Replica) -> Option<Verdict> {
    if leader.unnamed.is_some() {
        // A legacy leader's walsenders cannot be looked up by replica: counted instead.
        return None;
    }
    let why = match leader.walsenders?.get(r.member) {
        Some(w) if w.state == "streaming" => return None,
        Some(w) => format!("{} is {:?} on the leader, not streaming", r.name, w.state),
        None => format!("{} is not in the leader's replication list", r.name),
    };
    Some(degraded(
        Reason::new(codes::REPLICA_NOT_STREAMING, why).on_node(r.name),
    ))
}

fn replica_timeline(leader: &Leader, r: &Replica) -> Option<Verdict> {
    let timeline = r
        .facts
        .and_then(|f| f.timeline)
        .or_else(|| r.view.and_then(|v| v.timeline))?;
    let lt = leader.timeline?;
    (timeline != lt).then(|| {
        degraded(
            Reason::new(
                codes::TIMELINE_MISMATCH,
                format!("{} is on timeline {timeline}, the leader on {lt}", r.name),
            )
            .on_node(r.name),
        )
    })
}

/// A legacy leader's walsenders carry no names: as many must stream as there are
/// replicas to judge, as 5.0.5 required.
fn unnamed_walsenders(leader: &Leader, replicas: &[Replica]) -> Option<Verdict> {
    let walsenders = leader.unnamed?;
    let streaming = walsenders.iter().filter(|w| w.state == "streaming").count();
    let others: Vec<&str> = walsenders
        .iter()
        .filter(|w| w.state != "streaming")
        .map(|w| w.state.as_str())
        .collect();
    if streaming >= replicas.len() && others.is_empty() {
        return None;
    }
    let mut why = format!(
        "the leader (a legacy report, walsenders unnamed) streams to {streaming} of {} replicas",
        replicas.len()
    );
    if !others.is_empty() {
        why += &format!("; other walsenders: {}", others.join(", "));
    }
    Some(degraded(Reason::new(codes::REPLICA_NOT_STREAMING, why)))
}

/// Neither the leader's report nor the replica's can carry lag: both are legacy bodies.
/// Such a replica is judged as 5.0.5 judged it, by the leader's walsenders streaming.
fn lag_off_the_wire(leader: &Leader, r: &Replica) -> bool {
    leader.unnamed.is_some() && r.legacy
}

/// Replay lag in bytes: the leader's exact measure, else the replica's own, else a view's.
fn lag_bytes(leader: &Leader, r: &Replica) -> Option<u64> {
    leader
        .facts
        .and_then(|f| f.replica_lag_bytes.get(r.member).copied())
        .or_else(|| r.facts.and_then(|f| f.lag_bytes))
        .or_else(|| r.view.and_then(|v| v.lag_bytes))
}

fn replica_lag(leader: &Leader, r: &Replica) -> Option<Verdict> {
    let reason = match lag_bytes(leader, r) {
        Some(b) if b > leader.max_lag => Reason::new(
            codes::REPLICA_LAG,
            format!(
                "{} lags {b} bytes, over maximum_lag_on_failover {}",
                r.name, leader.max_lag
            ),
        ),
        Some(_) => return None,
        None if lag_off_the_wire(leader, r) => return None,
        None => Reason::new(
            codes::REPLICA_LAG_UNKNOWN,
            format!("no numeric lag is known for {}", r.name),
        ),
    };
    Some(degraded(reason.on_node(r.name)))
}

/// Some replica without the nofailover tag is caught up, so the cluster can fail over.
fn failover_candidate(leader: &Leader, replicas: &[Replica]) -> Option<Verdict> {
    let leader_streams = leader
        .unnamed
        .is_some_and(|ws| ws.iter().any(|w| w.state == "streaming"));
    let can_take_over = |r: &Replica| {
        let nofailover =
            r.facts.is_some_and(|f| f.nofailover) || r.view.is_some_and(|v| v.nofailover);
        let caught_up = match lag_bytes(leader, r) {
            Some(b) => b <= leader.max_lag,
            None => lag_off_the_wire(leader, r) && leader_streams,
        };
        !nofailover && caught_up
    };
    (!replicas.iter().any(can_take_over)).then(|| {
        degraded(Reason::new(
            codes::NO_FAILOVER_CANDIDATE,
            "no healthy replica without the nofailover tag is caught up: the cluster cannot fail over",
        ))
    })
}

/// With `synchronous_mode` on, a synchronous standby streams: by the leader's walsenders
/// when its Patroni answered, else by the fresh views, where a sync standby has role
/// `sync_standby` (or `quorum_standby` under Patroni 4's `synchronous_mode: quorum`).
fn sync_standby(c: &DbCluster, leader: &Leader) -> Option<Verdict> {
    let sync_mode = leader
        .facts
        .and_then(|f| f.synchronous_mode)
        .or_else(|| c.members.iter().find_map(|m| m.facts?.synchronous_mode));
    if sync_mode != Some(true) {
        return None;
    }
    let has_sync = match leader.walsenders {
        Some(named) => named
            .values()
            .chain(leader.unnamed.into_iter().flatten())
            .any(|w| w.state == "streaming" && matches!(w.sync_state.as_str(), "sync" | "quorum")),
        None => c.views.iter().any(|v| {
            v.members.values().any(|mv| {
                matches!(mv.role.as_str(), "sync_standby" | "quorum_standby")
                    && can_be_sync(&mv.state)
            })
        }),
    };
    (!has_sync).then(|| {
        degraded(Reason::new(
            codes::NO_SYNC_STANDBY,
            "synchronous_mode is on but no synchronous standby is streaming",
        ))
    })
}

/// etcd: one cluster id, one leader, healthy members ≥ quorum. Members are told apart by
/// member id; a node whose local etcd does not answer counts as one unhealthy member.
fn etcd_rules(members: &[Member]) -> Vec<Verdict> {
    let mut out = Vec::new();
    let etcd: Vec<(&Member, &sr_protocol::facts::EtcdFacts)> = members
        .iter()
        .filter_map(|m| Some((m, m.facts?.etcd.as_ref()?)))
        .collect();
    if etcd.is_empty() {
        return out;
    }
    let cluster_ids: BTreeSet<&str> = etcd
        .iter()
        .filter_map(|(_, e)| e.cluster_id.as_deref())
        .collect();
    if cluster_ids.len() > 1 {
        out.push((
            NodeStatus::Fail,
            Reason::new(
                codes::ETCD_CLUSTER_ID_MISMATCH,
                format!(
                    "db nodes see different etcd clusters: {}",
                    cluster_ids.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ),
        ));
    }
    let leaders: BTreeSet<&str> = etcd
        .iter()
        .filter_map(|(_, e)| e.leader.as_deref())
        .collect();
    if leaders.len() > 1 {
        out.push(degraded(Reason::new(
            codes::ETCD_LEADER_DISAGREEMENT,
            format!("etcd members name {} different leaders", leaders.len()),
        )));
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
        out.push((
            NodeStatus::Fail,
            Reason::new(
                codes::ETCD_UNAVAILABLE,
                format!("DCS unreachable: no healthy etcd member{from}"),
            ),
        ));
    } else if healthy < need {
        out.push(degraded(Reason::new(
            codes::ETCD_QUORUM,
            format!("{healthy} of {total} etcd members healthy, below quorum {need}"),
        )));
    } else if healthy < total {
        out.push(degraded(Reason::new(
            codes::ETCD_MEMBER_DOWN,
            format!("{healthy} of {total} etcd members healthy"),
        )));
    }
    out
}

/// Patroni on some node cannot reach the DCS.
fn dcs_unreachable(c: &DbCluster) -> Option<Verdict> {
    let nodes: Vec<&str> = c
        .members
        .iter()
        .filter(|m| m.facts.is_some_and(|f| f.dcs_reachable == Some(false)))
        .map(|m| m.node.name.as_str())
        .collect();
    (!nodes.is_empty()).then(|| {
        degraded(Reason::new(
            codes::DCS_UNREACHABLE,
            format!(
                "DCS (etcd) unreachable from Patroni on {}",
                nodes.join(", ")
            ),
        ))
    })
}

/// Healthy members (not Fail, or seen running by fresh peers) against ⌊n/2⌋+1 of the
/// membership ([`Membership`]: the configured size or the members the views show, not the
/// reporters): below it Fail; short of every member, Degraded (with a member that never
/// reports, nothing else may say so). More members than the
/// configured size is Fail.
fn quorum(c: &DbCluster, members: &Membership) -> Option<Verdict> {
    if let Some(exceeded) = members.exceeded(NodeType::Db) {
        return Some((NodeStatus::Fail, exceeded));
    }
    let n = members.size;
    let need = generic::quorum(NodeType::Db, n);
    let healthy = Membership::healthy(c.members.iter().map(|m| {
        let up = m.node.status != NodeStatus::Fail
            || (!m.node.fresh && !c.seen_running_by(m.member).is_empty());
        (m.node, up)
    }));
    if healthy < need {
        Some((
            NodeStatus::Fail,
            Reason::new(
                codes::QUORUM_LOST,
                format!("{healthy} of {n} db nodes healthy, below quorum {need}"),
            ),
        ))
    } else if healthy < n {
        Some(degraded(Reason::new(
            codes::DEGRADED_MEMBERS,
            format!("{healthy} of {n} db nodes healthy (quorum {need})"),
        )))
    } else {
        None
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
    fn extend(&mut self, verdicts: impl IntoIterator<Item = Verdict>) {
        for (status, reason) in verdicts {
            self.status = self.status.max(status);
            self.reasons.push(reason);
        }
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
            facts: Some(
                Facts {
                    db: Some(db),
                    ..Facts::default()
                }
                .into(),
            ),
            legacy: None,
            role: None,
            version: None,
            private_ip: None,
            latest: None,
            last_seen_ms: Some(1_795_360_000_000),
            skew_ms: Some(0),
            flapping: false,
            key_mismatch: false,
            signed: true,
            unvouched: false,
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

    /// A 5.0.5 db node: its facts as the roll-up reads them from this `patroni_status`.
    fn legacy_node(i: usize, role: &str, walsenders: &[(&str, &str)]) -> NodeInput {
        let list: Vec<serde_json::Value> = walsenders
            .iter()
            .map(|(state, sync)| serde_json::json!({"state": state, "sync_state": sync}))
            .collect();
        let body = serde_json::json!({
            "reporting_freq": 5,
            "timestamp": "20270115080000+0000",
            "report": {"status": "OK", "services": {"Patroni": {"status": "Active", "extra_info": {
                "patroni_status": {"state": "running", "role": role, "replications_state": list}}}}}
        });
        let report = sr_protocol::report::ReportBody::decode(&serde_json::to_vec(&body).unwrap())
            .unwrap()
            .body
            .report;
        let (facts, detail) = super::super::legacy::facts(NodeType::Db, &report).unwrap();
        let mut n = node(i, NodeStatus::Ok, true, facts.db.unwrap());
        n.legacy = Some(detail);
        n
    }

    fn legacy_cluster(leader_role: &str, walsenders: &[(&str, &str)]) -> Vec<NodeInput> {
        vec![
            legacy_node(0, leader_role, walsenders),
            legacy_node(1, "replica", &[]),
            legacy_node(2, "replica", &[]),
        ]
    }

    #[test]
    fn a_legacy_cluster_is_judged_by_the_leaders_unnamed_walsenders() {
        let healthy = [("streaming", "sync"), ("streaming", "async")];
        for role in ["master", "primary"] {
            assert_eq!(
                run(&legacy_cluster(role, &healthy)),
                (NodeStatus::Ok, vec![])
            );
        }

        // One replica catching up, none synchronous: 5.0.5 said Fail (no sync replica).
        let (s, r) = run(&legacy_cluster(
            "master",
            &[("streaming", "async"), ("catchup", "async")],
        ));
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert_eq!(codes(&r), ["replica_not_streaming", "no_sync_standby"]);
        assert!(
            r[0].message.contains("1 of 2") && r[0].message.contains("catchup"),
            "{r:?}"
        );

        // No walsender at all: nothing streams, nothing can take over.
        let (s, r) = run(&legacy_cluster("master", &[]));
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert_eq!(
            codes(&r),
            [
                "replica_not_streaming",
                "no_failover_candidate",
                "no_sync_standby"
            ]
        );

        // Two legacy masters are two self-declared leaders.
        let mut nodes = legacy_cluster("master", &healthy);
        nodes[1] = legacy_node(1, "master", &[]);
        assert!(codes(&run(&nodes).1).contains(&"split_brain"));
    }

    #[test]
    fn a_legacy_replica_of_our_leader_is_still_judged_on_lag() {
        // Our agent on the leader names its walsenders and measures lag; a 5.0.5 replica
        // cannot carry lag, but the leader's measure of it is enough.
        let mut nodes = healthy("pg1");
        nodes[2] = legacy_node(2, "replica", &[]);
        std::sync::Arc::make_mut(nodes[2].facts.as_mut().unwrap())
            .db
            .as_mut()
            .unwrap()
            .member = Some("pg3".into());
        assert_eq!(run(&nodes), (NodeStatus::Ok, vec![]));
        // With no measure anywhere (neither the leader's nor a view's), lag is unknown.
        for (i, n) in nodes.iter_mut().enumerate().take(2) {
            let mut f = facts(MEMBERS[i], "pg1");
            f.replica_lag_bytes.remove("pg3");
            f.cluster_members.get_mut("pg3").unwrap().lag_bytes = None;
            *n = node(i, NodeStatus::Ok, true, f);
        }
        let (s, r) = run(&nodes);
        assert_eq!(
            (s, codes(&r)),
            (NodeStatus::Degraded, vec!["replica_lag_unknown"])
        );
    }

    /// A `/cluster` answer captured from a real Patroni 4 cluster, as the probe's facts
    /// carry it: the leader it names and every member's view.
    fn captured_cluster(version: &str, file: &str) -> (String, BTreeMap<String, MemberView>) {
        let doc = captured(version, file);
        let mut leader = String::new();
        let mut members = BTreeMap::new();
        for m in doc["members"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap().to_string();
            let role = m["role"].as_str().unwrap();
            if role == "leader" {
                leader = name.clone();
            }
            let view = MemberView {
                role: role.into(),
                state: m["state"].as_str().unwrap().into(),
                timeline: m["timeline"].as_u64(),
                lag_bytes: m["lag"].as_u64(),
                nofailover: m["tags"]["nofailover"].as_bool().unwrap_or(false),
            };
            members.insert(name, view);
        }
        (leader, members)
    }

    fn captured(version: &str, file: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../probes/fixtures")
            .join(format!("patroni-{version}"))
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// `facts(member, leader)` with its `/cluster` view replaced by a captured one.
    fn facts_seeing(member: &str, version: &str, file: &str) -> DbFacts {
        let (leader, members) = captured_cluster(version, file);
        let mut f = facts(member, &leader);
        f.cluster_members = members;
        f
    }

    const PATRONI4: [&str; 2] = ["4.0.7", "4.1.5"];

    #[test]
    fn patroni4_a_silent_streaming_replica_is_vouched_for() {
        for v in PATRONI4 {
            // The leader's walsenders as its own /patroni listed them.
            let mut lf = facts_seeing("pg1", v, "leader-cluster.json");
            lf.replication = captured(v, "leader-patroni.json")["replication"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    let text = |k: &str| r[k].as_str().unwrap().to_string();
                    (
                        text("application_name"),
                        ReplicationView {
                            state: text("state"),
                            sync_state: text("sync_state"),
                        },
                    )
                })
                .collect();
            // pg2 may not take over; pg3, `streaming` in every view, has a silent reporter.
            let mut f2 = facts_seeing("pg2", v, "leader-cluster.json");
            f2.nofailover = true;
            let nodes = vec![
                node(0, NodeStatus::Ok, true, lf),
                node(1, NodeStatus::Ok, true, f2),
                node(
                    2,
                    NodeStatus::Fail,
                    false,
                    facts_seeing("pg3", v, "leader-cluster.json"),
                ),
            ];
            // Vouched for, pg3 is judged on what the views say (caught up) and can take
            // over: only its silence is reported.
            let (s, r) = run(&nodes);
            assert_eq!((s, codes(&r)), (NodeStatus::Degraded, vec!["stale"]), "{v}");
        }
    }

    /// A replica `in archive recovery` is up: a silent one that peers show in that state is
    /// vouched for, like a streaming one.
    #[test]
    fn patroni4_a_silent_replica_in_archive_recovery_is_vouched_for() {
        for v in PATRONI4 {
            let file = "cluster-sync-archive-recovery.json";
            let nodes = vec![
                node(0, NodeStatus::Ok, true, facts_seeing("pg1", v, file)),
                node(1, NodeStatus::Ok, true, facts_seeing("pg2", v, file)),
                node(2, NodeStatus::Fail, false, facts_seeing("pg3", v, file)),
            ];
            // Not vouched for, pg3 would not count as up: "2 of 3 db nodes healthy" too.
            let (s, r) = run(&nodes);
            assert_eq!((s, codes(&r)), (NodeStatus::Degraded, vec!["stale"]), "{v}");
        }
    }

    #[test]
    fn patroni4_sync_and_quorum_standbys_count_when_seen_only_through_cluster() {
        for v in PATRONI4 {
            for (file, has_sync) in [
                ("cluster-sync.json", true),
                ("cluster-quorum.json", true),
                ("leader-cluster.json", false),
                // up, but not streaming: it acknowledges no commit
                ("cluster-sync-archive-recovery.json", false),
            ] {
                // The leader's reporter is silent: only the replicas' /cluster views remain.
                let mut nodes = vec![node(0, NodeStatus::Fail, false, facts("pg1", "pg1"))];
                for (i, m) in MEMBERS.iter().enumerate().skip(1) {
                    let mut f = facts_seeing(m, v, file);
                    f.synchronous_mode = Some(true);
                    nodes.push(node(i, NodeStatus::Ok, true, f));
                }
                let (s, r) = run(&nodes);
                assert_eq!(s, NodeStatus::Degraded, "{v} {file}: {r:?}");
                assert!(codes(&r).contains(&"leader_not_reporting"), "{v} {file}");
                assert_eq!(
                    !codes(&r).contains(&"no_sync_standby"),
                    has_sync,
                    "{v} {file}: {r:?}"
                );
            }
        }
    }
}
