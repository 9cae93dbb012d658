//! Tier 2 (issue 16): a tier-1 collector pushes its cluster's signed summary to tier-2
//! collectors ([`push`]); a tier-2 collector (`[fleet]`) verifies and keeps the latest
//! per cluster ([`ingest`], [`store`]), shows every cluster's standing ([`view`], the
//! `/api/tier2/v1` routes in [`api`]) and heals silent nodes of clusters that still
//! report ([`heal`]). The deciding functions ([`build`], [`trust`], [`view::judge`],
//! [`heal::step`]) are pure and apart from the I/O around them. See ARCHITECTURE.md,
//! "Tier 2".

pub mod api;
pub mod build;
pub mod config;
pub mod heal;
pub mod ingest;
pub mod push;
pub mod store;
pub mod trust;
pub mod view;

use crate::app::App;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sr_protocol::summary::Summary;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type L = Vec<(&'static str, String)>;

/// Tier-2 state of one collector: the fleet (when `[fleet]` is set) and the push metrics.
#[derive(Default)]
pub struct Tier2 {
    pub fleet: Option<Fleet>,
    pub push: push::PushMetrics,
}

impl Tier2 {
    pub fn new(cfg: &crate::Config) -> Tier2 {
        Tier2 {
            fleet: cfg.fleet.clone().map(Fleet::new),
            push: Default::default(),
        }
    }

    /// The tier-2 series (bounded: `cluster` by `max_clusters`, `url` by the ≤ 8 URLs,
    /// `result` by the refusal codes).
    pub fn register(&self, reg: &mut Registry, now_ms: i64) {
        self.push.register(reg);
        if let Some(f) = &self.fleet {
            f.register(reg, now_ms);
        }
    }
}

/// The last accepted summary of one cluster.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pin: trust::Pin,
    pub received_ms: i64,
    pub summary: Arc<Summary>,
}

/// A tier-2 collector's clusters.
pub struct Fleet {
    pub cfg: config::FleetConfig,
    pub clusters: Mutex<BTreeMap<String, Entry>>,
    pub store: store::Tier2Store,
    /// Judge-then-commit of one summary at a time: two copies of one `(boot, seq)` cannot
    /// both pass the replay check.
    pub(crate) commit: tokio::sync::Mutex<()>,
    summaries: Family<L, Counter>,
    heals: Family<L, Counter>,
}

impl Fleet {
    pub fn new(cfg: config::FleetConfig) -> Fleet {
        Fleet {
            cfg,
            clusters: Mutex::new(BTreeMap::new()),
            store: Default::default(),
            commit: tokio::sync::Mutex::new(()),
            summaries: Family::default(),
            heals: Family::default(),
        }
    }

    pub fn unreachable_after_ms(&self) -> i64 {
        self.cfg.unreachable_after.as_millis() as i64
    }

    /// Every cluster's standing at `now_ms`.
    pub fn views(&self, now_ms: i64) -> BTreeMap<String, view::ClusterView> {
        let clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    view::judge(
                        &e.summary,
                        e.received_ms,
                        now_ms,
                        self.unreachable_after_ms(),
                    ),
                )
            })
            .collect()
    }

    pub fn entry(&self, name: &str) -> Option<Entry> {
        self.clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn count_summary(&self, result: &str) {
        self.summaries
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    pub(crate) fn count_heal(&self, decision: &str, why: &str) {
        self.heals
            .get_or_create(&vec![
                ("decision", decision.to_string()),
                ("why", why.to_string()),
            ])
            .inc();
    }

    fn register(&self, reg: &mut Registry, now_ms: i64) {
        use prometheus_client::metrics::gauge::Gauge;
        reg.register(
            "tier2_summaries",
            "Cluster summaries received at this tier-2 collector, by result (accepted or the refusal's error code)",
            self.summaries.clone(),
        );
        reg.register(
            "tier2_heal_decisions",
            "Heal decisions recorded, by decision (run, suppressed, succeeded, failed) and why",
            self.heals.clone(),
        );
        let status: Family<L, Gauge> = Family::default();
        let age: Family<L, Gauge> = Family::default();
        for (name, v) in self.views(now_ms) {
            for s in [
                view::ClusterState::Ok,
                view::ClusterState::Degraded,
                view::ClusterState::Fail,
                view::ClusterState::Unreachable,
            ] {
                status
                    .get_or_create(&vec![
                        ("cluster", name.clone()),
                        ("status", s.as_str().to_string()),
                    ])
                    .set(i64::from(v.status == s));
            }
            age.get_or_create(&vec![("cluster", name.clone())])
                .set(v.age_ms / 1000);
        }
        reg.register(
            "tier2_cluster_status",
            "1 for each cluster's current status at tier 2 (OK, Degraded, Fail, Unreachable), 0 for the others",
            status,
        );
        reg.register(
            "tier2_cluster_summary_age_seconds",
            "Seconds since each cluster's last accepted summary",
            age,
        );
    }
}

/// Starts what `[tier2]` and `[fleet]` ask for: the push tasks, the fleet's rows loaded
/// from the store, and the heal loop. They end when the collector begins to stop.
pub fn start(app: &Arc<App>) -> Result<(), String> {
    if let Some(fleet) = &app.tier2.fleet {
        let rows = fleet
            .store
            .load(&app.cfg.state_dir)
            .map_err(|e| format!("tier-2 rows: {e}"))?;
        let mut clusters = fleet.clusters.lock().unwrap_or_else(|e| e.into_inner());
        for r in rows {
            // A row that no longer decodes (a newer binary wrote it) is left to be replaced.
            if let Ok(s) = Summary::decode(&r.summary, &r.name) {
                clusters.insert(
                    r.name,
                    Entry {
                        pin: r.pin,
                        received_ms: r.received_ms,
                        summary: Arc::new(s),
                    },
                );
            }
        }
        drop(clusters);
        if fleet.cfg.heal.is_some() {
            tokio::spawn(heal::run_loop(app.clone()));
        }
    }
    if app.cfg.tier2.is_some() {
        push::start(app)?;
    }
    Ok(())
}
