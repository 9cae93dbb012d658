//! The node-local check endpoint (`check_listen`): `GET /check/<probe>` answers 200 or 503
//! from the agent's latest findings, for a load balancer's health check (HAProxy `option
//! httpchk GET /check/galera`, keepalived `MISC_CHECK` with curl), as `clustercheck` and
//! Patroni's `/leader` do.
//!
//! It never probes per request: the daemon writes each cycle's findings into a
//! [`CheckBoard`] and requests only read it, so a check storm costs no load on the
//! service checked and an answer takes microseconds. A finding older than three intervals
//! is stale and answers 503 (a wedged agent must not keep a server in rotation), as a
//! consul TTL check turns silence into critical.
//!
//! Answers: 200 when the probe's latest finding is OK or Degraded (`?strict`: OK only),
//! 503 otherwise or when there is no fresh finding, 404 for a name no probe has, 405 for
//! a method other than GET/HEAD. The body is one short plain-text line saying why, at most
//! [`MAX_BODY`] bytes. Bounded: [`MAX_CONNS`] connections at once (more are closed at
//! once and counted), headers within [`HEADER_TIMEOUT`], a whole connection within
//! [`CONN_TIMEOUT`], one request per connection.
//!
//! Deliberately absent: no TLS and no authentication (bind it to loopback or the
//! management network; it says only what `cluster status` says), no probing, no JSON.

use crate::schedule::ProbeResult;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use sr_protocol::NodeStatus;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Longest answer body.
pub const MAX_BODY: usize = 512;
/// Connections served at once; a health checker needs one or two.
pub const MAX_CONNS: usize = 16;
/// Time for a client to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a connection may take in all.
pub const CONN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Entry {
    status: NodeStatus,
    why: String,
    at: Instant,
}

/// The latest finding of every probe, by probe name (`galera`, `haproxy`, `tcp:rest`).
#[derive(Debug)]
pub struct CheckBoard {
    stale_after: Duration,
    /// `None` until the probe's first finding (its name is known from the config).
    entries: Mutex<BTreeMap<String, Option<Entry>>>,
    /// Connections closed unserved because [`MAX_CONNS`] were open.
    pub refused: AtomicU64,
    pub served: AtomicU64,
}

