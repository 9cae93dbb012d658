//! The report builder: from one cycle's probe results to the snapshot pushed to every
//! manager, the transition ring, and the exact body bytes sent to one manager.
//!
//! A snapshot is built once per cycle; the body is built per send, because two things in
//! it differ per manager and per attempt: the transitions that manager has not
//! acknowledged yet, and the sequence number (a retry is re-signed with a fresh seq, so
//! it is never a replay).

use crate::schedule::ProbeResult;
use sr_probes::merge_facts;
use sr_protocol::report::{
    AgentHealth, Extension, Facts, LegacyReport, ReportBody, ServiceDetail, ServiceEntry,
    Transition, EXTENSION_VERSION, MAX_SERVICES, MAX_TRANSITIONS,
};
use sr_protocol::{NodeStatus, Reason, ServiceStatus};
use std::collections::{BTreeMap, VecDeque};

/// Transitions kept for managers that were away. Older ones are dropped and counted.
pub const RING_CAPACITY: usize = 128;
/// Node-level reasons carried per report.
pub const MAX_REASONS: usize = 32;
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

const _: () = assert!(RING_CAPACITY <= MAX_TRANSITIONS);

/// What one cycle found, ready to be put in any manager's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub node_status: NodeStatus,
    pub reasons: Vec<Reason>,
    pub services: BTreeMap<String, ServiceEntry>,
    pub details: BTreeMap<String, ServiceDetail>,
    pub facts: Facts,
    pub cycle_ms: u64,
    /// True when the node's or any service's status differs from the previous cycle.
    pub changed: bool,
}

/// Whether a result belongs to a stack service (Galera, HAProxy, keepalived, ...): its
/// probe says so, or its finding carries a stack service's facts. Such a finding counts in
/// that service only (its `services` detail and its facts), never in the node's status.
pub fn in_stack_service(r: &ProbeResult) -> bool {
    sr_probes::stack_service_of(&r.probe).is_some()
        || sr_protocol::facts::StackService::ALL
            .iter()
            .any(|s| s.has_member(&r.finding.facts))
}

impl Snapshot {
    /// Folds the probe results of one cycle. The node is as bad as its worst probe of the
    /// host and of its Cloudify role; a stack service's probe (Galera on a broker node, an
    /// HAProxy on a manager) is judged in that service only, so it adds to `details` and
    /// `facts` but not to `node_status` or the node's `reasons`.
    pub fn from_results(results: &[ProbeResult], cycle_ms: u64) -> Self {
        let mut node_status = NodeStatus::Ok;
        let mut reasons = Vec::new();
        let mut services = BTreeMap::new();
        let mut details = BTreeMap::new();
        for r in results {
            if !in_stack_service(r) {
                node_status = node_status.max(r.finding.status);
                for reason in &r.finding.reasons {
                    if reasons.len() < MAX_REASONS {
                        reasons.push(reason.clone());
                    }
                }
            }
            let placeholder = legacy_placeholder(r);
            let entries = placeholder.as_ref().unwrap_or(&r.finding.services);
            let single = entries.len() == 1;
            for (name, entry) in entries {
                if services.len() >= MAX_SERVICES {
                    break;
                }
                // A probe's status is its worst service's; an Active service of a
                // multi-service probe is itself OK.
                let status = match entry.status {
                    ServiceStatus::Active if !single => NodeStatus::Ok,
                    ServiceStatus::Active => r.finding.status,
                    ServiceStatus::Inactive => r.finding.status.max(NodeStatus::Degraded),
                };
                let own: Vec<Reason> = if single {
                    r.finding.reasons.clone()
                } else {
                    r.finding
                        .reasons
                        .iter()
                        .filter(|x| x.message.contains(name.as_str()))
                        .cloned()
                        .collect()
                };
                let duration_ms = r.duration.as_millis() as u64;
                details.insert(
                    name.clone(),
                    ServiceDetail {
                        status,
                        reasons: own,
                        duration_ms,
                    },
                );
                services.insert(name.clone(), entry.clone());
            }
        }
        let findings: Vec<_> = results.iter().map(|r| r.finding.clone()).collect();
        Snapshot {
            node_status,
            reasons,
            services,
            details,
            facts: merge_facts(&findings),
            cycle_ms,
            changed: false,
        }
    }
}

