//! Event source: a long-lived idle TCP connection to a probed service's port dropping.
//! The connection sends nothing; when the server side closes it (EOF) or resets it, the
//! daemon is woken. Catches an exit the process watch cannot see (a process of another
//! user or in another PID namespace, a remote service).
//!
//! Off by default: an idle connection that never speaks the protocol is closed by some
//! servers after their handshake timeout (PostgreSQL's `authentication_timeout`, 60 s;
//! RabbitMQ's `handshake_timeout`, 10 s), each time with a log line on the server and a
//! wake-up here (an unchanged extra cycle, not pushed). Patroni's REST server keeps it.
//!
//! Bounds: one connection per target; a connect is given [`CONNECT_TIMEOUT`]; a
//! connection that lived less than [`MIN_LIFETIME`] wakes nothing and its target waits
//! [`SHORT_LIVED_RETRY_CYCLES`] cycles (a server that accepts and closes at once must not
//! turn into a wake-up loop); bytes the server sends are read into a small buffer and
//! dropped.

use super::listener::Target;
use super::{Source, Wake, Waker};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);
pub const SHORT_LIVED_RETRY_CYCLES: u32 = 12;

/// How a watched connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The connect failed: the service is down or filtered (the cycle says which).
    NotConnected,
    /// Closed or reset sooner than [`MIN_LIFETIME`]: no wake-up.
    ShortLived,
    /// Closed or reset after holding: the daemon was woken.
    Dropped,
}

struct Slot {
    target: Target,
    task: Option<JoinHandle<Ended>>,
    skip: u32,
}

/// The connection watches of one config.
pub struct ConnectionWatch {
    slots: Vec<Slot>,
    waker: Waker,
}

impl ConnectionWatch {
    pub fn new(targets: Vec<Target>, waker: Waker) -> Self {
        ConnectionWatch {
            slots: targets
                .into_iter()
                .map(|target| Slot {
                    target,
                    task: None,
                    skip: 0,
                })
                .collect(),
            waker,
        }
    }

    /// How many connections are open or opening.
    pub fn holding(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.task.as_ref().is_some_and(|t| !t.is_finished()))
            .count()
    }

    /// Opens a connection for every target without one. Called after each cycle.
    pub fn rearm(&mut self) {
        for slot in &mut self.slots {
            if let Some(t) = &slot.task {
                if !t.is_finished() {
                    continue;
                }
                if let Some(Ok(Ended::ShortLived)) = slot.task.take().and_then(finished_output) {
                    slot.skip = SHORT_LIVED_RETRY_CYCLES;
                }
            }
            if slot.skip > 0 {
                slot.skip -= 1;
                continue;
            }
            let addr = SocketAddr::new(slot.target.ips[0], slot.target.port);
            slot.task = Some(tokio::spawn(hold(
                addr,
                slot.target.probe.clone(),
                self.waker.clone(),
            )));
        }
    }
}

/// The output of a task whose `is_finished` is true: one poll returns it.
pub(super) fn finished_output<T>(t: JoinHandle<T>) -> Option<Result<T, tokio::task::JoinError>> {
    use std::future::Future;
    let mut t = std::pin::pin!(t);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match t.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}

impl Drop for ConnectionWatch {
    fn drop(&mut self) {
        for s in &self.slots {
            if let Some(t) = &s.task {
                t.abort();
            }
        }
    }
}

/// Connects to `addr` and holds the connection until the server ends it.
pub async fn hold(addr: SocketAddr, probe: String, waker: Waker) -> Ended {
    let Ok(Ok(mut tcp)) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
    else {
        return Ended::NotConnected;
    };
    let since = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tcp.read(&mut buf).await {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    if since.elapsed() < MIN_LIFETIME {
        return Ended::ShortLived;
    }
    tracing::info!(%probe, %addr, "a watched connection dropped; probing now");
    waker.wake(Wake {
        source: Source::ConnectionDropped,
        probe,
    });
    Ended::Dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::AgentMetrics;

    #[tokio::test]
    async fn a_connection_closed_by_the_server_wakes_once_and_a_short_lived_one_does_not() {
        let (waker, mut rx) = super::super::channel(AgentMetrics::default());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let target = Target {
            probe: "patroni".into(),
            ips: vec![addr.ip()],
            port: addr.port(),
            names: &[],
        };
        let mut w = ConnectionWatch::new(vec![target], waker);
        w.rearm();
        let (conn, _) = l.accept().await.unwrap();
        assert_eq!(w.holding(), 1);
        tokio::time::sleep(MIN_LIFETIME + Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "nothing while it holds");
        drop(conn);
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a wake within 10 s")
            .unwrap();
        assert_eq!(got.source, Source::ConnectionDropped);
        // Re-armed after the next cycle; this time the server closes at once.
        crate::watch::until(|| w.holding() == 0).await;
        w.rearm();
        let (conn, _) = l.accept().await.unwrap();
        drop(conn);
        crate::watch::until(|| w.holding() == 0).await;
        w.rearm();
        assert_eq!(w.holding(), 0, "a short-lived connection backs off");
        assert!(rx.try_recv().is_err(), "and wakes nothing");
        // A port nobody serves: the connect fails, no wake.
        drop(l);
        assert_eq!(
            hold(
                addr,
                "x".into(),
                super::super::channel(AgentMetrics::default()).0
            )
            .await,
            Ended::NotConnected
        );
    }
}
