//! The `vip` rule (keepalived): per VRRP instance exactly one MASTER is OK, none is Fail
//! (`vip_no_master`), two or more are a split brain, Fail (`vip_split_brain`); per VIP
//! exactly one node holding it is OK, none Fail, two or more Fail (a SIGKILLed keepalived
//! leaves its VIP on the interface while the peer takes it too: lab.md §H). A node with
//! an instance in FAULT is Degraded (`vip_fault`).
//!
//! [`rollup`] composes [`member_verdicts`] (each node's own facts: keepalived silent Fail,
//! FAULT Degraded), [`instance_verdicts`] and [`vip_verdicts`]. A member whose keepalived
//! is silent (or whose agent is) is Fail on its own row, but counts as Degraded for the
//! service while another member answers: the VIP is served, only its redundancy is gone.

use super::stack::{self, Judged, ServicePolicy, Verdict};
use super::NodeInput;
use sr_protocol::facts::VipFacts;
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, Reason};
use std::collections::BTreeSet;

/// What one keepalived node's facts say of itself ([`VipFacts::own_verdicts`]).
pub fn member_verdicts(f: &VipFacts, node: &str) -> Vec<Verdict> {
    f.own_verdicts()
        .into_iter()
        .map(|(status, code, message)| (status, code.reason(message).on_node(node)))
        .collect()
}

/// Per instance any answering member names: exactly one MASTER.
pub fn instance_verdicts(members: &[(&str, &VipFacts)]) -> Vec<Verdict> {
    let names: BTreeSet<&str> = members
        .iter()
        .filter(|(_, f)| f.reachable)
        .flat_map(|(_, f)| f.instances.keys().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for name in names {
        let state_on = |node: &str, f: &VipFacts| {
            f.instances
                .get(name)
                .map_or(format!("{node} -"), |i| format!("{node} {}", i.state))
        };
        // Named in order, so a message is the same whatever order the members come in.
        let masters: BTreeSet<&str> = members
            .iter()
            .filter(|(_, f)| f.reachable)
            .filter(|(_, f)| f.instances.get(name).is_some_and(|i| i.state == "MASTER"))
            .map(|(n, _)| *n)
            .collect();
        match masters.len() {
            1 => {}
            0 => out.push((
                NodeStatus::Fail,
                codes::VIP_NO_MASTER.reason(format!(
                    "{name}: no MASTER ({})",
                    members
                        .iter()
                        .map(|(n, f)| state_on(n, f))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            )),
            _ => out.push((
                NodeStatus::Fail,
                codes::VIP_SPLIT_BRAIN.reason(format!("{name}: MASTER on {}", join(&masters))),
            )),
        }
    }
    out
}

/// Per VIP any member names or holds: exactly one holder. A member whose keepalived is
/// silent still counts as a holder: its address is on the wire.
pub fn vip_verdicts(members: &[(&str, &VipFacts)]) -> Vec<Verdict> {
    let vips: BTreeSet<&str> = members
        .iter()
        .flat_map(|(_, f)| {
            f.instances
                .values()
                .flat_map(|i| i.vips.iter())
                .chain(f.held.iter())
                .map(String::as_str)
        })
        .collect();
    let mut out = Vec::new();
    for vip in vips {
        let holders: BTreeSet<&str> = members
            .iter()
            .filter(|(_, f)| f.holds(vip))
            .map(|(n, _)| *n)
            .collect();
        match holders.len() {
            1 => {}
            0 => out.push((
                NodeStatus::Fail,
                codes::VIP_NO_MASTER.reason(format!("VIP {vip}: held by no node")),
            )),
            _ => out.push((
                NodeStatus::Fail,
                codes::VIP_SPLIT_BRAIN.reason(format!("VIP {vip}: held by {}", join(&holders))),
            )),
        }
    }
    out
}

fn join(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}

fn judge(node: &NodeInput) -> Judged<'_> {
    stack::judge(node, |f| f.vip.as_ref(), member_verdicts, VipFacts::role)
}

fn answering(j: &Judged) -> bool {
    stack::standing(j.node).is_none() && facts(j).is_some_and(|f| f.reachable)
}

fn facts<'a>(j: &Judged<'a>) -> Option<&'a VipFacts> {
    j.node.facts.as_ref().and_then(|f| f.vip.as_ref())
}

