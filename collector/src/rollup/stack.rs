//! The stack services (Galera, HAProxy, ...; docs/protocol.md "Stack services"): which
//! nodes are members, how a member's own standing (no report, stale, key mismatch) enters
//! its service verdict, and the one loop that runs each service's rule module.
//!
//! A node is a member of a service when its last valid report carries that service's
//! facts; one report can make it a member of several. Each rule module judges members
//! from its own facts only, so a failing HAProxy never degrades the same host in `galera`.

use super::{NodeInput, Policy};
use sr_protocol::facts::StackService;
use sr_protocol::reasons as codes;
use sr_protocol::view::{NodeView, ServiceTypeView};
use sr_protocol::{NodeStatus, Reason};
use std::collections::BTreeMap;

/// One stack service's settings (collector config `[services.<name>]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServicePolicy {
    /// No member reporting is Fail (`no_nodes`) instead of leaving the service out.
    pub required: bool,
    /// The configured number of members; quorum is counted against it, so a member that
    /// never reported still counts. `None`: the members seen.
    pub size: Option<u32>,
}

/// One status and the reason behind it: what every rule returns.
pub type Verdict = (NodeStatus, Reason);

/// The worst status and every reason of a list of verdicts (OK with none).
pub fn worst(verdicts: Vec<Verdict>) -> (NodeStatus, Vec<Reason>) {
    let status = verdicts
        .iter()
        .map(|(s, _)| *s)
        .max()
        .unwrap_or(NodeStatus::Ok);
    (status, verdicts.into_iter().map(|(_, r)| r).collect())
}

/// A member as its service sees it: the node, and its status and reasons in that service.
#[derive(Debug, Clone)]
pub struct Judged<'a> {
    pub node: &'a NodeInput,
    pub status: NodeStatus,
    pub reasons: Vec<Reason>,
    /// What the view shows as the node's `role` in this service.
    pub role: Option<String>,
}

impl Judged<'_> {
    pub fn view(&self, key: &super::names::RowKey) -> NodeView {
        let mut v = self.node.view(key);
        v.status = self.status;
        // The service's own judgement replaces the node's reasons, but a row disambiguated
        // from a look-alike keeps saying so.
        let duplicate = v
            .reasons
            .drain(..)
            .filter(|r| r.code == sr_protocol::reasons::DUPLICATE_NAME.code);
        v.reasons = self.reasons.iter().cloned().chain(duplicate).collect();
        v.role = self.role.clone();
        v
    }
}

/// Why a member's facts cannot be used: no valid report, a stale one or a key mismatch.
/// `None` when the node is fresh and trusted; then the service's own node rule decides.
pub fn standing(node: &NodeInput) -> Option<Vec<Reason>> {
    if node.fresh && !node.key_mismatch {
        return None;
    }
    let own: Vec<Reason> = node
        .reasons
        .iter()
        .filter(|r| {
            [codes::NO_REPORT, codes::STALE, codes::KEY_MISMATCH]
                .iter()
                .any(|c| c.code == r.code)
        })
        .cloned()
        .collect();
    Some(own)
}

/// One member: its standing first (no report, stale, key mismatch: Fail with that reason),
/// then what `verdicts` make of its service facts (`facts` picks them out of the report).
pub fn judge<'a, F: 'a>(
    node: &'a NodeInput,
    facts: impl Fn(&'a sr_protocol::report::Facts) -> Option<&'a F>,
    verdicts: impl Fn(&F, &str) -> Vec<Verdict>,
    role: impl Fn(&F) -> Option<String>,
) -> Judged<'a> {
    let own = node.facts.as_deref().and_then(facts);
    let (status, reasons) = match (standing(node), own) {
        (Some(why), _) => (NodeStatus::Fail, why),
        (None, Some(f)) => worst(verdicts(f, &node.name)),
        (None, None) => (NodeStatus::Fail, Vec::new()),
    };
    Judged {
        node,
        status,
        reasons,
        role: own.and_then(role),
    }
}