impl CheckBoard {
    /// A board for the probes `names`, whose findings go stale after `stale_after`.
    pub fn new(names: impl IntoIterator<Item = String>, stale_after: Duration) -> Self {
        CheckBoard {
            stale_after,
            entries: Mutex::new(names.into_iter().map(|n| (n, None)).collect()),
            refused: AtomicU64::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// Replaces the board with one cycle's findings (a reload's new probe list included).
    /// Two probes of one name (a config the agent allows for unnamed kinds) keep the worst.
    pub fn update(&self, results: &[ProbeResult], now: Instant) {
        let mut fresh: BTreeMap<String, Option<Entry>> = BTreeMap::new();
        for r in results {
            let why = r
                .finding
                .reasons
                .iter()
                .map(|x| format!("{}: {}", x.code, x.message))
                .collect::<Vec<_>>()
                .join("; ");
            let e = Entry {
                status: r.finding.status,
                why,
                at: now,
            };
            let slot = fresh.entry(r.probe.clone()).or_insert(None);
            if slot.as_ref().is_none_or(|old| old.status < e.status) {
                *slot = Some(e);
            }
        }
        *self.entries.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    /// The answer to `GET /check/<name>[?strict]` at `now`: status code and body.
    pub fn answer(&self, name: &str, strict: bool, now: Instant) -> (StatusCode, String) {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (code, body) = match entries.get(name) {
            None => {
                let known: Vec<&str> = entries.keys().map(String::as_str).collect();
                (
                    StatusCode::NOT_FOUND,
                    format!("no probe {name:?}; probes: {}", known.join(", ")),
                )
            }
            Some(None) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{name}: no finding yet"),
            ),
            Some(Some(e)) if now.saturating_duration_since(e.at) > self.stale_after => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{name}: stale: last finding {} s ago",
                    now.saturating_duration_since(e.at).as_secs()
                ),
            ),
            Some(Some(e)) => {
                let pass = match e.status {
                    NodeStatus::Ok => true,
                    NodeStatus::Degraded => !strict,
                    _ => false,
                };
                let code = if pass {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let body = if e.why.is_empty() {
                    format!("{name}: {}", e.status)
                } else {
                    format!("{name}: {}: {}", e.status, e.why)
                };
                (code, body)
            }
        };
        (code, bounded(body))
    }

    /// The answer to one request line (method, path and query).
    pub fn respond(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> (StatusCode, String) {
        if method != Method::GET && method != Method::HEAD {
            return (StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        }
        let Some(name) = path.strip_prefix("/check/").filter(|n| !n.is_empty()) else {
            return (StatusCode::NOT_FOUND, "try GET /check/<probe>\n".into());
        };
        let strict = query.is_some_and(|q| q.split('&').any(|p| p == "strict"));
        self.answer(name, strict, Instant::now())
    }
}

/// One line, at most [`MAX_BODY`] bytes with its newline.
fn bounded(mut s: String) -> String {
    s.retain(|c| !c.is_control());
    if s.len() > MAX_BODY - 4 {
        let mut end = MAX_BODY - 4;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s.push('\n');
    s
}

/// Serves `listener` until `stop` turns true. Never fails: a broken connection is dropped.
pub async fn serve(listener: TcpListener, board: Arc<CheckBoard>, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNS));
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                // EMFILE and the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            board.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let board = Arc::clone(&board);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| {
                let (code, body) = board.respond(req.method(), req.uri().path(), req.uri().query());
                board.served.fetch_add(1, Ordering::Relaxed);
                let body = if req.method() == Method::HEAD {
                    Bytes::new()
                } else {
                    Bytes::from(body)
                };
                let resp = Response::builder()
                    .status(code)
                    .header("content-type", "text/plain; charset=utf-8")
                    .header("cache-control", "no-store")
                    .body(Full::new(body));
                async move { resp }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(8192)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(CONN_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_probes::Finding;

    fn result(probe: &str, f: Finding) -> ProbeResult {
        ProbeResult {
            probe: probe.into(),
            finding: f,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn answers_from_the_latest_finding() {
        let board = CheckBoard::new(
            ["galera".to_string(), "host".to_string()],
            Duration::from_secs(3),
        );
        let t0 = Instant::now();
        assert_eq!(
            board.answer("galera", false, t0).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let mut degraded = Finding::ok();
        degraded.worsen(
            NodeStatus::Degraded,
            sr_protocol::reasons::GALERA_DONOR,
            "state Donor/Desynced",
        );
        let fail = Finding::fail(sr_protocol::reasons::GALERA_NON_PRIMARY, "cut off");
        board.update(
            &[result("galera", degraded), result("host", Finding::ok())],
            t0,
        );
        assert_eq!(
            board.answer("host", false, t0),
            (StatusCode::OK, "host: OK\n".into())
        );
        let (code, body) = board.answer("galera", false, t0);
        assert_eq!(code, StatusCode::OK);
        assert!(
            body.contains("galera_donor: state Donor/Desynced"),
            "{body}"
        );
        assert_eq!(
            board.answer("galera", true, t0).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        board.update(&[result("galera", fail)], t0);
        let (code, body) = board.answer("galera", false, t0);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("galera: Fail: galera_non_primary"),
            "{body}"
        );
        // `host` left the probe list with that update: unknown now.
        let (code, body) = board.answer("host", false, t0);
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(body.contains("probes: galera"), "{body}");
        // Silence turns into 503, whatever the last finding said.
        board.update(&[result("host", Finding::ok())], t0);
        let (code, body) = board.answer("host", false, t0 + Duration::from_secs(4));
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("stale"), "{body}");
    }

    #[test]
    fn bodies_are_bounded_and_one_line() {
        let board = CheckBoard::new([], Duration::from_secs(3));
        let f = Finding::fail(sr_protocol::reasons::LB_UNREACHABLE, "x\n".repeat(10_000));
        board.update(&[result("haproxy", f)], Instant::now());
        let (_, body) = board.answer("haproxy", false, Instant::now());
        assert!(body.len() <= MAX_BODY, "{}", body.len());
        assert_eq!(body.matches('\n').count(), 1);
        let (code, _) = board.respond(&Method::POST, "/check/haproxy", None);
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            board.respond(&Method::GET, "/check/", None).0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            board.respond(&Method::GET, "/", None).0,
            StatusCode::NOT_FOUND
        );
    }

    /// The real listener: answers, and closes connections past the bound unserved.
    #[tokio::test]
    async fn serves_and_bounds_connections() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let board = Arc::new(CheckBoard::new([], Duration::from_secs(60)));
        board.update(&[result("host", Finding::ok())], Instant::now());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::clone(&board), stop));
        // Hold MAX_CONNS idle connections open, then one more is refused.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNS {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut buf))
            .await
            .expect("the extra connection is closed at once")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert_eq!(board.refused.load(Ordering::Relaxed), 1);
        drop(idle);
        // Served again once they are gone (the permits come back as their tasks end).
        let mut got = String::new();
        for _ in 0..100 {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /check/host HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            got.clear();
            let _ = c.read_to_string(&mut got).await;
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
        assert!(got.ends_with("host: OK\n"), "{got}");
        stop_tx.send(true).unwrap();
        server.await.unwrap();
    }
}