/// The legacy service entry a probe that timed out or crashed (no service of its own)
/// must still put in the body: a 5.0.5 manager indexes `Patroni.extra_info.patroni_status`
/// on every db node and answers 500 without it, so the Patroni entry is sent Inactive with
/// an empty `patroni_status`, as the 5.0.5 reporter sent it. `None` for every other case.
fn legacy_placeholder(r: &ProbeResult) -> Option<BTreeMap<String, ServiceEntry>> {
    use sr_probes::TypedProbe;
    if !r.finding.services.is_empty() || r.probe != sr_probes::patroni::Patroni::KIND {
        return None;
    }
    let mut extra_info = serde_json::Map::new();
    extra_info.insert("patroni_status".into(), serde_json::Map::new().into());
    let entry = ServiceEntry {
        status: ServiceStatus::Inactive,
        is_remote: None,
        extra_info,
    };
    Some(BTreeMap::from([(
        sr_probes::patroni::SERVICE.to_string(),
        entry,
    )]))
}

/// Remembers the last statuses and keeps the bounded ring of transitions.
#[derive(Debug, Default)]
pub struct Tracker {
    last_node: Option<NodeStatus>,
    last_services: BTreeMap<String, NodeStatus>,
    ring: VecDeque<Transition>,
    dropped: u64,
}

impl Tracker {
    /// Records the transitions `snap` implies and marks it `changed`. `next_seq` hands
    /// out sequence numbers from the same counter reports use, so a manager that
    /// acknowledged report seq `s` has seen every transition below `s`.
    pub fn observe(&mut self, snap: &mut Snapshot, now_ms: i64, mut next_seq: impl FnMut() -> u64) {
        let mut changed = self.last_node.is_none();
        if let Some(prev) = self.last_node {
            if prev != snap.node_status {
                self.push(Transition {
                    seq: next_seq(),
                    at_ms: now_ms,
                    service: None,
                    from: prev,
                    to: snap.node_status,
                    reasons: snap.reasons.clone(),
                });
                changed = true;
            }
        }
        for (name, d) in &snap.details {
            match self.last_services.get(name) {
                Some(prev) if *prev != d.status => {
                    self.push(Transition {
                        seq: next_seq(),
                        at_ms: now_ms,
                        service: Some(name.clone()),
                        from: *prev,
                        to: d.status,
                        reasons: d.reasons.clone(),
                    });
                    changed = true;
                }
                None if self.last_node.is_some() => changed = true,
                _ => {}
            }
        }
        if self
            .last_services
            .keys()
            .any(|k| !snap.details.contains_key(k))
        {
            changed = true;
        }
        self.last_node = Some(snap.node_status);
        self.last_services = snap
            .details
            .iter()
            .map(|(k, d)| (k.clone(), d.status))
            .collect();
        snap.changed = changed;
    }

    fn push(&mut self, t: Transition) {
        if self.ring.len() == RING_CAPACITY {
            self.ring.pop_front();
            self.dropped += 1;
        }
        self.ring.push_back(t);
    }

