//! Attacks on the collector's transport bounds, sent as an attacker would: a real HTTP/2
//! client (hyper's) that answers PINGs and holds bodies back, HTTP Basic guessing, and
//! Debian 12's curl over HTTP/2. Each test fails on a collector without the bound.

use super::*;
use crate::store::Role;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A collector served in-process on a loopback port, stopped on drop.
struct Running {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    db_token: String,
    admin_token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a collector with a db and an admin token and the `admin` user; plain HTTP
/// unless `tls`, whose CA is then `dir/ca.pem`.
async fn start(tls: bool, tweak: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (db_token, admin_token) = {
        let s = Store::open(&state).unwrap();
        let admin = s.create_token(Role::Admin).unwrap();
        s.set_user("admin", &admin).unwrap();
        (s.create_token(Role::Db).unwrap(), admin)
    };
    let mut cfg = Config::new(&state, dir.path().join("c.pem"), dir.path().join("k.pem"));
    if tls {
        let ca = sr_tls::pki::Ca::new("attack CA").unwrap();
        let leaf = ca.server(&["localhost", "127.0.0.1"]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("c.pem"), leaf.cert_pem).unwrap();
        std::fs::write(dir.path().join("k.pem"), leaf.key_pem).unwrap();
    } else {
        cfg.tls = None;
        cfg.plain_http = true;
    }
    cfg.shutdown_grace = Duration::from_millis(200);
    tweak(&mut cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(cfg, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("collector runs");
    });
    Running {
        addr,
        dir,
        db_token,
        admin_token,
        stop: Some(stop),
    }
}

/// An HTTP/2 connection with prior knowledge that PINGs the server every 100 ms and
/// answers the server's PINGs, as any h2 client does. Returns the request sender and
/// the connection task (which ends when the server closes the connection).
async fn h2_connect(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<ClientBody>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, task)
}

type ClientBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into()).boxed()
}

fn empty() -> ClientBody {
    Empty::new().boxed()
}

/// A body that sends all but its last byte and then holds the stream open forever.
struct HeldBack(Option<Bytes>);

impl hyper::body::Body for HeldBack {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => Poll::Pending,
        }
    }
}

/// One HTTP/1.1 request on a fresh connection: status, JSON body and headers.
async fn h1(
    addr: SocketAddr,
    req: http::request::Builder,
) -> (StatusCode, serde_json::Value, http::HeaderMap) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(req.header("host", "localhost").body(empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or_default(),
        headers,
    )
}

use http::StatusCode;

