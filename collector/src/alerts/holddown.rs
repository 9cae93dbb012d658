//! The hold-down: which status changes are worth telling the sinks about. Pure: callers
//! pass what the view shows and `now`; nothing here reads a clock or does I/O.
//!
//! Per target (a node in a service, or a service) it keeps what the sinks were last told
//! (`notified`) and what the view shows (`seen`, since when). A change is let through
//! when `seen` has differed from `notified` for the whole hold-down, so a flap that
//! reverts within it sends nothing, and a status that changes again restarts the wait.
//!
//! Maintenance: while a target is in maintenance nothing is let through and its wait
//! restarts on every look, so when the window ends the target is judged afresh: still
//! not what the sinks last heard after one more hold-down, and the change goes out then
//! (recovered during the window: the resolution; still bad: the alert).
//!
//! Not alert-worthy, recorded silently: a target first seen OK (a new node, or every OK
//! target after a collector start), and an OK target leaving the view. A target first seen
//! not OK goes out with `from: None` (the collector had no earlier status for it).

use sr_protocol::{NodeStatus, Reason};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Node,
    Service,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Service => "service",
        }
    }
}

/// A node's row in one service, or a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub kind: Kind,
    pub service: String,
    /// The node's row name in the service; `None` for a service.
    pub node: Option<String>,
}

impl Target {
    /// The node's name for a node, the service's for a service.
    pub fn name(&self) -> &str {
        self.node.as_deref().unwrap_or(&self.service)
    }
}

/// One target as the view shows it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub target: Target,
    pub status: NodeStatus,
    pub reasons: Vec<Reason>,
    pub maintenance: bool,
}

/// A change the hold-down let through. `None`: not in the view (first seen, or gone).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub target: Target,
    pub from: Option<NodeStatus>,
    pub to: Option<NodeStatus>,
    /// The reasons the view shows for the target when the change is let through.
    pub reasons: Vec<Reason>,
    /// When the view first showed `to` (Unix ms, the collector's clock).
    pub at_ms: i64,
}

impl Change {
    /// Whether the target is now in trouble (an alert), rather than recovered or gone.
    pub fn firing(&self) -> bool {
        matches!(self.to, Some(NodeStatus::Degraded | NodeStatus::Fail))
    }
}

#[derive(Debug)]
struct Entry {
    notified: Option<NodeStatus>,
    seen: Option<NodeStatus>,
    seen_since_ms: i64,
    /// The hold-down runs from here: when `seen` last changed or the target was last in
    /// maintenance.
    waiting_since: Instant,
    reasons: Vec<Reason>,
}

/// The hold-down state of every target in view (and of targets that left it while their
/// last notified status was not OK, until their leaving is let through).
#[derive(Debug)]
pub struct HoldDown {
    hold: Duration,
    entries: BTreeMap<Target, Entry>,
}

impl HoldDown {
    pub fn new(hold: Duration) -> HoldDown {
        HoldDown {
            hold,
            entries: BTreeMap::new(),
        }
    }

    /// Targets whose view differs from what the sinks last heard (waiting out the
    /// hold-down or a maintenance window).
    pub fn pending(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.seen != e.notified)
            .count()
    }

    /// Takes the whole view at `now` (a target missing from `seen` has left it) and
    /// returns the changes to send, in target order.
    pub fn observe(&mut self, now: Instant, now_ms: i64, seen: Vec<Observation>) -> Vec<Change> {
        let mut maintenance = BTreeMap::new();
        for o in seen {
            let e = self.entries.entry(o.target.clone()).or_insert(Entry {
                notified: None,
                seen: None,
                seen_since_ms: now_ms,
                waiting_since: now,
                reasons: Vec::new(),
            });
            note(e, Some(o.status), o.reasons, now, now_ms);
            maintenance.insert(o.target, o.maintenance);
        }
        for (t, e) in self.entries.iter_mut() {
            if !maintenance.contains_key(t) {
                note(e, None, Vec::new(), now, now_ms);
            }
        }
        let mut out = Vec::new();
        for (t, e) in self.entries.iter_mut() {
            let in_maintenance = maintenance.get(t).copied().unwrap_or(false);
            if let Some(c) = decide(t, e, in_maintenance, now, self.hold) {
                out.push(c);
            }
        }
        self.entries
            .retain(|_, e| e.seen.is_some() || e.notified.is_some());
        out
    }
}

/// Records what the view shows; a new status restarts the wait.
fn note(
    e: &mut Entry,
    status: Option<NodeStatus>,
    reasons: Vec<Reason>,
    now: Instant,
    now_ms: i64,
) {
    if e.seen != status {
        e.seen = status;
        e.seen_since_ms = now_ms;
        e.waiting_since = now;
    }
    e.reasons = reasons;
}

/// Whether `e` has a change to let through now.
fn decide(
    t: &Target,
    e: &mut Entry,
    in_maintenance: bool,
    now: Instant,
    hold: Duration,
) -> Option<Change> {
    if e.seen == e.notified {
        return None;
    }
    if quiet(e.notified, e.seen) {
        e.notified = e.seen;
        return None;
    }
    if in_maintenance {
        e.waiting_since = now;
        return None;
    }
    if now.duration_since(e.waiting_since) < hold {
        return None;
    }
    let c = Change {
        target: t.clone(),
        from: e.notified,
        to: e.seen,
        reasons: e.reasons.clone(),
        at_ms: e.seen_since_ms,
    };
    e.notified = e.seen;
    Some(c)
}

