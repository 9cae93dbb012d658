//! The `search` rule (OpenSearch): the cluster's colour, its node count against the
//! configured size, and one cluster behind every member.
//!
//! A member is judged by its own node only ([`member_verdicts`]: OpenSearch not answering
//! the health request, or refusing the probe's credentials, is Fail); one such member of
//! several is Degraded while another serves, through [`stack::capped_members`]. The
//! cluster-wide answers are judged once for the service, from the members that serve:
//! - [`colour`]: red Fail, yellow Degraded naming the unassigned shards, and which members
//!   see it (every member asks the same cluster, so one reason, not one per node);
//! - [`node_count`]: fewer nodes in the cluster than configured (`size`) or than members
//!   reporting, Degraded;
//! - [`one_cluster`]: members reporting different cluster names or UUIDs are two clusters,
//!   Fail.

use super::stack::{self, Judged, ServicePolicy, Verdict};
use super::NodeInput;
use sr_protocol::facts::SearchFacts;
use sr_protocol::reasons as codes;
use sr_protocol::{NodeStatus, Reason};
use std::collections::BTreeMap;

/// What one member's facts say of that node ([`SearchFacts::node_verdicts`]).
pub fn member_verdicts(f: &SearchFacts, node: &str) -> Vec<Verdict> {
    stack::tagged(f.node_verdicts(), node)
}

fn judge(node: &NodeInput) -> Judged<'_> {
    stack::judge(
        node,
        |f| f.search.as_ref(),
        member_verdicts,
        SearchFacts::role,
    )
}

fn facts<'a>(j: &Judged<'a>) -> Option<&'a SearchFacts> {
    j.node.facts.as_ref()?.search.as_ref()
}

/// Fresh, trusted members whose OpenSearch answered, with their facts.
fn serving<'a>(judged: &'a [Judged<'a>]) -> Vec<(&'a str, &'a SearchFacts)> {
    stack::trusted_facts(judged, |j| facts(j).filter(|f| f.reachable))
}

fn is_serving(j: &Judged) -> bool {
    stack::standing(j.node).is_none() && facts(j).is_some_and(|f| f.reachable)
}

/// The cluster's colour as the serving members see it: each distinct verdict once, naming
/// the members that see it. Members see one cluster state, but a member that lags behind
/// the elected manager can see another for a moment; the worst is shown.
pub fn colour(serving: &[(&str, &SearchFacts)]) -> Vec<Verdict> {
    type Seen<'a> = (codes::ReasonCode, Vec<&'a str>);
    let mut seen: BTreeMap<(NodeStatus, &str, String), Seen> = BTreeMap::new();
    for (name, f) in serving {
        for (status, code, message) in f.cluster_verdicts() {
            seen.entry((status, code.code, message))
                .or_insert_with(|| (code, Vec::new()))
                .1
                .push(name);
        }
    }
    seen.into_iter()
        .map(|((status, _, message), (code, mut names))| {
            names.sort_unstable();
            let message = format!("{message} (seen by {})", names.join(", "));
            (status, code.reason(message))
        })
        .collect()
}

/// Fewer nodes in the cluster (the largest `number_of_nodes` a serving member reports)
/// than `size`: Degraded, naming the nodes `_cat/nodes` lists.
pub fn node_count(serving: &[(&str, &SearchFacts)], size: usize) -> Option<Verdict> {
    let (_, f) = serving
        .iter()
        .filter(|(_, f)| f.number_of_nodes.is_some())
        .max_by_key(|(_, f)| f.number_of_nodes)?;
    let seen = f.number_of_nodes? as usize;
    (seen < size).then(|| {
        let names: Vec<&str> = f.nodes.keys().map(String::as_str).collect();
        let listed = if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        };
        (
            NodeStatus::Degraded,
            codes::SEARCH_NODES_MISSING.reason(format!(
                "cluster {} has {seen} of {size} nodes{listed}",
                f.cluster()
            )),
        )
    })
}

/// Serving members that name different clusters (by name, or by UUID where both know
/// it) are in two clusters: Fail, naming each cluster's members.
pub fn one_cluster(serving: &[(&str, &SearchFacts)]) -> Option<Verdict> {
    let mut clusters: BTreeMap<(String, &str), Vec<&str>> = BTreeMap::new();
    for (name, f) in serving {
        let uuid = f.cluster_uuid.as_deref().unwrap_or("?");
        clusters
            .entry((f.cluster().to_string(), uuid))
            .or_default()
            .push(name);
    }
    let names: std::collections::BTreeSet<&str> =
        clusters.keys().map(|(n, _)| n.as_str()).collect();
    let uuids: std::collections::BTreeSet<&str> = clusters
        .keys()
        .map(|(_, u)| *u)
        .filter(|u| *u != "?")
        .collect();
    (names.len() > 1 || uuids.len() > 1).then(|| {
        let groups: Vec<String> = clusters
            .iter()
            .map(|((n, u), members)| format!("{n} ({u}): {}", members.join(", ")))
            .collect();
        (
            NodeStatus::Fail,
            codes::SEARCH_SPLIT.reason(format!(
                "members report {} clusters: {}",
                clusters.len(),
                groups.join("; ")
            )),
        )
    })
}