/// The collector's counters from `GET /api/v3.1/status`.
async fn counters(c: &Running) -> serde_json::Value {
    let (status, body, _) = h1(
        c.addr,
        http::Request::get("/api/v3.1/status").header("API-Authentication-Token", &c.admin_token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["collector"].clone()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Issue 12: 50 idle HTTP/2 connections that answer PINGs held every slot forever. Now a
/// connection with no request in flight is closed after `idle_timeout`, PINGs or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2_connection_that_answers_pings_is_closed() {
    let c = start(false, |cfg| cfg.idle_timeout = Duration::from_millis(500)).await;
    let (mut send, conn) = h2_connect(c.addr).await;
    let resp = send
        .send_request(
            http::Request::get(format!("http://{}/api/v3.1/ok", c.addr))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    // The client keeps PINGing (every 100 ms) and answering the server's PINGs.
    let closed = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        closed.is_ok(),
        "an idle, PING-answering h2 connection was still open after 10 s"
    );
    assert!(counters(&c).await["idle_connections_closed"].as_u64() >= Some(1));
}

/// A connection busy with a slow request is not cut by the idle deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_deadline_spares_a_request_in_flight() {
    let c = start(false, |cfg| {
        cfg.idle_timeout = Duration::from_millis(300);
        cfg.body_read_timeout = Duration::from_secs(2);
    })
    .await;
    let (mut send, _conn) = h2_connect(c.addr).await;
    let held = http::Request::put(format!("http://{}/api/v3.1/cluster-status/db/n1", c.addr))
        .header("content-type", "application/json")
        .header("api-authentication-token", &c.db_token)
        .header("content-length", "100")
        .body(HeldBack(Some(Bytes::from(vec![b' '; 99]))).boxed())
        .unwrap();
    let resp = send.send_request(held).await.unwrap();
    // Refused for its body deadline (2 s), not reset by the 0.3 s idle deadline.
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
}

/// Issue 12: streams each holding back the last byte of a large body grew memory up to
/// max_connections x streams x max_body_bytes. Now the bytes in flight have a budget;
/// past it a report is answered 503 (`server_busy`) at once, and it is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_held_back_cannot_exceed_the_in_flight_budget() {
    let c = start(false, |cfg| {
        cfg.max_body_bytes = 32 * 1024;
        cfg.max_inflight_body_bytes = 64 * 1024;
        cfg.body_read_timeout = Duration::from_secs(60);
        cfg.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let (send, _conn) = h2_connect(c.addr).await;
    let put = |node: &str, len: usize| {
        http::Request::put(format!(
            "http://{}/api/v3.1/cluster-status/db/{node}",
            c.addr
        ))
        .header("content-type", "application/json")
        .header("api-authentication-token", &c.db_token)
        .header("content-length", len.to_string())
    };
    let mut held = Vec::new();
    for i in 0..2 {
        let req = put(&format!("attacker{i}"), 30_000)
            .body(HeldBack(Some(Bytes::from(vec![b' '; 29_999]))).boxed())
            .unwrap();
        let mut s = send.clone();
        held.push(tokio::spawn(async move { s.send_request(req).await }));
    }
    // Both held bodies take their reservations once ingest starts reading them. Wait for
    // that (an agent's report sent earlier could take budget one of them then misses);
    // then what a real agent sees past the budget: a clean refusal at once, not a hang.
    let want = 2 * 30_000;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counters(&c).await["inflight_body_bytes"].as_u64() != Some(want) {
        assert!(
            Instant::now() < deadline,
            "the held bodies never took {want} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        send.clone()
            .send_request(put("agent", 20_000).body(full(vec![b' '; 20_000])).unwrap()),
    )
    .await
    .expect("a report past the budget is answered at once, not left waiting")
    .unwrap();
    let answer = (
        resp.status(),
        resp.headers().get("retry-after").cloned(),
        resp.into_body().collect().await.unwrap().to_bytes(),
    );
    assert_eq!(answer.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.1.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
    let json: serde_json::Value = serde_json::from_slice(&answer.2).unwrap();
    assert_eq!(json["error_code"], "server_busy", "{json}");
    assert!(json["message"].is_string());
    assert!(counters(&c).await["bodies_refused_busy"].as_u64() >= Some(1));
    for h in held {
        h.abort();
    }
}

/// Issue 12: HTTP Basic guessing was free of limits and silent. Now a source gets a
/// burst of failures, then 429 without any argon2 work, and both are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_per_source_and_counted() {
    let c = start(false, |_| {}).await;
    let mut statuses = Vec::new();
    let started = Instant::now();
    for i in 0..(crate::app::LOGIN_BURST as usize + 10) {
        let (status, body, headers) = h1(
            c.addr,
            http::Request::get("/api/v3.1/cluster-status")
                .header("authorization", basic("admin", &format!("guess{i}"))),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["error_code"], "too_many_login_failures", "{body}");
            let refill = crate::app::LOGIN_REFILL.as_secs().to_string();
            assert_eq!(headers["retry-after"], refill.as_str());
        }
        statuses.push(status.as_u16());
    }
    let burst = crate::app::LOGIN_BURST as usize;
    assert!(statuses[..burst].iter().all(|s| *s == 401), "{statuses:?}");
    // One more guess is allowed per LOGIN_REFILL, and argon2 in a debug build is slow
    // enough for some to come back during the burst.
    let refills =
        (started.elapsed().as_secs_f64() / crate::app::LOGIN_REFILL.as_secs_f64()).ceil() as usize;
    let failed = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(failed <= burst + refills, "{statuses:?}");
    assert_eq!(failed + refused, statuses.len(), "{statuses:?}");
    assert!(refused >= 1, "{statuses:?}");
    let counted = counters(&c).await;
    assert_eq!(counted["login_failures"], failed as u64, "{counted}");
    assert_eq!(counted["logins_throttled"], refused as u64, "{counted}");
}

/// Issue 12: an unknown user was answered 50x faster than a wrong password for a known
/// one (user enumeration). Now both are refused alike, and both cost one argon2
/// verification: the unknown user's is against a dummy hash made with the same algorithm
/// and parameters as a stored user's. Checked on the hashes, not on a stopwatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_costs_the_same_as_a_wrong_password() {
    use argon2::password_hash::PasswordHash;
    let c = start(false, |_| {}).await;
    for user in ["admin", "nobody"] {
        let (status, body, _) = h1(
            c.addr,
            http::Request::get("/api/v3.1/cluster-status")
                .header("authorization", basic(user, "guess")),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(body["error_code"], "unauthorized_error", "{user}: {body}");
    }
    let counted = counters(&c).await;
    assert_eq!(counted["login_failures"], 2, "{counted}");

    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    store.set_user("someone", "a password").unwrap();
    let stored = store.user_hash("someone").unwrap().expect("stored");
    let (stored, dummy) = (
        PasswordHash::new(&stored).unwrap(),
        PasswordHash::new(crate::api::dummy_phc()).unwrap(),
    );
    assert_eq!(
        (dummy.algorithm, dummy.version, dummy.params.to_string()),
        (stored.algorithm, stored.version, stored.params.to_string()),
        "the dummy hash must cost what a stored one costs"
    );
    assert!(!crate::store::verify_password(crate::api::dummy_phc(), ""));
}

/// Issue 12: Debian 12's curl (7.88.1) over HTTP/2 exits 92 when the collector answers
/// a PUT early (415, 401) and resets the upload with NO_ERROR. Now a small body is read
/// and discarded first, so curl gets the answer and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http2_gets_early_refusals_of_a_put() {
    let c = start(true, |_| {}).await;
    // A small report and one near the body limit: curl answered 92 for both, depending
    // on whether its upload was still running when the answer came.
    let small = c.dir.path().join("small.json");
    std::fs::write(&small, vec![b' '; 1000]).unwrap();
    let large = c.dir.path().join("large.json");
    std::fs::write(&large, vec![b' '; 200_000]).unwrap();
    let url = format!(
        "https://localhost:{}/api/v3.1/cluster-status/db/node1",
        c.addr.port()
    );
    let cases = [
        // Wrong content type: 415 before the body.
        ("text/plain", c.db_token.clone(), 415),
        // Unknown token: 401 before the body.
        ("application/json", "srt_not-a-token".to_string(), 401),
    ];
    for ((content_type, token, want), body) in cases
        .iter()
        .flat_map(|c| [(c, &small), (c, &large)])
        .cycle()
        .take(12)
    {
        let out = tokio::process::Command::new("curl")
            .args(["--http2", "-sS", "-X", "PUT", "--max-time", "10"])
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", c.addr.port()),
            ])
            .arg("--cacert")
            .arg(c.dir.path().join("ca.pem"))
            .args(["-H", &format!("Content-Type: {content_type}")])
            .args(["-H", &format!("API-Authentication-Token: {token}")])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .args(["-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
            .arg(&url)
            .output()
            .await
            .expect("curl is installed (Debian: apt-get install curl)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "curl exited {:?} for {content_type}: {} {stdout}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), format!("{want} 2"), "{content_type}");
    }
}

