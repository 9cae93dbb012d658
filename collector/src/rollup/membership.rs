//! Who belongs to a service, as its members see it (issue 12): the quorum is taken of the
//! service's own membership, not of whoever holds the role token and reports.
//!
//! A role token is shared by every node of its type, so a report proves only that its
//! sender holds the token. What a token holder cannot forge is a real member's view of the
//! membership: Patroni's `/cluster` (read from the DCS) and RabbitMQ's cluster nodes list
//! only nodes that joined the service. The rules, each a small function:
//! - [`view_of`]: a fresh report with a usable membership view is a *viewer* (db: a
//!   DCS-connected `/cluster` view no older than 60 s; broker: a running node's
//!   `cluster_view`, which names itself). Managers have no membership of their own: they
//!   rely on the configured `expected_size` and on admission.
//! - [`vouched`]: a reporter's member name (Patroni member, RabbitMQ node name) is listed
//!   by **every** viewer other than itself. Every, not any: fakes can list each other, but
//!   cannot put themselves into a real member's view. A reporter that gives no member name
//!   while views exist cannot be placed and is not vouched for. With no view at all there
//!   is no evidence either way and every reporter counts (5.0.5 bodies, managers).
//! - [`mark`]: a reporter not vouched for that is not already Fail is flagged `unvouched`,
//!   Degraded with a reason: shown, counted for nothing. (A Fail reporter counts as a
//!   failing member, which can only make the view worse.)
//! - [`Membership::of`]: the size the quorum is taken of: the members the counted views
//!   and reporters name (or the counted reporters, when more of them give no name), or
//!   the configured `expected_size` when that is larger. Reporters that claim one member name (or, without one, confusable
//!   display names) count once, healthy only if all of them are ([`Membership::healthy`]),
//!   so a twin cannot stand in for a failing node.
//! - [`Membership::exceeded`]: more members than the configured size is Fail.
//!
//! What a token holder can still do: make the view worse (a fake view that leaves real
//! members out unvouches them), never better while one real member's view is fresh. When
//! no real member has a usable view (every real member's service is down), fakes that list
//! each other vouch for each other; `expected_size` (they then exceed it) and
//! `admission = "approve"` are the defence there (docs/security.md).

use super::names::skeleton;
use super::{NodeInput, Policy};
use sr_protocol::facts::DbFacts;
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, NodeType, Reason};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};

/// A `/cluster` view older than this is not membership evidence (nor, in the db rule,
/// evidence of who leads or runs).
pub(super) const MAX_VIEW_AGE_S: u64 = 60;

/// A db node's `/cluster` view is usable: Patroni answered, is connected to the DCS, and
/// the view is recent and not empty.
pub(super) fn usable_db_view(f: &DbFacts) -> bool {
    f.dcs_reachable != Some(false)
        && f.patroni_reachable == Some(true)
        && f.cluster_view_age_s.is_some_and(|a| a <= MAX_VIEW_AGE_S)
        && !f.cluster_members.is_empty()
}

/// The name the service itself knows the node by: the Patroni member (the node name
/// stands in, as for a 5.0.5 body) or the RabbitMQ node name. Managers have none.
pub fn member_name(n: &NodeInput) -> Option<&str> {
    let facts = n.facts.as_ref();
    match n.node_type {
        NodeType::Db => Some(
            facts
                .and_then(|f| f.db.as_ref())
                .and_then(|d| d.member.as_deref())
                .unwrap_or(n.name.as_str()),
        ),
        NodeType::Broker => facts
            .and_then(|f| f.broker.as_ref())
            .and_then(|b| b.node_name.as_deref()),
        // Managers and `node` hosts have no service membership of their own here.
        NodeType::Manager | NodeType::Node => None,
    }
}

/// The members a fresh report's view of the service lists, if it has a usable one.
pub fn view_of(n: &NodeInput) -> Option<BTreeSet<&str>> {
    if !n.fresh {
        return None;
    }
    let facts = n.facts.as_ref()?;
    match n.node_type {
        NodeType::Db => {
            let f = facts.db.as_ref()?;
            usable_db_view(f).then(|| f.cluster_members.keys().map(String::as_str).collect())
        }
        NodeType::Broker => {
            let f = facts.broker.as_ref()?;
            let me = f.node_name.as_deref()?;
            (f.cluster_view.get(me) == Some(&true))
                .then(|| f.cluster_view.keys().map(String::as_str).collect())
        }
        // Managers and `node` hosts have no service membership of their own here.
        NodeType::Manager | NodeType::Node => None,
    }
}

/// Whether the member `name` (`None`: the reporter gave none) is vouched for by the
/// `viewers` (member name → its view).
pub fn vouched(name: Option<&str>, viewers: &[(&str, BTreeSet<&str>)]) -> bool {
    if viewers.is_empty() {
        return true;
    }
    let Some(name) = name else {
        return false;
    };
    let mut others = viewers
        .iter()
        .filter(|(holder, _)| *holder != name)
        .peekable();
    if others.peek().is_none() {
        // The only view is its own: nobody else's to check it against.
        return true;
    }
    others.all(|(_, view)| view.contains(name))
}

/// The viewers among `nodes`: member name → listed members.
fn viewers(nodes: &[NodeInput]) -> Vec<(&str, BTreeSet<&str>)> {
    nodes
        .iter()
        .filter_map(|n| Some((member_name(n)?, view_of(n)?)))
        .collect()
}

