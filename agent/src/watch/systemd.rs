//! Event source: systemd announcing a state change of a unit a `services` probe reads.
//! On the probe's own system-bus connection ([`SystemBus::shared`]) the watch subscribes
//! to systemd's signals for exactly those units ([`UnitSignals`]: `PropertiesChanged` on
//! each unit's object, `JobRemoved` naming it) and wakes the daemon when a unit's
//! `ActiveState`/`SubState` moves, or when one of its jobs ends other than `done` (a start
//! that failed on a dependency leaves the state where it was).
//!
//! Bounds: the units are the probes' (at most 32 per probe); the bus filters the signals
//! by unit, so other units cost nothing here; a signal that repeats the state seen last
//! wakes nothing ([`Seen`]), and wakes go through the queue and the extra-cycle budget
//! like every source's. The subscription is made again after a later cycle when its
//! connection closed or the probe replaced it; a subscription that fails (no systemd, a
//! bus refusing) waits [`FAILED_RETRY_CYCLES`] cycles.

use super::{Source, Wake, Waker};
use sr_probes::services::{systemd_is_pid1, BusConnection, SystemBus, UnitSignal, UnitSignals};
use sr_probes::ProbeConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Cycles skipped after a subscription failed.
pub const FAILED_RETRY_CYCLES: u32 = 12;
/// Longest wait for the subscription's calls (Subscribe, LoadUnit, AddMatch per unit).
pub const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The label probe of the wakes (the services probe's kind).
const PROBE: &str = "services";

/// The last state each unit was seen in, by signal: only a change wakes.
#[derive(Debug, Default)]
pub struct Seen(BTreeMap<String, (Option<String>, Option<String>)>);

impl Seen {
    /// Whether `sig` should wake the daemon; records the state it carries.
    pub fn wakes(&mut self, sig: &UnitSignal) -> bool {
        match sig {
            UnitSignal::State {
                unit,
                active_state,
                sub_state,
                invalidated,
            } => {
                let last = self.0.get(unit).cloned();
                let (mut active, mut sub) = last.clone().unwrap_or_default();
                if active_state.is_some() {
                    active = active_state.clone();
                }
                if sub_state.is_some() {
                    sub = sub_state.clone();
                }
                let now = (active, sub);
                self.0.insert(unit.clone(), now.clone());
                // The first signal after subscribing has nothing to compare with: a cycle
                // settles it (one unchanged extra cycle is not pushed).
                *invalidated || last.as_ref() != Some(&now)
            }
            UnitSignal::JobRemoved { result, .. } => result != "done",
        }
    }
}

/// The unit watch of one config: the units of its `services` probes.
pub struct UnitWatch {
    bus: Arc<SystemBus>,
    units: Vec<String>,
    proc_root: PathBuf,
    waker: Waker,
    task: Option<JoinHandle<()>>,
    /// The connection the running task subscribed on, once it has.
    conn: Arc<Mutex<Option<BusConnection>>>,
    skip: u32,
}

impl UnitWatch {
    /// The watch for the `services` probes in `probes` that name systemd units; `None`
    /// without any.
    pub fn new(probes: &[ProbeConfig], waker: Waker) -> Option<Self> {
        let mut units = Vec::new();
        let mut proc_root = None;
        for p in probes {
            if let ProbeConfig::Services(c) = p {
                proc_root.get_or_insert_with(|| c.proc_root.clone());
                units.extend(c.units.iter().filter_map(|u| u.unit.clone()));
            }
        }
        units.sort();
        units.dedup();
        (!units.is_empty()).then(|| UnitWatch {
            bus: SystemBus::shared(),
            units,
            proc_root: proc_root.unwrap_or_else(|| "/proc".into()),
            waker,
            task: None,
            conn: Arc::default(),
            skip: 0,
        })
    }

    /// Whether a subscription is in place.
    pub fn holding(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
            && self
                .conn
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_some()
    }

    /// Subscribes when no subscription is running, or when the probe no longer keeps the
    /// connection it was made on. Called after each cycle.
    pub fn rearm(&mut self) {
        if let Some(t) = &self.task {
            let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let replaced = conn.as_ref().is_some_and(|c| !self.bus.keeps(c));
            if !t.is_finished() && !replaced {
                return;
            }
            if t.is_finished() && conn.is_none() {
                // It ended without subscribing: wait before asking again.
                self.skip = FAILED_RETRY_CYCLES;
            }
            t.abort();
            self.task = None;
            *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        if !systemd_is_pid1(&self.proc_root) {
            self.skip = FAILED_RETRY_CYCLES;
            return;
        }
        let (bus, units, waker, slot) = (
            Arc::clone(&self.bus),
            self.units.clone(),
            self.waker.clone(),
            Arc::clone(&self.conn),
        );
        // A failure shows at the next rearm as a finished task with no connection.
        self.task = Some(tokio::spawn(async move {
            let mut signals =
                match tokio::time::timeout(SUBSCRIBE_TIMEOUT, UnitSignals::subscribe(&bus, &units))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "cannot subscribe to systemd's unit signals");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("systemd's unit signals: no subscription within 2 s");
                        return;
                    }
                };
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(signals.connection().clone());
            // Info: rare (start, reload, a new bus connection), and it says which units
            // the agent reacts to.
            tracing::info!(units = ?units, "watching systemd's state changes of the probed units");
            let mut seen = Seen::default();
            while let Some(sig) = signals.next().await {
                if seen.wakes(&sig) {
                    let unit = match &sig {
                        UnitSignal::State { unit, .. } | UnitSignal::JobRemoved { unit, .. } => {
                            unit
                        }
                    };
                    tracing::info!(%unit, signal = ?sig, "a probed unit changed state; probing now");
                    waker.wake(Wake {
                        source: Source::UnitState,
                        probe: PROBE.into(),
                    });
                }
            }
            tracing::debug!("the system bus connection of the unit watch closed");
        }));
    }
}