    /// Transitions after `acked`, oldest first.
    pub fn since(&self, acked: u64) -> Vec<Transition> {
        self.ring
            .iter()
            .filter(|t| t.seq > acked)
            .cloned()
            .collect()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The node's identity and settings that go into every body.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node_name: String,
    pub private_ip: Option<String>,
    pub reporting_freq: u32,
    pub boot_id: String,
}

/// Builds the exact bytes of one report.
pub fn build_body(
    id: &Identity,
    snap: &Snapshot,
    seq: u64,
    now_unix: i64,
    transitions: Vec<Transition>,
    transitions_dropped: u64,
    agent_health: AgentHealth,
) -> Vec<u8> {
    let body = ReportBody {
        reporting_freq: id.reporting_freq,
        timestamp: sr_protocol::timestamp::format_legacy(now_unix)
            .unwrap_or_else(|_| "19700101000000+0000".into()),
        report: LegacyReport {
            status: snap.node_status.legacy(),
            services: snap.services.clone(),
        },
        extension: Some(Extension {
            version: EXTENSION_VERSION,
            node_status: snap.node_status,
            node_name: id.node_name.clone(),
            private_ip: id.private_ip.clone(),
            agent_version: AGENT_VERSION.to_string(),
            boot_id: id.boot_id.clone(),
            seq,
            reasons: snap.reasons.clone(),
            services: snap.details.clone(),
            facts: snap.facts.clone(),
            agent_health,
            transitions,
            transitions_dropped,
        }),
    };
    serde_json::to_vec(&body).expect("a report body always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_probes::Finding;
    use std::time::Duration;

    fn result(name: &str, status: NodeStatus, service: ServiceStatus) -> ProbeResult {
        let mut f = Finding::new(status);
        if status != NodeStatus::Ok {
            f.reasons.push(Reason::new("x", format!("{name} is down")));
        }
        f.services.insert(
            name.into(),
            ServiceEntry {
                status: service,
                is_remote: None,
                extra_info: Default::default(),
            },
        );
        ProbeResult {
            probe: name.into(),
            finding: f,
            duration: Duration::from_millis(3),
        }
    }

    fn id() -> Identity {
        Identity {
            node_name: "db1".into(),
            private_ip: None,
            reporting_freq: 5,
            boot_id: "b-1".into(),
        }
    }

    /// Issue 14, scope per service: on a broker node that also runs a Galera member, a
    /// failing Galera finding is judged in `galera` only. The node's status (and the legacy
    /// `report.status` a 5.0.5 manager reads) counts the host and RabbitMQ; the Galera
    /// finding still travels in its detail and its facts.
    #[test]
    fn a_stack_probe_counts_in_its_service_not_in_the_node_status() {
        let mut galera = result("MariaDB Galera", NodeStatus::Fail, ServiceStatus::Inactive);
        galera.probe = "galera".into();
        galera.finding.facts.galera = Some(Default::default());
        galera.finding.reasons = vec![Reason::new("galera_non_primary", "non-Primary")];
        let mut haproxy = result("HAProxy", NodeStatus::Degraded, ServiceStatus::Active);
        haproxy.probe = "haproxy".into();
        let results = [
            result("RabbitMQ", NodeStatus::Ok, ServiceStatus::Active),
            galera,
            haproxy,
        ];
        let snap = Snapshot::from_results(&results, 7);
        assert_eq!(snap.node_status, NodeStatus::Ok);
        assert!(snap.reasons.is_empty(), "{:?}", snap.reasons);
        assert_eq!(snap.details["MariaDB Galera"].status, NodeStatus::Fail);
        assert_eq!(
            snap.details["MariaDB Galera"].reasons[0].code,
            "galera_non_primary"
        );
        assert_eq!(snap.details["HAProxy"].status, NodeStatus::Degraded);
        assert!(snap.facts.galera.is_some());
        let body = build_body(
            &id(),
            &snap,
            1,
            1_581_336_930,
            vec![],
            0,
            Default::default(),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["report"]["status"], "OK");
        assert_eq!(v["status_reporter"]["node_status"], "OK");
        assert_eq!(
            v["report"]["services"]["MariaDB Galera"]["status"], "Inactive",
            "the legacy entry is unchanged"
        );

        // The host's and the role's own probes still count, stack probes or not.
        let mut with_host = results.to_vec();
        with_host.push(result(
            "RabbitMQ ports",
            NodeStatus::Fail,
            ServiceStatus::Inactive,
        ));
        let snap = Snapshot::from_results(&with_host, 7);
        assert_eq!(snap.node_status, NodeStatus::Fail);
        assert_eq!(snap.reasons.len(), 1, "{:?}", snap.reasons);
        assert!(snap.reasons[0].message.contains("RabbitMQ ports"));
    }

    #[test]
    fn the_body_is_legacy_compatible_and_carries_degraded_in_the_extension() {
        let snap = Snapshot::from_results(
            &[
                result("Patroni", NodeStatus::Ok, ServiceStatus::Active),
                result("Etcd", NodeStatus::Degraded, ServiceStatus::Inactive),
            ],
            7,
        );
        let bytes = build_body(
            &id(),
            &snap,
            9,
            1_581_336_930,
            vec![],
            0,
            AgentHealth::default(),
        );
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["reporting_freq"], 5);
        assert_eq!(v["timestamp"], "20200210121530+0000");
        assert_eq!(
            v["report"]["status"], "OK",
            "Degraded is OK on the legacy wire"
        );
        assert_eq!(v["report"]["services"]["Etcd"]["status"], "Inactive");
        assert_eq!(v["report"]["services"]["Patroni"]["status"], "Active");
        assert_eq!(v["status_reporter"]["node_status"], "Degraded");
        assert_eq!(v["status_reporter"]["seq"], 9);
        assert_eq!(v["status_reporter"]["services"]["Etcd"]["duration_ms"], 3);
        // The collector's own decoder accepts it.
        let decoded = ReportBody::decode(&bytes).unwrap();
        assert_eq!(decoded.body.node_status(), NodeStatus::Degraded);
    }

    #[test]
    fn transitions_are_recorded_once_and_the_ring_counts_what_it_drops() {
        let mut t = Tracker::default();
        let mut seq = 0u64;
        let mut next = || {
            seq += 1;
            seq
        };
        let ok =
            || Snapshot::from_results(&[result("Etcd", NodeStatus::Ok, ServiceStatus::Active)], 1);
        let bad = || {
            Snapshot::from_results(
                &[result("Etcd", NodeStatus::Fail, ServiceStatus::Inactive)],
                1,
            )
        };
        let mut s = ok();
        t.observe(&mut s, 0, &mut next);
        assert!(s.changed, "the first cycle is pushed at once");
        let mut s = ok();
        t.observe(&mut s, 1, &mut next);
        assert!(!s.changed);
        assert!(t.since(0).is_empty());
        let mut s = bad();
        t.observe(&mut s, 2, &mut next);
        assert!(s.changed);
        let got = t.since(0);
        assert_eq!(got.len(), 2, "node and service each changed: {got:?}");
        assert_eq!(got[0].service, None);
        assert_eq!(got[1].service.as_deref(), Some("Etcd"));
        assert_eq!((got[1].from, got[1].to), (NodeStatus::Ok, NodeStatus::Fail));
        assert_eq!(t.since(got[0].seq).len(), 1);
        for i in 0..RING_CAPACITY {
            let mut s = if i % 2 == 0 { ok() } else { bad() };
            t.observe(&mut s, 3 + i as i64, &mut next);
        }
        assert_eq!(t.since(0).len(), RING_CAPACITY);
        assert_eq!(
            t.dropped(),
            2 * (RING_CAPACITY as u64 + 1) - RING_CAPACITY as u64
        );
    }

    #[test]
    fn a_timed_out_patroni_probe_still_sends_an_empty_patroni_status() {
        // 5.0.5's `_get_db_cluster_status` indexes `patroni_status` on every db node.
        let timed_out = ProbeResult {
            probe: "patroni".into(),
            finding: Finding::fail(
                sr_protocol::reasons::PROBE_TIMEOUT,
                "probe patroni did not finish",
            ),
            duration: Duration::from_millis(3),
        };
        let snap = Snapshot::from_results(&[timed_out], 1);
        let patroni = &snap.services["Patroni"];
        assert_eq!(patroni.status, ServiceStatus::Inactive);
        assert_eq!(patroni.extra_info["patroni_status"], serde_json::json!({}));
        assert_eq!(snap.details["Patroni"].status, NodeStatus::Fail);
        assert_eq!(snap.details["Patroni"].reasons[0].code, "probe_timeout");
        // Another kind's timeout adds no legacy entry of its own.
        let other = ProbeResult {
            probe: "etcd".into(),
            finding: Finding::fail(sr_protocol::reasons::PROBE_TIMEOUT, "x"),
            duration: Duration::from_millis(3),
        };
        assert!(Snapshot::from_results(&[other], 1).services.is_empty());
    }
}
