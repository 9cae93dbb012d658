//! Event source: a session that speaks the service's protocol ending. For each configured
//! PostgreSQL probe (`postgres`, `pg_connect`) the watch holds one authenticated, idle
//! session, logged in exactly as the probe logs in (same host, port, credentials and TLS;
//! `application_name` `status-reporter watch`); for each AMQP probe (`amqp`, and the
//! `rabbitmq` probe's AMQP port) one connection with the heartbeat the probe negotiates.
//! When the server ends it (the server killed or restarted, the backend terminated, the
//! broker closing its connections on `stop_app`, missed heartbeats), the daemon is woken.
//!
//! Unlike the raw idle connection of [`super::connection`], a session that completed its
//! handshake is not closed by the server's handshake timeout, so it stays quiet: nothing
//! is sent on an idle PostgreSQL session, and an AMQP connection exchanges a heartbeat
//! frame every few seconds ([`amqp::hold`]). It also sees what the process watch cannot: a remote server
//! (a manager's database and broker), another user's process, a broker whose process lives
//! on while its application stopped.
//!
//! Invariant (as for every source): the session is never queried and decides nothing; the
//! probes decide, in the cycle the wake-up causes.
//!
//! Bounds: one session per target; a connect is bounded by the probe's own timeout; a
//! session that lived less than [`MIN_LIFETIME`] wakes nothing and its target waits
//! [`SHORT_LIVED_RETRY_CYCLES`] cycles; a failed connect or login waits 1, 3, 7, then
//! [`MAX_BACKOFF_CYCLES`] cycles (a refused login must not be retried every cycle, each
//! try a line in the server's log).

use super::connection::{finished_output, MIN_LIFETIME, SHORT_LIVED_RETRY_CYCLES};
use super::{Source, Wake, Waker};
use sr_probes::net::amqp;
use sr_probes::pg::{ConnectError, Connector, Login};
use sr_probes::ProbeConfig;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most cycles waited between two connects after failures.
pub const MAX_BACKOFF_CYCLES: u32 = 12;

/// The `application_name` of the held PostgreSQL sessions, so a DBA can tell them apart.
pub const APPLICATION_NAME: &str = "status-reporter watch";

/// What a session is opened with.
#[derive(Clone)]
pub enum Protocol {
    Postgres(Arc<Connector>),
    Amqp(amqp::Target),
}

impl Protocol {
    /// A metrics label, from a fixed set.
    pub fn label(&self) -> &'static str {
        match self {
            Protocol::Postgres(_) => "postgresql",
            Protocol::Amqp(_) => "amqp",
        }
    }
}

/// One session to hold, by the probe whose service it reaches.
#[derive(Clone)]
pub struct Target {
    pub probe: String,
    pub protocol: Protocol,
}

/// The sessions of the probes that log in to a PostgreSQL server or an AMQP broker.
pub fn targets(probes: &[ProbeConfig]) -> Vec<Target> {
    let pg = |login: Login<'_>| {
        Protocol::Postgres(Arc::new(Connector::new(&Login {
            application_name: APPLICATION_NAME,
            ..login
        })))
    };
    probes
        .iter()
        .filter_map(|p| {
            let protocol = match p {
                ProbeConfig::Postgres(c) => pg(c.login()),
                ProbeConfig::PgConnect(c) => pg(c.login()),
                ProbeConfig::Amqp(c) => Protocol::Amqp(c.target()),
                ProbeConfig::Rabbitmq(c) => Protocol::Amqp(c.amqp_target()),
                _ => return None,
            };
            Some(Target {
                probe: p.kind().to_string(),
                protocol,
            })
        })
        .collect()
}

/// How a held session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The connect or the login failed (the cycle's probe says why).
    NotConnected,
    /// Ended sooner than [`MIN_LIFETIME`]: no wake-up.
    ShortLived,
    /// Ended after holding: the daemon was woken.
    Dropped,
}

struct Slot {
    target: Target,
    task: Option<JoinHandle<Ended>>,
    skip: u32,
    /// Connects that failed in a row.
    failures: u32,
}

/// The session watches of one config.
pub struct SessionWatch {
    slots: Vec<Slot>,
    waker: Waker,
}

/// Cycles to wait after `failures` failed connects in a row: 1, 3, 7, then the cap.
pub fn backoff_cycles(failures: u32) -> u32 {
    (1u32 << failures.min(5))
        .saturating_sub(1)
        .min(MAX_BACKOFF_CYCLES)
}

impl SessionWatch {
    pub fn new(targets: Vec<Target>, waker: Waker) -> Self {
        SessionWatch {
            slots: targets
                .into_iter()
                .map(|target| Slot {
                    target,
                    task: None,
                    skip: 0,
                    failures: 0,
                })
                .collect(),
            waker,
        }
    }