/// The members whose facts a cluster-wide rule may read (fresh and trusted: [`standing`] is
/// `None`), by name, with the facts `facts` picks (a rule filters there, e.g. answering only).
pub fn trusted_facts<'a, F>(
    judged: &[Judged<'a>],
    facts: impl Fn(&Judged<'a>) -> Option<&'a F>,
) -> Vec<(&'a str, &'a F)> {
    judged
        .iter()
        .filter(|j| standing(j.node).is_none())
        .filter_map(|j| Some((j.node.name.as_str(), facts(j)?)))
        .collect()
}

/// Each member's reasons at its status, except that a member which does not serve (`serves`
/// false: its service or its agent silent) counts as at most Degraded while another member
/// of several serves: the service goes on, only its redundancy is gone. None serving is
/// Fail (`quorum_lost`, "0 of SIZE `what` members answer").
pub fn capped_members(
    judged: &[Judged],
    size: usize,
    what: &str,
    serves: impl Fn(&Judged) -> bool,
) -> Vec<Verdict> {
    let serving = judged.iter().filter(|j| serves(j)).count();
    let mut out = Vec::new();
    for j in judged {
        let cap = if serving >= 1 && size > 1 && !serves(j) {
            NodeStatus::Degraded
        } else {
            NodeStatus::Fail
        };
        out.extend(j.reasons.iter().map(|r| (j.status.min(cap), r.clone())));
    }
    if serving == 0 {
        out.push((
            NodeStatus::Fail,
            codes::QUORUM_LOST.reason(format!("0 of {size} {what} members answer")),
        ));
    }
    out
}

/// Healthy (not Fail) members below ⌊size/2⌋+1 of the configured size: Fail.
pub fn quorum(service: StackService, healthy: usize, size: usize) -> Option<Verdict> {
    let need = size / 2 + 1;
    (healthy < need).then(|| {
        (
            NodeStatus::Fail,
            codes::QUORUM_LOST.reason(format!(
                "{healthy} of {size} {service} members healthy, below quorum {need}"
            )),
        )
    })
}

/// The configured size, else the members seen (never below them).
pub fn size(policy: Option<&ServicePolicy>, members: usize) -> usize {
    policy
        .and_then(|p| p.size)
        .map(|s| s as usize)
        .unwrap_or(members)
        .max(members)
}

/// Every stack service to show: those with members, and the required ones.
pub fn rollup(nodes: &[NodeInput], policy: &Policy) -> Vec<(StackService, ServiceTypeView)> {
    let mut out = Vec::new();
    for service in StackService::ALL {
        let members: Vec<&NodeInput> = nodes
            .iter()
            .filter(|n| n.facts.as_ref().is_some_and(|f| service.has_member(f)))
            .collect();
        let settings = policy.services.get(&service);
        if members.is_empty() {
            if settings.is_some_and(|s| s.required) {
                out.push((service, no_members(service)));
            }
            continue;
        }
        let (status, reasons, judged) = match service {
            StackService::Galera => super::galera::rollup(&members, settings),
            StackService::Lb => super::lb::rollup(&members, settings),
            StackService::Vip => super::vip::rollup(&members, settings),
            StackService::Search => super::search::rollup(&members, settings),
            StackService::Objectstore => super::objectstore::rollup(&members, settings),
            StackService::Pacemaker => super::pacemaker::rollup(&members, settings),
        };
        out.push((
            service,
            ServiceTypeView {
                status,
                is_external: false,
                nodes: views(&judged),
                reasons,
            },
        ));
    }
    out
}

fn no_members(service: StackService) -> ServiceTypeView {
    ServiceTypeView {
        status: NodeStatus::Fail,
        is_external: false,
        nodes: BTreeMap::new(),
        reasons: vec![codes::NO_NODES.reason(format!("no {service} member has reported"))],
    }
}

/// Member views keyed as the Cloudify types' rows are ([`super::names::row_keys`]): a
/// shared or confusable name is disambiguated with the node id.
fn views(judged: &[Judged]) -> BTreeMap<String, NodeView> {
    let nodes: Vec<&NodeInput> = judged.iter().map(|j| j.node).collect();
    judged
        .iter()
        .zip(super::names::row_keys(&nodes))
        .map(|(j, key)| {
            let view = j.view(&key);
            (key.key, view)
        })
        .collect()
}

/// [`test_member`]s named as in `members`, each with its service's facts put into a report's
/// `Facts` by `wrap`.
#[cfg(test)]
pub(crate) fn test_members<F: Clone>(
    members: &[(&str, F)],
    wrap: impl Fn(F) -> sr_protocol::report::Facts,
) -> Vec<NodeInput> {
    members
        .iter()
        .map(|(n, f)| test_member(n, wrap(f.clone())))
        .collect()
}

/// A fresh, trusted `node`-type member named `name` whose last report carried `facts`: what
/// the rule modules' tests judge.
#[cfg(test)]
pub(crate) fn test_member(name: &str, facts: sr_protocol::report::Facts) -> NodeInput {
    NodeInput {
        node_type: sr_protocol::NodeType::Node,
        node_id: format!("id-{name}"),
        name: name.to_string(),
        status: NodeStatus::Ok,
        reported_status: Some(NodeStatus::Ok),
        fresh: true,
        reasons: Vec::new(),
        facts: Some(facts.into()),
        legacy: None,
        role: None,
        version: None,
        private_ip: None,
        latest: None,
        last_seen_ms: Some(0),
        skew_ms: Some(0),
        flapping: false,
        key_mismatch: false,
        signed: true,
        unvouched: false,
    }
}

/// A facts type's own verdicts as roll-up verdicts, each reason naming `node`.
pub fn tagged(v: Vec<(NodeStatus, codes::ReasonCode, String)>, node: &str) -> Vec<Verdict> {
    v.into_iter()
        .map(|(status, code, message)| (status, code.reason(message).on_node(node)))
        .collect()
}

/// The view of `service` (required, configured `size`) over fresh members
/// `<prefix>1`, `<prefix>2`, ... whose reports carried `facts`: what rule tests check.
#[cfg(test)]
pub(crate) fn test_view(
    service: StackService,
    size: u32,
    prefix: &str,
    facts: Vec<sr_protocol::report::Facts>,
) -> ServiceTypeView {
    let nodes: Vec<NodeInput> = facts
        .into_iter()
        .enumerate()
        .map(|(i, f)| test_member(&format!("{prefix}{}", i + 1), f))
        .collect();
    let policy = Policy {
        required_types: Vec::new(),
        services: BTreeMap::from([(
            service,
            ServicePolicy {
                required: true,
                size: Some(size),
            },
        )]),
        ..Policy::default()
    };
    let mut view = super::rollup(&nodes, 0, &policy);
    view.services
        .remove(service.as_str())
        .expect("a required service is shown")
}
