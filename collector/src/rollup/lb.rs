//! The `lb` rule (HAProxy): per backend, every server up is OK, some down is Degraded
//! naming them, none up is Fail; a server an operator put in MAINT or DRAIN is shown as
//! such (Degraded). Each HAProxy node judges from its own `show stat`; a backend is judged
//! on every node that has it, so a server one node cannot reach is named with that node.
//!
//! [`rollup`] composes [`member_verdicts`] (unreachable stats socket: Fail) with the
//! per-backend rule [`backend_verdicts`]; the worst member status is the service's, except
//! that one unreachable or silent HAProxy out of several is Degraded while another serves.

use super::stack::{self, Judged, ServicePolicy, Verdict};
use super::NodeInput;
use sr_protocol::facts::{LbBackend, LbFacts};
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, Reason};

/// One backend as one node sees it ([`LbBackend::verdicts`], which the agent's probe
/// reads too), each reason naming the node.
pub fn backend_verdicts(name: &str, b: &LbBackend, node: &str) -> Vec<Verdict> {
    tag(b.verdicts(name), node)
}

/// What one HAProxy node's facts say ([`LbFacts::own_verdicts`]).
pub fn member_verdicts(f: &LbFacts, node: &str) -> Vec<Verdict> {
    tag(f.own_verdicts(), node)
}

fn tag(v: Vec<(NodeStatus, codes::ReasonCode, String)>, node: &str) -> Vec<Verdict> {
    v.into_iter()
        .map(|(status, code, message)| (status, code.reason(message).on_node(node)))
        .collect()
}

fn judge(node: &NodeInput) -> Judged<'_> {
    stack::judge(node, |f| f.lb.as_ref(), member_verdicts, |_| None)
}

/// Status and reasons of the `lb` service, and each member as judged.
pub fn rollup<'a>(
    members: &[&'a NodeInput],
    settings: Option<&ServicePolicy>,
) -> (NodeStatus, Vec<Reason>, Vec<Judged<'a>>) {
    let judged: Vec<Judged> = members.iter().map(|n| judge(n)).collect();
    let size = stack::size(settings, judged.len());
    // A backend is down for the clients of the node that sees it down; with several
    // HAProxy nodes behind a VIP, one that cannot serve (or is silent) leaves the others.
    let verdicts = stack::capped_members(&judged, size, "HAProxy", is_serving);
    let (status, reasons) = stack::worst(verdicts);
    (status, reasons, judged)
}

fn is_serving(j: &Judged) -> bool {
    stack::standing(j.node).is_none()
        && j.node
            .facts
            .as_ref()
            .and_then(|f| f.lb.as_ref())
            .is_some_and(|f| f.reachable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::facts::LbServer;

    fn backend(servers: &[(&str, &str)]) -> LbBackend {
        LbBackend {
            servers: servers
                .iter()
                .map(|(n, s)| {
                    (
                        n.to_string(),
                        LbServer {
                            status: s.to_string(),
                            check_status: None,
                            last_change_s: None,
                        },
                    )
                })
                .collect(),
        }
    }

    fn check(servers: &[(&str, &str)]) -> (NodeStatus, Vec<String>) {
        let (s, reasons) = stack::worst(backend_verdicts("api", &backend(servers), "lb1"));
        (s, reasons.into_iter().map(|r| r.code).collect())
    }

    #[test]
    fn per_backend_all_up_some_down_none_up() {
        assert_eq!(
            check(&[("a", "UP"), ("b", "UP 1/3")]),
            (NodeStatus::Ok, vec![])
        );
        assert_eq!(
            check(&[("a", "UP"), ("b", "DOWN")]),
            (NodeStatus::Degraded, vec!["lb_server_down".into()])
        );
        assert_eq!(
            check(&[("a", "DOWN"), ("b", "DOWN 1/2")]),
            (NodeStatus::Fail, vec!["lb_backend_down".into()])
        );
        // MAINT/DRAIN are shown as such; none serving is still Fail.
        assert_eq!(
            check(&[("a", "UP"), ("b", "MAINT"), ("c", "DRAIN")]),
            (NodeStatus::Degraded, vec!["lb_server_maint".into()])
        );
        assert_eq!(check(&[("a", "MAINT")]).0, NodeStatus::Fail);
        // HAProxy appends the check's progress: `DRAIN 1/2` is still an operator's drain.
        assert_eq!(
            check(&[("a", "UP"), ("b", "DRAIN 1/2"), ("c", "MAINT (via x/y)")]),
            (NodeStatus::Degraded, vec!["lb_server_maint".into()])
        );
    }

    #[test]
    fn an_unreachable_stats_socket_is_fail() {
        let f = LbFacts {
            reachable: false,
            error: Some("connect: No such file".into()),
            ..LbFacts::default()
        };
        let v = member_verdicts(&f, "lb1");
        assert_eq!(v[0].0, NodeStatus::Fail);
        assert_eq!(v[0].1.code, "lb_unreachable");
    }
}