impl Drop for UnitWatch {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(unit: &str, a: Option<&str>, s: Option<&str>, inv: bool) -> UnitSignal {
        UnitSignal::State {
            unit: unit.into(),
            active_state: a.map(Into::into),
            sub_state: s.map(Into::into),
            invalidated: inv,
        }
    }

    #[test]
    fn only_a_changed_state_or_a_job_that_did_not_finish_well_wakes() {
        let mut seen = Seen::default();
        let a = "patroni.service";
        assert!(
            seen.wakes(&state(a, Some("active"), Some("running"), false)),
            "the first signal has nothing to compare with"
        );
        assert!(!seen.wakes(&state(a, Some("active"), Some("running"), false)));
        assert!(
            !seen.wakes(&state(a, None, None, false)),
            "a signal without the states (another property) wakes nothing"
        );
        assert!(seen.wakes(&state(a, Some("deactivating"), Some("stop-sigterm"), false)));
        assert!(seen.wakes(&state(a, None, Some("stop-sigkill"), false)));
        assert!(!seen.wakes(&state(a, Some("deactivating"), None, false)));
        assert!(seen.wakes(&state(a, None, None, true)), "invalidated");
        // Units are kept apart.
        assert!(seen.wakes(&state(
            "etcd.service",
            Some("active"),
            Some("running"),
            false
        )));
        assert!(!seen.wakes(&state(
            "etcd.service",
            Some("active"),
            Some("running"),
            false
        )));
        let job = |r: &str| UnitSignal::JobRemoved {
            unit: a.into(),
            result: r.into(),
        };
        assert!(!seen.wakes(&job("done")));
        for r in ["failed", "canceled", "timeout", "dependency", "skipped"] {
            assert!(seen.wakes(&job(r)), "{r}");
        }
    }

    #[tokio::test]
    async fn no_services_units_no_watch_and_without_systemd_no_subscription() {
        let (waker, _rx) = super::super::channel(crate::metrics::AgentMetrics::default());
        assert!(UnitWatch::new(&[], waker.clone()).is_none());
        let cfg: sr_probes::services::Config = serde_json::from_value(serde_json::json!({
            "units": [
                {"name": "Etcd", "unit": "etcd.service"},
                {"name": "Patroni", "unit": "patroni.service", "process": "patroni"},
                {"name": "Other", "process": "other"},
                {"name": "Again", "unit": "etcd.service"},
            ],
            "proc_root": "/nonexistent",
        }))
        .unwrap();
        let mut w = UnitWatch::new(&[ProbeConfig::Services(cfg)], waker).unwrap();
        assert_eq!(w.units, ["etcd.service", "patroni.service"]);
        w.rearm();
        assert!(
            w.task.is_none() && !w.holding(),
            "PID 1 is not systemd there"
        );
        assert_eq!(w.skip, FAILED_RETRY_CYCLES);
    }
}