/// Status and reasons of the `search` service, and each member as judged.
pub fn rollup<'a>(
    members: &[&'a NodeInput],
    settings: Option<&ServicePolicy>,
) -> (NodeStatus, Vec<Reason>, Vec<Judged<'a>>) {
    let judged: Vec<Judged> = members.iter().map(|n| judge(n)).collect();
    let size = stack::size(settings, judged.len());
    let mut verdicts = stack::capped_members(&judged, size, "OpenSearch", is_serving);
    let serving = serving(&judged);
    verdicts.extend(colour(&serving));
    verdicts.extend(node_count(&serving, size));
    verdicts.extend(one_cluster(&serving));
    let (status, reasons) = stack::worst(verdicts);
    (status, reasons, judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_protocol::facts::StackService;
    use sr_protocol::report::Facts;

    fn green(name: &str) -> SearchFacts {
        SearchFacts {
            reachable: true,
            node_name: Some(name.into()),
            cluster_name: Some("automate".into()),
            cluster_uuid: Some("u1".into()),
            status: Some("green".into()),
            timed_out: Some(false),
            number_of_nodes: Some(3),
            number_of_data_nodes: Some(3),
            unassigned_shards: Some(0),
            active_shards_percent: Some(100.0),
            nodes: ["os1", "os2", "os3"]
                .iter()
                .map(|n| (n.to_string(), "dimr".to_string()))
                .collect(),
            cluster_manager: Some("os1".into()),
            ..SearchFacts::default()
        }
    }

    fn check(members: Vec<SearchFacts>, size: u32) -> (NodeStatus, Vec<String>, Vec<Reason>) {
        let facts = members
            .into_iter()
            .map(|f| Facts {
                search: Some(f),
                ..Facts::default()
            })
            .collect();
        let s = stack::test_view(StackService::Search, size, "os", facts);
        let codes = s.reasons.iter().map(|r| r.code.clone()).collect();
        (s.status, codes, s.reasons)
    }

    fn with(name: &str, f: impl FnOnce(&mut SearchFacts)) -> SearchFacts {
        let mut x = green(name);
        f(&mut x);
        x
    }

    #[test]
    fn green_with_every_node_is_ok() {
        let (s, c, _) = check(vec![green("os1"), green("os2"), green("os3")], 3);
        assert_eq!((s, c), (NodeStatus::Ok, vec![]));
    }

    #[test]
    fn yellow_is_degraded_once_naming_the_shards_and_red_is_fail() {
        let yellow = |n| {
            with(n, |f| {
                f.status = Some("yellow".into());
                f.unassigned_shards = Some(5);
                f.active_shards_percent = Some(50.0);
            })
        };
        let (s, c, r) = check(vec![yellow("os1"), yellow("os2"), yellow("os3")], 3);
        assert_eq!(
            (s, c),
            (NodeStatus::Degraded, vec!["search_yellow".to_string()])
        );
        assert!(
            r[0].message.contains("5 unassigned shards"),
            "{}",
            r[0].message
        );
        assert!(
            r[0].message.contains("seen by os1, os2, os3"),
            "{}",
            r[0].message
        );

        let red = with("os1", |f| f.status = Some("red".into()));
        let (s, c, _) = check(vec![red, green("os2"), green("os3")], 3);
        assert_eq!((s, c), (NodeStatus::Fail, vec!["search_red".to_string()]));
    }

    #[test]
    fn fewer_nodes_than_configured_is_degraded() {
        let two = |n| with(n, |f| f.number_of_nodes = Some(2));
        let (s, c, _) = check(vec![two("os1"), two("os2")], 3);
        assert_eq!(
            (s, c),
            (
                NodeStatus::Degraded,
                vec!["search_nodes_missing".to_string()]
            )
        );
    }

    #[test]
    fn one_unreachable_member_of_three_is_degraded_all_is_fail() {
        let down = || SearchFacts {
            reachable: false,
            error: Some("cannot connect: Connection refused".into()),
            ..SearchFacts::default()
        };
        let (s, c, _) = check(vec![green("os1"), green("os2"), down()], 3);
        assert_eq!(
            (s, c),
            (NodeStatus::Degraded, vec!["search_unreachable".to_string()])
        );
        let (s, c, _) = check(vec![down(), down()], 2);
        assert_eq!(s, NodeStatus::Fail);
        assert!(c.contains(&"quorum_lost".to_string()), "{c:?}");
    }

    #[test]
    fn two_cluster_names_or_uuids_are_fail() {
        let other = with("os3", |f| f.cluster_uuid = Some("u2".into()));
        let (s, c, r) = check(vec![green("os1"), green("os2"), other], 3);
        assert_eq!((s, c), (NodeStatus::Fail, vec!["search_split".to_string()]));
        assert!(r[0].message.contains("os3"), "{}", r[0].message);
        let renamed = with("os2", |f| f.cluster_name = Some("other".into()));
        assert_eq!(check(vec![green("os1"), renamed], 2).0, NodeStatus::Fail);
    }

    #[test]
    fn an_unknown_colour_is_never_ok() {
        let odd = with("os1", |f| f.status = Some("purple".into()));
        assert_eq!(check(vec![odd], 1).0, NodeStatus::Fail);
    }
}
