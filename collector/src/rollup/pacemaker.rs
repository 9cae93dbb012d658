//! The `pacemaker` rule (Pacemaker + Corosync): a quorate partition with one DC, every node
//! online, every resource running somewhere, no failures on record.
//!
//! Every member reports `crm_mon`'s view of the whole cluster, so a member is judged from
//! its own standing only ([`member_verdicts`]: `crm_mon` silent or its partition without
//! quorum Fail, no DC Degraded; its own node in standby or maintenance shown as
//! `maintenance`), and the cluster's nodes and resources are judged once, from one view
//! ([`authority`]: the DC's own report, else the first quorate member by name). The rules,
//! composed by [`rollup`]:
//! - no member answering with quorum: Fail ([`stack::capped_members`]: `quorum_lost`); a
//!   member without quorum while another has it is Fail on its row, Degraded for the service;
//! - [`split_verdicts`]: quorate members that name different DCs, or one that sees another
//!   quorate member offline, are a split brain: Fail (`pacemaker_split`);
//! - [`node_verdicts`]: a node offline, pending or unclean, or put in standby by a failure,
//!   while the quorum holds: Degraded, naming it; a node in standby or maintenance by an
//!   operator: `maintenance` (Degraded, never Fail);
//! - [`resource_verdicts`]: per resource (a clone or bundle counted as one, over its
//!   copies): stopped or failed with no copy running anywhere Fail, with a copy still
//!   running Degraded (`pacemaker_resource_stopped`); copies stopped by nodes in standby or
//!   maintenance are the maintenance's, not failures; a resource stopped on purpose
//!   (`target-role=Stopped`) or not managed is not judged; blocked Degraded;
//! - [`failure_verdicts`]: each failed action, and each fail count without one, Degraded
//!   with the resource and the node.
//!
//! The cluster-wide `maintenance-mode` is a maintenance window on the whole service,
//! derived from the facts as Patroni's pause is (`crate::maintenance`): it caps the service
//! at Degraded and shows on every row. A node's standby is shown here instead, on that
//! node's row and the service, because a window on the node would also mark the host's
//! other services (the same host may be a RabbitMQ broker that standby does not touch).

use super::stack::{self, Judged, ServicePolicy, Verdict};
use super::NodeInput;
use sr_protocol::facts::{PacemakerFacts, PcmkResource};
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, Reason};
use std::collections::{BTreeMap, BTreeSet};

/// What one member's own facts say ([`PacemakerFacts::own_verdicts`], which the agent's
/// probe reads too), plus its own node in standby or maintenance shown as maintenance;
/// each reason names the member.
pub fn member_verdicts(f: &PacemakerFacts, node: &str) -> Vec<Verdict> {
    let mut out: Vec<Verdict> = f
        .own_verdicts()
        .into_iter()
        .map(|(status, code, message)| (status, code.reason(message).on_node(node)))
        .collect();
    if let (Some(me), Some(n)) = (f.me.as_deref(), f.my_node()) {
        if let Some(why) = held_by_operator(me, n) {
            out.push((
                NodeStatus::Degraded,
                codes::MAINTENANCE.reason(why).on_node(node),
            ));
        }
    }
    out
}

/// Why node `name` is held out by an operator (standby or node maintenance), if it is.
fn held_by_operator(name: &str, n: &sr_protocol::facts::PcmkNode) -> Option<String> {
    let mut what = Vec::new();
    if n.standby && !n.standby_onfail {
        what.push("standby");
    }
    if n.maintenance {
        what.push("maintenance");
    }
    (!what.is_empty()).then(|| {
        format!(
            "in maintenance: Pacemaker node {name} is in {} (until `crm_attribute --node {name} --name {} --delete`)",
            what.join(" and "),
            what[0]
        )
    })
}

fn judge(node: &NodeInput) -> Judged<'_> {
    stack::judge(
        node,
        |f| f.pacemaker.as_ref(),
        member_verdicts,
        PacemakerFacts::role,
    )
}