/// `nodes` (all of one type) with every reporter no member vouches for flagged
/// `unvouched`: Degraded at least, with a reason. Borrowed when none is.
pub fn mark(nodes: &[NodeInput]) -> Cow<'_, [NodeInput]> {
    let viewers = viewers(nodes);
    let unvouched: Vec<usize> = (0..nodes.len())
        .filter(|&i| {
            let n = &nodes[i];
            n.status != NodeStatus::Fail && !vouched(member_name(n), &viewers)
        })
        .collect();
    if unvouched.is_empty() {
        return Cow::Borrowed(nodes);
    }
    let holders: Vec<&str> = viewers.iter().map(|(h, _)| *h).collect();
    let mut owned = nodes.to_vec();
    for i in unvouched {
        let n = &mut owned[i];
        let who = match member_name(&nodes[i]) {
            Some(m) => format!("{} member {m:?}", n.node_type),
            None => format!("a {} that gives no member name", n.node_type),
        };
        n.unvouched = true;
        n.status = n.status.max(NodeStatus::Degraded);
        n.reasons.push(
            Reason::new(
                codes::UNVOUCHED,
                format!(
                    "reports as {who}, but the views of {} do not list it: not counted",
                    holders.join(", ")
                ),
            )
            .on_node(n.name.clone()),
        );
    }
    Cow::Owned(owned)
}

/// Every node of `nodes` (any types) that [`mark`] flags: `(type, node id)`. For
/// `nodes forget --unvouched`.
pub fn unvouched(nodes: &[NodeInput]) -> Vec<(NodeType, String)> {
    NodeType::ALL
        .iter()
        .flat_map(|t| {
            let of_type: Vec<NodeInput> = nodes
                .iter()
                .filter(|n| n.node_type == *t)
                .cloned()
                .collect();
            mark(&of_type)
                .iter()
                .filter(|n| n.unvouched)
                .map(|n| (n.node_type, n.node_id.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The membership of one service type, as the counted reporters and their views show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// How many members the quorum is taken of.
    pub size: usize,
    /// The distinct members the counted reporters and views show.
    pub seen: usize,
    /// The configured `expected_size` of the type, if any.
    pub expected: Option<usize>,
}

/// The key reporters are counted by: the member name, else the skeleton of the display
/// name (so confusable names count once).
fn count_key(n: &NodeInput) -> Cow<'_, str> {
    match member_name(n) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(skeleton(&n.name)),
    }
}

impl Membership {
    /// The membership of `nodes` (all of one type, unvouched ones flagged by [`mark`]).
    pub fn of(nodes: &[NodeInput], policy: &Policy) -> Membership {
        let counted: Vec<&NodeInput> = nodes.iter().filter(|n| !n.unvouched).collect();
        // Named members: what the views list and what the reporters call themselves.
        let mut named: BTreeSet<&str> = counted.iter().filter_map(|n| member_name(n)).collect();
        for n in &counted {
            if let Some(view) = view_of(n) {
                named.extend(view);
            }
        }
        // A reporter without a member name (a broker whose RabbitMQ is down and names
        // nobody) is one member, but not one more than the view that lists it under its
        // RabbitMQ name: it raises the count only when there are more reporters than names.
        // Hashed: only the count matters (and this runs per type per view, issue 17).
        let reporters: HashSet<Cow<str>> = counted.iter().map(|n| count_key(n)).collect();
        let seen = named.len().max(reporters.len());
        let expected = nodes
            .first()
            .and_then(|n| policy.expected_size.get(&n.node_type).copied());
        Membership {
            size: seen.max(expected.unwrap_or(0)),
            seen,
            expected,
        }
    }

    /// Healthy members among `(reporter, healthy)`: counted reporters grouped by member
    /// name, a group healthy only when every reporter in it is.
    pub fn healthy<'n>(judged: impl IntoIterator<Item = (&'n NodeInput, bool)>) -> usize {
        let mut groups: HashMap<Cow<str>, bool> = HashMap::new();
        for (n, up) in judged.into_iter().filter(|(n, _)| !n.unvouched) {
            let ok = groups.entry(count_key(n)).or_insert(true);
            *ok = *ok && up;
        }
        groups.values().filter(|ok| **ok).count()
    }

    /// Fail when more members show than the configured size.
    pub fn exceeded(&self, node_type: NodeType) -> Option<Reason> {
        let expected = self.expected?;
        (self.seen > expected).then(|| {
            Reason::new(
                codes::MEMBERSHIP_EXCEEDS,
                format!(
                    "{} {node_type} members show, expected_size is {expected}: impostors, or the setting is out of date",
                    self.seen
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
        names.iter().copied().collect()
    }

    #[test]
    fn vouching_needs_every_other_view() {
        let real = ["r1", "r2", "r3"];
        let viewers = vec![("r1", set(&real)), ("r2", set(&real))];
        assert!(vouched(Some("r3"), &viewers));
        assert!(vouched(Some("r1"), &viewers));
        assert!(!vouched(Some("f1"), &viewers));
        assert!(!vouched(None, &viewers), "no member name, views exist");
        // Fakes that list each other and the real members: the real views still leave
        // them out.
        let all = ["r1", "r2", "r3", "f1", "f2"];
        let with_fakes = vec![("r1", set(&real)), ("f1", set(&all)), ("f2", set(&all))];
        assert!(!vouched(Some("f1"), &with_fakes));
        assert!(vouched(Some("r2"), &with_fakes));
        // No views: no evidence, everyone counts. A sole viewer vouches for itself.
        assert!(vouched(Some("x"), &[]));
        assert!(vouched(None, &[]));
        assert!(vouched(Some("r1"), &[("r1", set(&["r1"]))]));
    }
}