/// Status and reasons of the `vip` service, and each member as judged.
pub fn rollup<'a>(
    members: &[&'a NodeInput],
    settings: Option<&ServicePolicy>,
) -> (NodeStatus, Vec<Reason>, Vec<Judged<'a>>) {
    let judged: Vec<Judged> = members.iter().map(|n| judge(n)).collect();
    let size = stack::size(settings, judged.len());
    let mut verdicts = stack::capped_members(&judged, size, "keepalived", answering);
    // Only fresh, trusted facts say who is MASTER and who holds a VIP.
    let fresh = stack::trusted_facts(&judged, facts);
    verdicts.extend(instance_verdicts(&fresh));
    verdicts.extend(vip_verdicts(&fresh));
    let (status, reasons) = stack::worst(verdicts);
    (status, reasons, judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::facts::VrrpInstance;

    const VIP: &str = "10.0.0.100";

    fn node(state: &str, holds: bool) -> VipFacts {
        VipFacts {
            reachable: true,
            instances: [(
                "VI_1".to_string(),
                VrrpInstance {
                    state: state.into(),
                    priority: Some(100),
                    vips: vec![VIP.into()],
                },
            )]
            .into(),
            held: if holds { vec![VIP.into()] } else { vec![] },
            ..VipFacts::default()
        }
    }

    fn dead(holds: bool) -> VipFacts {
        VipFacts {
            reachable: false,
            error: Some("pid file: No such file".into()),
            held: if holds { vec![VIP.into()] } else { vec![] },
            ..VipFacts::default()
        }
    }

    fn check(members: &[(&str, VipFacts)]) -> (NodeStatus, Vec<String>) {
        let nodes = stack::test_members(members, |f| sr_protocol::report::Facts {
            vip: Some(f),
            ..Default::default()
        });
        let refs: Vec<&NodeInput> = nodes.iter().collect();
        let (s, reasons, _) = rollup(&refs, None);
        (s, reasons.into_iter().map(|r| r.code).collect())
    }

    #[test]
    fn exactly_one_master_holding_the_vip_is_ok() {
        assert_eq!(
            check(&[("a", node("MASTER", true)), ("b", node("BACKUP", false))]),
            (NodeStatus::Ok, vec![])
        );
    }

    #[test]
    fn no_master_is_fail() {
        let (s, codes) = check(&[("a", node("BACKUP", false)), ("b", node("BACKUP", false))]);
        assert_eq!(s, NodeStatus::Fail);
        assert_eq!(codes, ["vip_no_master", "vip_no_master"]);
    }

    #[test]
    fn two_masters_or_two_holders_are_split_brain() {
        let (s, codes) = check(&[("b", node("MASTER", true)), ("a", node("MASTER", true))]);
        assert_eq!(s, NodeStatus::Fail);
        assert_eq!(codes, ["vip_split_brain", "vip_split_brain"]);
        let refs = [("b", &node("MASTER", true)), ("a", &node("MASTER", true))];
        let messages: Vec<String> = instance_verdicts(&refs)
            .into_iter()
            .chain(vip_verdicts(&refs))
            .map(|(_, r)| r.message)
            .collect();
        assert_eq!(
            messages,
            ["VI_1: MASTER on a, b", "VIP 10.0.0.100: held by a, b"]
        );
        // A SIGKILLed keepalived left its VIP behind while the peer took it: split brain.
        let (s, codes) = check(&[("a", dead(true)), ("b", node("MASTER", true))]);
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes.contains(&"vip_split_brain".to_string()), "{codes:?}");
    }

    #[test]
    fn a_fault_node_is_degraded_and_a_dead_backup_too() {
        assert_eq!(
            check(&[("a", node("MASTER", true)), ("b", node("FAULT", false))]),
            (NodeStatus::Degraded, vec!["vip_fault".into()])
        );
        assert_eq!(
            check(&[("a", dead(false)), ("b", node("MASTER", true))]),
            (NodeStatus::Degraded, vec!["vip_unreachable".into()])
        );
        // Its own row still says Fail; and with no member answering, the service is Fail.
        let n = stack::test_member(
            "a",
            sr_protocol::report::Facts {
                vip: Some(dead(false)),
                ..Default::default()
            },
        );
        assert_eq!(judge(&n).status, NodeStatus::Fail);
        let (s, codes) = check(&[("a", dead(false)), ("b", dead(false))]);
        assert_eq!(s, NodeStatus::Fail);
        assert!(codes.contains(&"quorum_lost".to_string()), "{codes:?}");
    }

    #[test]
    fn a_stale_member_names_no_master() {
        let mut stale = stack::test_member(
            "a",
            sr_protocol::report::Facts {
                vip: Some(node("MASTER", true)),
                ..Default::default()
            },
        );
        stale.fresh = false;
        let fresh = stack::test_member(
            "b",
            sr_protocol::report::Facts {
                vip: Some(node("BACKUP", false)),
                ..Default::default()
            },
        );
        let (s, reasons, _) = rollup(&[&stale, &fresh], None);
        assert_eq!(s, NodeStatus::Fail);
        assert!(
            reasons.iter().any(|r| r.code == "vip_no_master"),
            "{reasons:?}"
        );
    }
}