fn facts<'a>(j: &Judged<'a>) -> Option<&'a PacemakerFacts> {
    j.node.facts.as_ref().and_then(|f| f.pacemaker.as_ref())
}

/// Answers with a view from a partition that has quorum.
fn serves(j: &Judged) -> bool {
    stack::standing(j.node).is_none()
        && facts(j).is_some_and(|f| f.reachable && f.with_quorum == Some(true))
}

/// The view the cluster's nodes and resources are judged from: among quorate members, the
/// one whose own node is the DC, else the first by name; with no quorate member, the first
/// answering one (its resources are then as its partition sees them).
pub fn authority<'a>(
    views: &[(&'a str, &'a PacemakerFacts)],
) -> Option<(&'a str, &'a PacemakerFacts)> {
    let quorate = || views.iter().filter(|(_, f)| f.with_quorum == Some(true));
    quorate()
        .find(|(_, f)| f.is_dc())
        .or_else(|| quorate().min_by_key(|(n, _)| *n))
        .or_else(|| views.iter().min_by_key(|(n, _)| *n))
        .copied()
}

/// Quorate members naming different DCs, or seeing another quorate member's node offline:
/// two partitions each acting as the cluster.
pub fn split_verdicts(views: &[(&str, &PacemakerFacts)]) -> Vec<Verdict> {
    let quorate: Vec<&(&str, &PacemakerFacts)> = views
        .iter()
        .filter(|(_, f)| f.with_quorum == Some(true))
        .collect();
    let mut out = Vec::new();
    let dcs: BTreeMap<&str, Vec<&str>> = quorate.iter().fold(BTreeMap::new(), |mut m, (n, f)| {
        if let Some(dc) = f.dc.as_deref() {
            m.entry(dc).or_insert_with(Vec::new).push(*n);
        }
        m
    });
    if dcs.len() > 1 {
        out.push((
            NodeStatus::Fail,
            codes::PACEMAKER_SPLIT.reason(format!(
                "members with quorum name different DCs: {}",
                dcs.iter()
                    .map(|(dc, by)| format!("{dc} (by {})", by.join(", ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ));
    }
    let mut pairs = BTreeSet::new();
    for (a, fa) in &quorate {
        for (b, fb) in &quorate {
            let Some(b_node) = fb.me.as_deref() else {
                continue;
            };
            if a != b && fa.nodes.get(b_node).is_some_and(|n| !n.online) {
                pairs.insert((a.to_string(), b_node.to_string()));
            }
        }
    }
    for (a, b) in pairs {
        out.push((
            NodeStatus::Fail,
            codes::PACEMAKER_SPLIT.reason(format!(
                "{a} sees {b} offline while {b} has quorum of its own"
            )),
        ));
    }
    out
}

/// Each node of the view that is not a plain online member.
pub fn node_verdicts(view: &PacemakerFacts, seen_by: &str) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (name, n) in &view.nodes {
        if !n.online || n.pending {
            let what = if n.online { "pending" } else { "offline" };
            out.push((
                NodeStatus::Degraded,
                codes::PACEMAKER_NODE_OFFLINE
                    .reason(format!("{name} is {what} (seen by {seen_by})"))
                    .on_node(name.clone()),
            ));
        }
        if n.unclean {
            out.push((
                NodeStatus::Degraded,
                codes::PACEMAKER_NODE_UNCLEAN
                    .reason(format!("{name} is unclean: lost and not fenced"))
                    .on_node(name.clone()),
            ));
        }
        if n.standby_onfail {
            out.push((
                NodeStatus::Degraded,
                codes::PACEMAKER_STANDBY_ONFAIL
                    .reason(format!("{name} was put in standby by a resource failure"))
                    .on_node(name.clone()),
            ));
        }
        if let Some(why) = held_by_operator(name, n) {
            out.push((
                NodeStatus::Degraded,
                codes::MAINTENANCE.reason(why).on_node(name.clone()),
            ));
        }
    }
    out
}

/// A copy runs: active in a role other than Stopped.
fn runs(r: &PcmkResource) -> bool {
    r.active && r.role != "Stopped"
}

fn describe(r: &PcmkResource) -> String {
    match &r.agent {
        Some(a) => format!("{} ({a})", r.id),
        None => r.id.clone(),
    }
}

/// Per resource unit (a primitive, or a clone/bundle over its copies): stopped or failed
/// copies are Fail when none runs, Degraded while one does. Up to `excused` stopped (not
/// failed) copies are the doing of nodes in standby or maintenance, not failures.
pub fn resource_verdicts(view: &PacemakerFacts) -> Vec<Verdict> {
    let excused = view
        .nodes
        .values()
        .filter(|n| n.online && ((n.standby && !n.standby_onfail) || n.maintenance))
        .count();
    let mut units: BTreeMap<&str, Vec<&PcmkResource>> = BTreeMap::new();
    for r in &view.resources {
        units.entry(r.unit()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (unit, copies) in units {
        for r in copies.iter().filter(|r| r.blocked) {
            out.push((
                NodeStatus::Degraded,
                codes::PACEMAKER_RESOURCE_BLOCKED.reason(format!(
                    "{} is blocked: Pacemaker cannot act on it{}",
                    describe(r),
                    on_nodes(r)
                )),
            ));
        }
        let judged: Vec<&&PcmkResource> = copies.iter().filter(|r| !r.held()).collect();
        let running = judged.iter().filter(|r| runs(r)).count();
        let failed = judged.iter().filter(|r| r.failed).count();
        let stopped = judged.iter().filter(|r| !runs(r) && !r.failed).count();
        let cloned = copies.iter().any(|r| r.cloned);
        let stopped_unexcused = if cloned {
            stopped.saturating_sub(excused)
        } else {
            stopped
        };
        if failed == 0 && stopped_unexcused == 0 {
            continue;
        }
        let what = match (failed, stopped_unexcused) {
            (0, s) => format!("{s} stopped"),
            (f, 0) => format!("{f} failed"),
            (f, s) => format!("{f} failed, {s} stopped"),
        };
        let (status, message) = if running == 0 {
            (
                NodeStatus::Fail,
                if cloned {
                    format!("{unit}: no copy runs ({what})")
                } else {
                    let r = copies[0];
                    format!(
                        "{} is {}: it runs nowhere",
                        describe(r),
                        r.role.to_lowercase()
                    )
                },
            )
        } else {
            let on: BTreeSet<&str> = judged
                .iter()
                .filter(|r| runs(r))
                .flat_map(|r| r.nodes.iter().map(String::as_str))
                .collect();
            (
                NodeStatus::Degraded,
                format!(
                    "{unit}: {running} of {} copies run{} ({what})",
                    judged.len(),
                    if on.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", on.into_iter().collect::<Vec<_>>().join(", "))
                    }
                ),
            )
        };
        out.push((status, codes::PACEMAKER_RESOURCE_STOPPED.reason(message)));
    }
    out
}

fn on_nodes(r: &PcmkResource) -> String {
    if r.nodes.is_empty() {
        String::new()
    } else {
        format!(" (on {})", r.nodes.join(", "))
    }
}

/// Each failed action, and each fail count with no failed action for the same resource
/// and node, Degraded.
pub fn failure_verdicts(view: &PacemakerFacts) -> Vec<Verdict> {
    let mut out: Vec<Verdict> = view
        .failed_actions
        .iter()
        .map(|a| {
            (
                NodeStatus::Degraded,
                codes::PACEMAKER_FAILED_ACTION
                    .reason(format!(
                        "{} {} failed on {}{}",
                        a.resource,
                        a.task,
                        a.node,
                        a.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ))
                    .on_node(a.node.clone()),
            )
        })
        .collect();
    let listed: BTreeSet<(&str, &str)> = view
        .failed_actions
        .iter()
        .map(|a| (a.resource.as_str(), a.node.as_str()))
        .collect();
    for c in &view.fail_counts {
        if listed.contains(&(c.resource.as_str(), c.node.as_str())) {
            continue;
        }
        out.push((
            NodeStatus::Degraded,
            codes::PACEMAKER_FAIL_COUNT
                .reason(format!(
                    "{} on {}: fail count {}{}",
                    c.resource,
                    c.node,
                    c.count,
                    c.threshold
                        .map(|t| format!(" (migration-threshold {t})"))
                        .unwrap_or_default()
                ))
                .on_node(c.node.clone()),
        ));
    }
    out
}

/// Status and reasons of the `pacemaker` service, and each member as judged.
pub fn rollup<'a>(
    members: &[&'a NodeInput],
    settings: Option<&ServicePolicy>,
) -> (NodeStatus, Vec<Reason>, Vec<Judged<'a>>) {
    let judged: Vec<Judged> = members.iter().map(|n| judge(n)).collect();
    let size = stack::size(settings, judged.len());
    let mut verdicts = stack::capped_members(&judged, size, "Pacemaker (quorate)", serves);
    // Only fresh, trusted views that answered say what the cluster is.
    let views = stack::trusted_facts(&judged, |j| facts(j).filter(|f| f.reachable));
    verdicts.extend(split_verdicts(&views));
    if let Some((by, view)) = authority(&views) {
        // A member's own standby is on its row already; the service shows it once.
        let own: BTreeSet<(String, String)> = verdicts
            .iter()
            .map(|(_, r)| (r.code.clone(), r.message.clone()))
            .collect();
        verdicts.extend(
            node_verdicts(view, by)
                .into_iter()
                .filter(|(_, r)| !own.contains(&(r.code.clone(), r.message.clone()))),
        );
        verdicts.extend(resource_verdicts(view));
        verdicts.extend(failure_verdicts(view));
    }
    let (status, reasons) = stack::worst(verdicts);
    (status, reasons, judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::facts::{PcmkFailCount, PcmkFailedAction, PcmkNode};

    fn node(online: bool) -> PcmkNode {
        PcmkNode {
            online,
            ..PcmkNode::default()
        }
    }

    fn rsc(id: &str, clone: Option<&str>, on: Option<&str>) -> PcmkResource {
        PcmkResource {
            id: id.into(),
            parent: clone.map(str::to_string),
            cloned: clone.is_some(),
            agent: Some("ocf:pacemaker:Dummy".into()),
            role: if on.is_some() { "Started" } else { "Stopped" }.into(),
            active: on.is_some(),
            managed: true,
            nodes: on.into_iter().map(str::to_string).collect(),
            ..PcmkResource::default()
        }
    }

    /// The healthy pair as `me` sees it: DC pc2, `dummy` on pc1, the clone on both.
    fn healthy(me: &str) -> PacemakerFacts {
        let mut nodes = BTreeMap::new();
        nodes.insert("pc1".to_string(), node(true));
        nodes.insert(
            "pc2".to_string(),
            PcmkNode {
                is_dc: true,
                ..node(true)
            },
        );
        PacemakerFacts {
            reachable: true,
            me: Some(me.into()),
            with_quorum: Some(true),
            dc_present: Some(true),
            dc: Some("pc2".into()),
            maintenance_mode: Some(false),
            stonith_enabled: Some(false),
            nodes,
            resources: vec![
                rsc("dummy", None, Some("pc1")),
                rsc("dummy-c", Some("dummy-clone"), Some("pc1")),
                rsc("dummy-c", Some("dummy-clone"), Some("pc2")),
            ],
            ..PacemakerFacts::default()
        }
    }

    fn both(edit: impl Fn(&mut PacemakerFacts)) -> Vec<(&'static str, PacemakerFacts)> {
        ["pc1", "pc2"]
            .into_iter()
            .map(|me| {
                let mut f = healthy(me);
                edit(&mut f);
                (me, f)
            })
            .collect()
    }

    fn check(members: &[(&str, PacemakerFacts)]) -> (NodeStatus, Vec<Reason>) {
        let nodes = stack::test_members(members, |f| sr_protocol::report::Facts {
            pacemaker: Some(f),
            ..Default::default()
        });
        let refs: Vec<&NodeInput> = nodes.iter().collect();
        let (s, reasons, _) = rollup(&refs, None);
        (s, reasons)
    }

    fn codes(r: &[Reason]) -> Vec<&str> {
        r.iter().map(|r| r.code.as_str()).collect()
    }

    #[test]
    fn a_healthy_pair_is_ok_and_the_dc_is_the_authority() {
        let (s, r) = check(&both(|_| {}));
        assert_eq!((s, codes(&r)), (NodeStatus::Ok, vec![]));
        let a = healthy("pc1");
        let b = healthy("pc2");
        assert_eq!(authority(&[("n1", &a), ("n2", &b)]).unwrap().0, "n2");
    }

    #[test]
    fn no_quorum_anywhere_is_fail_and_on_one_member_degraded() {
        let (s, r) = check(&both(|f| f.with_quorum = Some(false)));
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes(&r).contains(&"quorum_lost"), "{r:?}");
        assert!(codes(&r).contains(&"pacemaker_no_quorum"), "{r:?}");
        let mut m = both(|_| {});
        m[0].1.with_quorum = Some(false);
        let (s, r) = check(&m);
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert_eq!(codes(&r), ["pacemaker_no_quorum"]);
    }

    #[test]
    fn a_stopped_resource_is_fail_unless_a_copy_still_runs() {
        let (s, r) = check(&both(|f| f.resources[0] = rsc("dummy", None, None)));
        assert_eq!(s, NodeStatus::Fail);
        assert_eq!(codes(&r), ["pacemaker_resource_stopped"]);
        assert_eq!(
            r[0].message,
            "dummy (ocf:pacemaker:Dummy) is stopped: it runs nowhere"
        );
        // One clone copy stopped: the other still runs.
        let (s, r) = check(&both(|f| {
            f.resources[2] = rsc("dummy-c", Some("dummy-clone"), None);
        }));
        assert_eq!(s, NodeStatus::Degraded);
        assert_eq!(
            r[0].message,
            "dummy-clone: 1 of 2 copies run on pc1 (1 stopped)"
        );
        // Both copies gone: Fail.
        let (s, r) = check(&both(|f| {
            f.resources[1].failed = true;
            f.resources[1].active = false;
            f.resources[2] = rsc("dummy-c", Some("dummy-clone"), None);
        }));
        assert_eq!(s, NodeStatus::Fail);
        assert_eq!(
            r[0].message,
            "dummy-clone: no copy runs (1 failed, 1 stopped)"
        );
        // Stopped on purpose, or unmanaged: not judged.
        let (s, _) = check(&both(|f| {
            f.resources[0] = rsc("dummy", None, None);
            f.resources[0].target_role = Some("Stopped".into());
        }));
        assert_eq!(s, NodeStatus::Ok);
    }

    #[test]
    fn standby_is_maintenance_never_fail_and_excuses_its_clone_copy() {
        let (s, r) = check(&both(|f| {
            f.nodes.get_mut("pc2").unwrap().standby = true;
            f.resources[2] = rsc("dummy-c", Some("dummy-clone"), None);
        }));
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert_eq!(codes(&r), ["maintenance"], "{r:?}");
        assert!(r[0].message.contains("pc2 is in standby"), "{r:?}");
        // On pc2's own row too.
        let f = {
            let mut f = healthy("pc2");
            f.nodes.get_mut("pc2").unwrap().standby = true;
            f
        };
        let v = member_verdicts(&f, "node-b");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].1.code, "maintenance");
        assert_eq!(v[0].0, NodeStatus::Degraded);
        // Standby by a failure is not an operator's: Degraded with its own code.
        let (_, r) = check(&both(|f| {
            let n = f.nodes.get_mut("pc2").unwrap();
            n.standby = true;
            n.standby_onfail = true;
        }));
        assert!(codes(&r).contains(&"pacemaker_standby_onfail"), "{r:?}");
        assert!(!codes(&r).contains(&"maintenance"), "{r:?}");
    }

    #[test]
    fn an_offline_or_unclean_node_is_degraded_while_quorum_holds() {
        let (s, r) = check(&[("pc1", {
            let mut f = healthy("pc1");
            f.dc = Some("pc1".into());
            f.nodes.get_mut("pc2").unwrap().online = false;
            f.nodes.get_mut("pc2").unwrap().unclean = true;
            f.resources[2] = rsc("dummy-c", Some("dummy-clone"), None);
            f
        })]);
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert_eq!(
            codes(&r),
            [
                "pacemaker_node_offline",
                "pacemaker_node_unclean",
                "pacemaker_resource_stopped"
            ]
        );
        assert_eq!(r[0].message, "pc2 is offline (seen by pc1)");
    }

    #[test]
    fn failures_name_resource_and_node() {
        let (s, r) = check(&both(|f| {
            f.failed_actions = vec![PcmkFailedAction {
                resource: "dummy".into(),
                task: "asyncmon".into(),
                node: "pc1".into(),
                reason: Some("Simulated failure".into()),
            }];
            f.fail_counts = vec![
                PcmkFailCount {
                    resource: "dummy".into(),
                    node: "pc1".into(),
                    count: 2,
                    threshold: Some(1_000_000),
                },
                PcmkFailCount {
                    resource: "dummy-c".into(),
                    node: "pc2".into(),
                    count: 1,
                    threshold: None,
                },
            ];
        }));
        assert_eq!(s, NodeStatus::Degraded);
        let msgs: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.code.as_str(), r.message.as_str()))
            .collect();
        assert_eq!(
            msgs,
            [
                (
                    "pacemaker_failed_action",
                    "dummy asyncmon failed on pc1: Simulated failure"
                ),
                ("pacemaker_fail_count", "dummy-c on pc2: fail count 1"),
            ]
        );
        assert_eq!(r[0].node.as_deref(), Some("pc1"));
    }

    #[test]
    fn two_quorate_partitions_are_a_split_brain() {
        // Each side alone, each the DC of its own partition, each seeing the other offline.
        let side = |me: &str, other: &str| {
            let mut f = healthy(me);
            f.dc = Some(me.into());
            f.nodes.get_mut(other).unwrap().online = false;
            f
        };
        let (s, r) = check(&[("pc1", side("pc1", "pc2")), ("pc2", side("pc2", "pc1"))]);
        assert_eq!(s, NodeStatus::Fail);
        let split: Vec<&str> = r
            .iter()
            .filter(|r| r.code == "pacemaker_split")
            .map(|r| r.message.as_str())
            .collect();
        assert_eq!(
            split,
            [
                "members with quorum name different DCs: pc1 (by pc1), pc2 (by pc2)",
                "pc1 sees pc2 offline while pc2 has quorum of its own",
                "pc2 sees pc1 offline while pc1 has quorum of its own",
            ]
        );
    }

    #[test]
    fn a_silent_member_is_degraded_while_the_other_serves() {
        let dead = PacemakerFacts {
            reachable: false,
            error: Some("status 102 Not connected".into()),
            me: Some("pc2".into()),
            ..PacemakerFacts::default()
        };
        let mut alive = healthy("pc1");
        alive.dc = Some("pc1".into());
        alive.nodes.get_mut("pc2").unwrap().online = false;
        alive.resources[2] = rsc("dummy-c", Some("dummy-clone"), None);
        let (s, r) = check(&[("pc1", alive), ("pc2", dead.clone())]);
        assert_eq!(s, NodeStatus::Degraded, "{r:?}");
        assert!(codes(&r).contains(&"pacemaker_unreachable"), "{r:?}");
        assert!(codes(&r).contains(&"pacemaker_node_offline"), "{r:?}");
        let (s, r) = check(&[("pc2", dead)]);
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes(&r).contains(&"quorum_lost"), "{r:?}");
    }
}