#[test]
fn the_connection_cap_fits_the_file_descriptor_limit() {
    assert_eq!(connection_cap(4096, None), 4096);
    assert_eq!(connection_cap(4096, Some(1024)), 1024 - FD_HEADROOM);
    assert_eq!(connection_cap(100, Some(1024)), 100);
    assert_eq!(connection_cap(100, Some(10)), 1);
}

/// Issue 12: a store with overwritten pages started and accepted writes. `serve` now
/// checks it before anything else and refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_refuses_to_start_on_a_damaged_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    {
        let mut s = Store::open(&state).unwrap();
        s.create_token(Role::Db).unwrap();
        for i in 0..20 {
            let rows = (0..50)
                .map(|seq| crate::store::TransitionRow {
                    boot_id: "b".into(),
                    seq,
                    at_ms: 1,
                    service: None,
                    from: "OK".into(),
                    to: "Fail".into(),
                    reasons_json: "[]".into(),
                })
                .collect();
            s.commit_durable(&[crate::store::DurableWrite::Transitions {
                node_type: sr_protocol::NodeType::Db,
                node_id: format!("n{i}"),
                received_ms: 1,
                rows,
            }])
            .unwrap();
        }
    }
    let path = state.join(crate::store::DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4096..].fill(0x5a);
    std::fs::write(&path, bytes).unwrap();
    let mut cfg = Config::new(&state, "", "");
    cfg.tls = None;
    cfg.plain_http = true;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        serve(cfg, listener, std::future::pending()),
    )
    .await
    .expect("serve returns instead of running")
    .expect_err("a damaged store is refused");
    assert!(err.to_string().contains("Recovery:"), "{err}");
}