/// A change nobody needs to hear about: appearing OK, or leaving while OK.
fn quiet(notified: Option<NodeStatus>, seen: Option<NodeStatus>) -> bool {
    matches!(
        (notified, seen),
        (None, Some(NodeStatus::Ok)) | (Some(NodeStatus::Ok), None)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeStatus::*;

    const HOLD: Duration = Duration::from_secs(30);
    const T0: i64 = 1_800_000_000_000;

    fn node(name: &str) -> Target {
        Target {
            kind: Kind::Node,
            service: "db".into(),
            node: Some(name.into()),
        }
    }

    fn obs(name: &str, status: NodeStatus, maintenance: bool) -> Observation {
        Observation {
            target: node(name),
            status,
            reasons: Vec::new(),
            maintenance,
        }
    }

    /// One look at `seen` after advancing the paused clock by `secs`.
    async fn look(
        h: &mut HoldDown,
        secs: u64,
        seen: Vec<Observation>,
    ) -> Vec<(Option<NodeStatus>, Option<NodeStatus>)> {
        tokio::time::advance(Duration::from_secs(secs)).await;
        let now = Instant::now();
        h.observe(now, T0, seen)
            .into_iter()
            .map(|c| (c.from, c.to))
            .collect()
    }

    /// [`look`], which must let nothing through.
    async fn nothing(h: &mut HoldDown, secs: u64, seen: Vec<Observation>, why: &str) {
        let out = look(h, secs, seen).await;
        assert!(out.is_empty(), "{why}: {out:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_goes_out_after_the_hold_down_and_a_flap_never() {
        let mut h = HoldDown::new(HOLD);
        nothing(
            &mut h,
            0,
            vec![obs("db1", Ok, false)],
            "first seen OK is quiet",
        )
        .await;
        nothing(&mut h, 1, vec![obs("db1", Fail, false)], "").await;
        assert_eq!(h.pending(), 1);
        nothing(
            &mut h,
            29,
            vec![obs("db1", Fail, false)],
            "29 s < hold-down",
        )
        .await;
        assert_eq!(
            look(&mut h, 1, vec![obs("db1", Fail, false)]).await,
            vec![(Some(Ok), Some(Fail))]
        );
        nothing(&mut h, 100, vec![obs("db1", Fail, false)], "sent once").await;

        // A flap: Fail → OK → Fail inside the hold-down sends nothing.
        nothing(&mut h, 1, vec![obs("db1", Ok, false)], "").await;
        nothing(&mut h, 20, vec![obs("db1", Fail, false)], "").await;
        assert_eq!(h.pending(), 0);
        nothing(&mut h, 60, vec![obs("db1", Fail, false)], "").await;

        // A status that changes again restarts the wait: Degraded then Fail.
        nothing(&mut h, 1, vec![obs("db1", Degraded, false)], "").await;
        nothing(&mut h, 20, vec![obs("db1", Ok, false)], "").await;
        nothing(&mut h, 20, vec![obs("db1", Ok, false)], "").await;
        assert_eq!(
            look(&mut h, 10, vec![obs("db1", Ok, false)]).await,
            vec![(Some(Fail), Some(Ok))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn maintenance_holds_changes_and_the_end_of_the_window_is_judged_afresh() {
        let mut h = HoldDown::new(HOLD);
        look(
            &mut h,
            0,
            vec![obs("db1", Ok, false), obs("db2", Ok, false)],
        )
        .await;
        // Both fail in maintenance for an hour: nothing.
        for _ in 0..60 {
            nothing(
                &mut h,
                60,
                vec![obs("db1", Fail, true), obs("db2", Fail, true)],
                "",
            )
            .await;
        }
        assert_eq!(h.pending(), 2);
        // The window ends: db1 still Fail, db2 recovered during it. db1 alerts one hold-down
        // after the end, not at once.
        nothing(
            &mut h,
            1,
            vec![obs("db1", Fail, false), obs("db2", Ok, false)],
            "",
        )
        .await;
        assert_eq!(h.pending(), 1);
        nothing(
            &mut h,
            28,
            vec![obs("db1", Fail, false), obs("db2", Ok, false)],
            "",
        )
        .await;
        assert_eq!(
            look(
                &mut h,
                1,
                vec![obs("db1", Fail, false), obs("db2", Ok, false)]
            )
            .await,
            vec![(Some(Ok), Some(Fail))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn targets_appearing_bad_and_leaving_bad_are_told_ok_ones_are_not() {
        let mut h = HoldDown::new(HOLD);
        nothing(
            &mut h,
            0,
            vec![obs("db1", Fail, false), obs("db2", Ok, false)],
            "",
        )
        .await;
        assert_eq!(
            look(
                &mut h,
                30,
                vec![obs("db1", Fail, false), obs("db2", Ok, false)]
            )
            .await,
            vec![(None, Some(Fail))]
        );
        // Both leave the view (forgotten): db2 quietly, db1 after the hold-down.
        nothing(&mut h, 1, vec![], "").await;
        assert_eq!(look(&mut h, 30, vec![]).await, vec![(Some(Fail), None)]);
        assert_eq!(h.entries.len(), 0, "nothing kept for targets gone and told");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_hold_down_sends_at_the_first_look() {
        let mut h = HoldDown::new(Duration::ZERO);
        look(&mut h, 0, vec![obs("db1", Ok, false)]).await;
        assert_eq!(
            look(&mut h, 0, vec![obs("db1", Degraded, false)]).await,
            vec![(Some(Ok), Some(Degraded))]
        );
    }
}