    /// How many sessions are open or opening.
    pub fn holding(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.task.as_ref().is_some_and(|t| !t.is_finished()))
            .count()
    }

    /// Opens a session for every target without one, unless it is backing off. Called
    /// after each cycle.
    pub fn rearm(&mut self) {
        for slot in &mut self.slots {
            if let Some(t) = &slot.task {
                if !t.is_finished() {
                    continue;
                }
                match slot.task.take().and_then(finished_output) {
                    Some(Ok(Ended::NotConnected)) => {
                        slot.failures = slot.failures.saturating_add(1);
                        slot.skip = backoff_cycles(slot.failures);
                    }
                    Some(Ok(Ended::ShortLived)) => {
                        slot.failures = 0;
                        slot.skip = SHORT_LIVED_RETRY_CYCLES;
                    }
                    _ => slot.failures = 0,
                }
            }
            if slot.skip > 0 {
                slot.skip -= 1;
                continue;
            }
            slot.task = Some(tokio::spawn(hold(slot.target.clone(), self.waker.clone())));
        }
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        for s in &self.slots {
            if let Some(t) = &s.task {
                t.abort();
            }
        }
    }
}

/// Opens the session and waits for the server to end it.
pub async fn hold(target: Target, waker: Waker) -> Ended {
    let protocol = target.protocol.label();
    let metrics = waker.metrics();
    let held = match &target.protocol {
        Protocol::Postgres(c) => c.hold().await.map_err(|e| match e {
            ConnectError::TlsSetup(e) => format!("TLS setup failed: {e}"),
            ConnectError::Postgres(e) => sr_tls::client::error_chain(&e),
        }),
        Protocol::Amqp(t) => amqp::hold(t).await,
    };
    let held = match held {
        Ok(h) => h,
        Err(error) => {
            metrics.session(protocol, "connect_failed");
            tracing::debug!(probe = %target.probe, protocol, %error, "cannot open the watched session");
            return Ended::NotConnected;
        }
    };
    metrics.session(protocol, "opened");
    // Info: rare (start, reload, after each end), and it tells an operator that the agent
    // holds a session on the server.
    tracing::info!(probe = %target.probe, protocol, "holding a watched session");
    let since = Instant::now();
    let why = held.await;
    if since.elapsed() < MIN_LIFETIME {
        metrics.session(protocol, "short_lived");
        // Info, like the other ends: an operator sees the watch back off, and the lines
        // "holding" / "ended" say whether a session is held.
        tracing::info!(probe = %target.probe, protocol, reason = %why, "a watched session ended within its first second; not probing, backing off");
        return Ended::ShortLived;
    }
    metrics.session(protocol, "ended");
    tracing::info!(probe = %target.probe, protocol, reason = %why, "a watched session ended; probing now");
    waker.wake(Wake {
        source: Source::SessionEnded,
        probe: target.probe,
    });
    Ended::Dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::AgentMetrics;

    #[test]
    fn backoff_grows_and_is_capped() {
        let got: Vec<u32> = (1..=8).map(backoff_cycles).collect();
        assert_eq!(got, [1, 3, 7, 12, 12, 12, 12, 12]);
        assert_eq!(backoff_cycles(u32::MAX), MAX_BACKOFF_CYCLES);
    }

    #[test]
    fn targets_are_the_probes_that_log_in() {
        let cfg: Vec<ProbeConfig> = toml::from_str::<toml::Table>(
            r#"
[[probes]]
kind = "postgres"
port = 5432
user = "monitor"
[[probes]]
kind = "amqp"
host = "10.0.0.5"
username = "u"
password = "p"
[[probes]]
kind = "tcp"
name = "x"
address = "127.0.0.1:1"
"#,
        )
        .unwrap()["probes"]
            .clone()
            .try_into()
            .unwrap();
        let t = targets(&cfg);
        let got: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.probe.as_str(), t.protocol.label()))
            .collect();
        assert_eq!(got, [("postgres", "postgresql"), ("amqp", "amqp")]);
    }

    /// A port nobody serves: each connect fails, and the watch backs off 1, 3, 7 cycles
    /// between tries instead of trying every cycle; nothing wakes the daemon.
    #[tokio::test]
    async fn failed_connects_back_off_and_wake_nothing() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let metrics = AgentMetrics::default();
        let (waker, mut rx) = super::super::channel(metrics.clone());
        let target = Target {
            probe: "amqp".into(),
            protocol: Protocol::Amqp(amqp::Target {
                host: "127.0.0.1".into(),
                port,
                vhost: "/".into(),
                username: "u".into(),
                password: sr_probes::net::Secret::new("p"),
                publish: false,
                timeout: std::time::Duration::from_secs(2),
            }),
        };
        let mut w = SessionWatch::new(vec![target], waker);
        // Cycle by cycle: which cycles opened a connect attempt.
        let mut tried = Vec::new();
        for cycle in 0..13 {
            w.rearm();
            if w.holding() == 1 {
                tried.push(cycle);
            }
            crate::watch::until(|| w.holding() == 0).await;
        }
        assert_eq!(
            tried,
            [0, 2, 6],
            "tries after 1, then 3 skipped cycles, then 7"
        );
        assert!(rx.try_recv().is_err(), "a failed connect wakes nothing");
        let text = metrics.encode(&crate::push::Shared::default());
        assert!(
            text.contains(
                "status_reporter_agent_session_watch_total{protocol=\"amqp\",outcome=\"connect_failed\"} 3"
            ),
            "{text}"
        );
    }
}
