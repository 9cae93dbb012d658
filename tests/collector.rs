//! End-to-end tests of the collector through the real `status-reporter` binary.
//!
//! Each test makes its own CA and server certificate (rcgen), runs `collector init` and
//! `collector run` on a loopback port, and speaks TLS to it. Every bad input of the
//! issue's list is sent with its exact expected status and `error_code`, and the stored
//! state (cluster status and node list) is compared before and after. The collector's
//! stderr, at debug level, is checked for tokens and panics at the end.

use serde_json::{json, Value};
use sr_tls::pki::Ca;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod harness;

use harness::fixtures::{now_ms, report_headers, Node};
use harness::{Collector, BIN, DEADLINE};

/// What this suite does with a collector beyond the harness's own.
trait CollectorSuite {
    fn cli(&self, args: &[&str]) -> (i32, String, String);
    fn config_arg(&self) -> String;
    fn check_logs(&self);
}

impl CollectorSuite for Collector {
    /// Runs the CLI against this collector's config; returns (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(BIN).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn config_arg(&self) -> String {
        self.config().display().to_string()
    }

    /// The collector's stderr must hold no token and no panic.
    fn check_logs(&self) {
        let log = self.log();
        assert!(!log.contains("panicked"), "collector panicked:\n{log}");
        for role in ["manager", "db", "broker", "admin"] {
            assert!(!log.contains(&self.token(role)), "{role} token logged");
        }
        assert!(
            !log.contains("srt_"),
            "something token-like was logged:\n{log}"
        );
    }
}

/// A reporting node as this suite sends it: named apart from its id, a Patroni service, an
/// hour-long reporting period (nothing goes stale during a test) and a private address.
fn reporting_node(node_type: &'static str, id: &str, name: &str) -> Node {
    Node {
        name: name.into(),
        reporting_freq: 3600,
        private_ip: "10.0.0.9",
        service: Some("Patroni"),
        ..Node::new(node_type, id)
    }
}

/// Sends `node`'s next report with `token`, signed.
async fn report(c: &Collector, node: &mut Node, token: &str, status: &str) -> (u16, Value) {
    let (body, sig) = node.next(status, now_ms());
    c.put(&node.path(), &report_headers(token, &sig), body)
        .await
}

/// A raw TLS stream speaking HTTP/1.1, for requests a well-behaved client can't make.
async fn raw_tls(
    c: &Collector,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut cfg = sr_tls::client_config(&c.ca, None).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(c.addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
}

/// Reads until EOF or error, bounded by the deadline; returns what arrived.
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let r = tokio::time::timeout(DEADLINE, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "server did not close the connection");
    String::from_utf8_lossy(&buf).into()
}

fn nodes_json(c: &Collector) -> Value {
    let (code, out, err) = c.cli(&["nodes", "list", "--json", "--config", &c.config_arg()]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// (what, path, headers, body, expected status, expected error_code).
type Case = (
    &'static str,
    String,
    Vec<(String, String)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_exactly_and_changes_nothing() {
    let c = Collector::start_in_temp_dir(&[]);
    let db = c.token("db");
    let mut n1 = reporting_node("db", "n1", "db1");
    let (code, ok) = report(&c, &mut n1, &db, "OK").await;
    assert_eq!(code, 200, "{ok}");
    assert_eq!(ok["acked_seq"], 1);
    assert_eq!(ok["transitions_acked"], 1);
    assert_eq!(ok["key_pinned"], true);
    let before_view = c.view().await;
    // The latest row (the node list's `last_seen_ms`) is written behind, every 0.5 s: read
    // the list once it is there, or the comparison below races the flusher.
    let before_nodes = harness::wait_for("the first report's latest row", DEADLINE, || {
        let nodes = nodes_json(&c);
        (!nodes[0]["last_seen_ms"].is_null()).then_some(nodes)
    });
    assert_eq!(
        before_view["services"]["db"]["nodes"]["db1"]["status"],
        "OK"
    );

    let ct = ("Content-Type", "application/json");
    let tok = (sr_protocol::TOKEN_HEADER, db.as_str());
    let path = n1.path();

    // Each case: (what, path, headers, body) → (status, error_code).
    let mut cases: Vec<Case> = Vec::new();
    let mut signed =
        |n: &mut Node, what: &'static str, body: Vec<u8>, code: u16, err: &'static str| {
            let sig = n.sign(&body, now_ms());
            n.seq -= 1; // a refused report does not consume its sequence number
            cases.push((
                what,
                n.path(),
                vec![
                    (ct.0.into(), ct.1.into()),
                    (tok.0.into(), tok.1.into()),
                    (sr_protocol::SIGNATURE_HEADER.into(), sig),
                ],
                body,
                code,
                err,
            ));
        };
    let good = |n: &mut Node| {
        let b = n.body("OK", now_ms());
        serde_json::from_slice::<Value>(&b).unwrap()
    };
    n1.seq += 1;
    signed(
        &mut n1,
        "malformed JSON",
        b"{\"reporting_freq\": 5,".to_vec(),
        400,
        "bad_parameters_error",
    );
    // A good body, broken one way each: refused as bad parameters, signature notwithstanding.
    type Breakage = (&'static str, fn(&mut Value));
    let breakages: [Breakage; 4] = [
        ("missing field", |v| {
            v.as_object_mut().unwrap().remove("timestamp");
        }),
        ("extra field", |v| v["surprise"] = json!(1)),
        ("reporting_freq as a string", |v| {
            v["reporting_freq"] = json!("5")
        }),
        ("unparseable timestamp", |v| {
            v["timestamp"] = json!("2020-02-10T12:15:30Z")
        }),
    ];
    for (what, break_it) in breakages {
        let mut v = good(&mut n1);
        break_it(&mut v);
        let body = serde_json::to_vec(&v).unwrap();
        signed(&mut n1, what, body, 400, "bad_parameters_error");
    }
    let (body, sig) = n1.next("OK", now_ms());
    n1.seq -= 1;
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|&b| b == b'O').unwrap();
    tampered[pos] = b'X';
    let h = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    let sig_h = sr_protocol::SIGNATURE_HEADER;
    cases.push((
        "bad signature (tampered body)",
        path.clone(),
        h(&[ct, tok, (sig_h, &sig)]),
        tampered,
        401,
        "invalid_signature",
    ));
    cases.push((
        "garbage signature header",
        path.clone(),
        h(&[ct, tok, (sig_h, "v1 key=zz")]),
        body.clone(),
        401,
        "invalid_signature",
    ));
    cases.push((
        "unsigned report",
        path.clone(),
        h(&[ct, tok]),
        body.clone(),
        401,
        "signature_required",
    ));
    cases.push((
        "wrong content type",
        path.clone(),
        h(&[("Content-Type", "text/plain"), tok, (sig_h, &sig)]),
        body.clone(),
        415,
        "unsupported_media_type",
    ));
    cases.push((
        "content type with parameters",
        path.clone(),
        h(&[
            ("Content-Type", "application/json; charset=utf-8"),
            tok,
            (sig_h, &sig),
        ]),
        body.clone(),
        415,
        "unsupported_media_type",
    ));
    cases.push((
        "no content type",
        path.clone(),
        h(&[tok, (sig_h, &sig)]),
        body.clone(),
        415,
        "unsupported_media_type",
    ));
    cases.push((
        "missing token",
        path.clone(),
        h(&[ct, (sig_h, &sig)]),
        body.clone(),
        401,
        "unauthorized_error",
    ));
    cases.push((
        "bad token",
        path.clone(),
        h(&[ct, (sr_protocol::TOKEN_HEADER, "srt_wrong"), (sig_h, &sig)]),
        body.clone(),
        401,
        "unauthorized_error",
    ));
    let broker = c.token("broker");
    cases.push((
        "wrong-role token",
        path.clone(),
        h(&[ct, (sr_protocol::TOKEN_HEADER, &broker), (sig_h, &sig)]),
        body.clone(),
        403,
        "forbidden_error",
    ));
    let admin = c.token("admin");
    cases.push((
        "admin token reporting",
        path.clone(),
        h(&[ct, (sr_protocol::TOKEN_HEADER, &admin), (sig_h, &sig)]),
        body.clone(),
        403,
        "forbidden_error",
    ));
    cases.push((
        "unknown node type",
        "/api/v3.1/cluster-status/router/n1".into(),
        h(&[ct, tok, (sig_h, &sig)]),
        body.clone(),
        400,
        "unknown_node_type",
    ));
    for trick in [
        "..",
        "%2e%2e",
        "a%2Fb",
        "n1%00",
        "%C3%A9",
        "a%20b",
        &"x".repeat(129),
    ] {
        let p = format!("/api/v3.1/cluster-status/db/{trick}");
        cases.push((
            "node id with path tricks",
            p,
            h(&[ct, tok, (sig_h, &sig)]),
            body.clone(),
            400,
            "invalid_node_id",
        ));
    }
    let big = vec![b' '; 256 * 1024 + 1];
    cases.push((
        "body over the limit",
        path.clone(),
        h(&[ct, tok, (sig_h, &sig)]),
        big,
        413,
        "payload_too_large",
    ));

    for (what, p, headers, body, want_code, want_err) in cases {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let (code, v) = c.put(&p, &headers, body).await;
        assert_eq!(
            (code, v["error_code"].as_str()),
            (want_code, Some(want_err)),
            "{what}: {v}"
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: no message in {v}"
        );
    }

    // A replayed report: the exact bytes of an accepted one, and a lower seq.
    let (body, sig) = n1.next("OK", now_ms());
    let headers = [ct, tok, (sig_h, sig.as_str())];
    assert_eq!(c.put(&path, &headers, body.clone()).await.0, 200);
    let after_good = c.view().await;
    let (code, v) = c.put(&path, &headers, body).await;
    assert_eq!(
        (code, v["error_code"].as_str()),
        (409, Some("replayed_report")),
        "{v}"
    );
    n1.seq -= 2;
    let (code, v) = report(&c, &mut n1, &db, "Fail").await;
    assert_eq!(
        (code, v["error_code"].as_str()),
        (409, Some("replayed_report")),
        "{v}"
    );
    n1.seq += 1;

    // A declared Content-Length over the limit is refused before the body is sent.
    let mut s = raw_tls(&c).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{}: {db}\r\nContent-Length: 999999999\r\n\r\n",
        sr_protocol::TOKEN_HEADER
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .expect("no answer without a body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");

    // Nothing any refusal did is visible: same view (but for the one good report) and same nodes.
    let mut expect = after_good.clone();
    let mut got = c.view().await;
    for v in [&mut expect, &mut got] {
        v["services"]["db"]["nodes"]["db1"]
            .as_object_mut()
            .unwrap()
            .remove("last_seen");
        v["services"]["db"]["nodes"]["db1"]
            .as_object_mut()
            .unwrap()
            .remove("skew_ms");
    }
    assert_eq!(got, expect);
    // The one good report moves `last_seen_ms` once the write-behind runs (every 0.5 s, so
    // on a loaded machine before this line): it may only move forward; the rest is unchanged.
    let strip_last_seen = |mut nodes: Value| {
        let last_seen = nodes[0]["last_seen_ms"].as_u64().unwrap();
        nodes[0].as_object_mut().unwrap().remove("last_seen_ms");
        (nodes, last_seen)
    };
    let (nodes_now, seen_now) = strip_last_seen(nodes_json(&c));
    let (nodes_before, seen_before) = strip_last_seen(before_nodes);
    assert_eq!(nodes_now, nodes_before);
    assert!(
        seen_now >= seen_before,
        "last_seen_ms went back: {seen_now} < {seen_before}"
    );
    assert_eq!(
        before_view["services"]["db"]["nodes"]["db1"]["status"],
        got["services"]["db"]["nodes"]["db1"]["status"]
    );

    // Key mismatch: refused, flagged in the view until `nodes forget`.
    let mut impostor = reporting_node("db", "n1", "db1");
    impostor.seq = 100;
    let (code, v) = report(&c, &mut impostor, &db, "OK").await;
    assert_eq!(
        (code, v["error_code"].as_str()),
        (403, Some("key_mismatch")),
        "{v}"
    );
    let flagged = c.view().await;
    let node = &flagged["services"]["db"]["nodes"]["db1"];
    assert_eq!(node["key_mismatch"], true, "{flagged}");
    assert_eq!(node["status"], "Fail");
    assert!(node["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["code"] == "key_mismatch"));
    // The genuine node still reports but stays flagged.
    assert_eq!(report(&c, &mut n1, &db, "OK").await.0, 200);
    assert_eq!(
        c.view().await["services"]["db"]["nodes"]["db1"]["key_mismatch"],
        true
    );
    let (code, out, err) = c.cli(&[
        "nodes",
        "forget",
        "n1",
        "--type",
        "db",
        "--config",
        &c.config_arg(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    harness::eventually("the new key to be accepted after forget", DEADLINE, || {
        let c = &c;
        let (body, sig) = impostor.next("OK", now_ms());
        let path = impostor.path();
        async move {
            c.put(
                &path,
                &[
                    ct,
                    (sr_protocol::TOKEN_HEADER, &c.token("db")),
                    (sig_h, &sig),
                ],
                body,
            )
            .await
            .0 == 200
        }
    })
    .await;
    let healed = c.view().await;
    assert_eq!(
        healed["services"]["db"]["nodes"]["db1"]["key_mismatch"], false,
        "{healed}"
    );
    assert_eq!(healed["services"]["db"]["nodes"]["db1"]["status"], "OK");
    c.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_untrusted_clients_are_cut_off() {
    let c = Collector::start_in_temp_dir(&[
        ("header_read_timeout_secs", "1"),
        ("body_read_timeout_secs", "1"),
    ]);
    // A client that trusts another CA refuses the collector's certificate.
    let other = tempfile::tempdir().unwrap();
    let other_ca = Ca::new("other CA").unwrap();
    std::fs::write(other.path().join("ca.pem"), other_ca.cert_pem()).unwrap();
    let stranger = sr_tls::HttpsClient::new(
        sr_tls::client_config(&other.path().join("ca.pem"), None).unwrap(),
        Duration::from_secs(5),
    );
    let err = stranger
        .get(&c.url("/api/v3.1/ok"), &[], Duration::from_secs(20), 4096)
        .await
        .unwrap_err();
    assert!(
        sr_tls::client::error_chain(&err).contains("UnknownIssuer"),
        "{err}"
    );

    // Slow head: part of a request line and headers, then silence → the server hangs up.
    let mut s = raw_tls(&c).await.unwrap();
    s.write_all(b"PUT /api/v3.1/cluster-status/db/n1 HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let _ = read_to_close(&mut s).await;

    // Slow body: complete head, a few body bytes, then silence → 408 and close.
    let mut s = raw_tls(&c).await.unwrap();
    let head = format!(
        "PUT /api/v3.1/cluster-status/db/n1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{}: {}\r\nContent-Length: 100\r\n\r\n{{\"rep",
        sr_protocol::TOKEN_HEADER,
        c.token("db")
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // A TCP connection that never starts TLS is closed too.
    let mut tcp = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let _ = read_to_close(&mut tcp).await;

    // The collector is still fine.
    assert_eq!(c.get("/api/v3.1/ok", &[]).await.0, 200);
    let (code, status) = c
        .get(
            "/api/v3.1/status",
            &[(sr_protocol::TOKEN_HEADER, &c.token("admin"))],
        )
        .await;
    assert_eq!(code, 200);
    assert!(
        status["collector"]["tls_handshake_failures"]
            .as_u64()
            .unwrap()
            >= 1,
        "{status}"
    );
    c.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_and_counted() {
    let c = Collector::start_in_temp_dir(&[("max_connections", "3")]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw_tls(&c).await.unwrap());
    }
    // The fourth connection is accepted by the kernel, then closed without a handshake.
    let refused = raw_tls(&c).await;
    match refused {
        Err(_) => {}
        Ok(mut s) => {
            // TLS 1.3 may report success before the server's close arrives.
            let _ = s
                .write_all(b"GET /api/v3.1/ok HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await;
            let answer = read_to_close(&mut s).await;
            assert!(
                answer.is_empty(),
                "over-cap connection was served: {answer}"
            );
        }
    }
    drop(held);
    harness::eventually("a connection slot to free up", DEADLINE, || async {
        c.get("/api/v3.1/ok", &[]).await.0 == 200
    })
    .await;
    let (_, status) = c
        .get(
            "/api/v3.1/status",
            &[(sr_protocol::TOKEN_HEADER, &c.token("admin"))],
        )
        .await;
    assert!(
        status["collector"]["connections_refused"].as_u64().unwrap() >= 1,
        "{status}"
    );
    c.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_cluster_status_cli_and_list_endpoints() {
    let mut c = Collector::start_in_temp_dir(&[]);
    let ca = c.ca.display().to_string();
    let manager = format!("https://localhost:{}", c.addr.port());
    let admin = c.token("admin");
    let status_cli = |extra: &[&str], token: &str| {
        let mut args = vec!["cluster", "status", "--manager", &manager, "--ca-path", &ca];
        args.extend_from_slice(extra);
        let out = Command::new(BIN)
            .args(&args)
            .env("STATUS_REPORTER_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // No nodes at all is never OK.
    let (code, out, _) = status_cli(&[], &admin);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("Cluster status: Fail") && out.contains("no_nodes"),
        "{out}"
    );
    let (code, _) = c
        .get(
            "/api/v3.1/cluster-status?summary=true",
            &[(sr_protocol::TOKEN_HEADER, &admin)],
        )
        .await;
    assert_eq!(code, 500);

    let mut nodes = vec![reporting_node("manager", "m1", "manager1")];
    for i in 1..=3 {
        let mut db = reporting_node("db", &format!("d{i}"), &format!("db{i}"));
        // A healthy Patroni cluster as the db rule expects it: db1 leads, the others stream.
        db.facts = if i == 1 {
            json!({"db": {"member": "db1", "role": "leader", "patroni_reachable": true, "timeline": 1,
                "replication": {"db2": {"state": "streaming", "sync_state": "async"}, "db3": {"state": "streaming", "sync_state": "async"}},
                "replica_lag_bytes": {"db2": 0, "db3": 0}}})
        } else {
            json!({"db": {"member": format!("db{i}"), "role": "replica", "patroni_reachable": true, "timeline": 1, "lag_bytes": 0}})
        };
        nodes.push(db);
        nodes.push(reporting_node(
            "broker",
            &format!("b{i}"),
            &format!("broker{i}"),
        ));
    }
    for n in nodes.iter_mut() {
        let token = c.token(n.node_type);
        let (code, v) = report(&c, n, &token, "OK").await;
        assert_eq!(code, 200, "{v}");
    }
    let (code, out, err) = status_cli(&[], &admin);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Cluster status: OK") && out.contains("db2") && out.contains("broker3"),
        "{out}"
    );

    // One of three db nodes failing: Degraded (quorum holds), exit 1, reasons shown.
    let token = c.token("db");
    assert_eq!(report(&c, &mut nodes[3], &token, "Fail").await.0, 200);
    let (code, out, _) = status_cli(&[], &admin);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Cluster status: Degraded") && out.contains("reported_unhealthy"),
        "{out}"
    );
    let (code, out, _) = status_cli(&["--json"], &admin);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"]["db"]["status"], "Degraded");
    assert_eq!(v["services"]["db"]["nodes"]["db2"]["status"], "Fail");
    assert_eq!(v["services"]["db"]["nodes"]["db2"]["signed"], true);

    // Unauthorized, wrong CA, unreachable: exit 3.
    assert_eq!(status_cli(&[], "srt_nope").0, 3);
    assert_eq!(
        status_cli(&[], &c.token("db")).0,
        3,
        "reporter tokens may not read cluster status"
    );
    let wrong = Command::new(BIN)
        .args([
            "cluster",
            "status",
            "--manager",
            "127.0.0.1:1",
            "--ca-path",
            &ca,
            "--token",
            &admin,
            "--timeout",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(3));
    let token_file = c.path("admin.token");
    std::fs::write(&token_file, format!("{admin}\n")).unwrap();
    let from_file = Command::new(BIN)
        .args([
            "cluster",
            "status",
            "--manager",
            &manager,
            "--ca-path",
            &ca,
            "--token-file",
            &token_file.display().to_string(),
        ])
        .env_remove("STATUS_REPORTER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(from_file.status.code(), Some(1));

    // HTTP Basic against the store's users (what `cfy` sends), summary, and its errors.
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{admin}"))
    );
    let (code, v) = c
        .get(
            "/api/v3.1/cluster-status?summary=true",
            &[("Authorization", &basic), ("Tenant", "default_tenant")],
        )
        .await;
    assert_eq!(
        (code, v),
        (200, json!({"status": "Degraded", "services": {}}))
    );
    let wrong_pw = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:guess")
    );
    assert_eq!(
        c.get("/api/v3.1/cluster-status", &[("Authorization", &wrong_pw)])
            .await
            .0,
        401
    );
    assert_eq!(c.get("/api/v3.1/cluster-status", &[]).await.0, 401);
    let (code, v) = c
        .get(
            "/api/v3.1/cluster-status?summary=maybe",
            &[(sr_protocol::TOKEN_HEADER, &admin)],
        )
        .await;
    assert_eq!(
        (code, v["error_code"].as_str()),
        (400, Some("bad_parameters_error"))
    );

    // Lists: reporters may read /managers (agents refresh their manager list) but no other.
    let (code, v) = c
        .get(
            "/api/v3.1/managers",
            &[(sr_protocol::TOKEN_HEADER, &c.token("broker"))],
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["items"][0]["private_ip"], "10.0.0.9");
    assert_eq!(v["items"][0]["hostname"], "manager1");
    assert_eq!(v["metadata"]["pagination"]["total"], 1);
    assert_eq!(
        c.get(
            "/api/v3.1/db-nodes",
            &[(sr_protocol::TOKEN_HEADER, &c.token("db"))]
        )
        .await
        .0,
        403
    );
    let (code, v) = c
        .get("/api/v3.1/db-nodes", &[(sr_protocol::TOKEN_HEADER, &admin)])
        .await;
    assert_eq!((code, v["items"].as_array().unwrap().len()), (200, 3));
    assert_eq!(
        c.get("/api/v3.1/brokers", &[("Authorization", &basic)])
            .await
            .0,
        200
    );
    let (code, v) = c
        .get("/api/v3.1/version", &[(sr_protocol::TOKEN_HEADER, &admin)])
        .await;
    assert_eq!((code, v["version"].as_str()), (200, Some("5.0.5")));
    let (code, v) = c
        .get("/api/v3.1/status", &[(sr_protocol::TOKEN_HEADER, &admin)])
        .await;
    assert_eq!((code, v["status"].as_str()), (200, Some("OK")));
    assert_eq!(
        c.get(
            "/api/v3.1/provider/context",
            &[(sr_protocol::TOKEN_HEADER, &admin)]
        )
        .await
        .0,
        404
    );

    // Tokens: created and revoked by the CLI while the collector runs.
    let (code, secret, err) = c.cli(&["tokens", "create", "manager", "--config", &c.config_arg()]);
    assert_eq!(code, 0, "{err}");
    let secret = secret.trim().to_string();
    // The status a request with the new token gets.
    let answer = |secret: String| {
        let c = &c;
        async move {
            c.get(
                "/api/v3.1/managers",
                &[(sr_protocol::TOKEN_HEADER, &secret)],
            )
            .await
            .0
        }
    };
    harness::eventually("a new token to be accepted", DEADLINE, || {
        let status = answer(secret.clone());
        async move { status.await == 200 }
    })
    .await;
    let (_, list, _) = c.cli(&["tokens", "list", "--json", "--config", &c.config_arg()]);
    assert!(!list.contains("srt_"), "tokens list shows a secret: {list}");
    let listed: Value = serde_json::from_str(&list).unwrap();
    let id = listed.as_array().unwrap().last().unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        c.cli(&[
            "tokens",
            "revoke",
            &id.to_string(),
            "--config",
            &c.config_arg()
        ])
        .0,
        0
    );
    harness::eventually("a revoked token to be refused", DEADLINE, || {
        let status = answer(secret.clone());
        async move { status.await == 401 }
    })
    .await;

    // A graceful stop keeps the latest reports: after a restart the view is the same.
    let before = c.view().await;
    assert!(c.stop().success());
    c.spawn();
    let after = c.view().await;
    assert_eq!(after["services"]["db"]["nodes"]["db2"]["status"], "Fail");
    assert_eq!(
        after["services"]["db"]["nodes"],
        before["services"]["db"]["nodes"]
    );
    // Replay state survived: the last accepted sequence is refused.
    nodes[3].seq -= 1;
    let (code, v) = report(&c, &mut nodes[3], &token, "OK").await;
    assert_eq!(
        (code, v["error_code"].as_str()),
        (409, Some("replayed_report"))
    );
    c.check_logs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_leaves_a_consistent_store() {
    let mut c = Collector::start_in_temp_dir(&[]);
    let state = c.path("state");
    for round in 0..3 {
        let token = c.token("db");
        // Fresh nodes each round; every 200 with key_pinned promises a durable pin and
        // every transitions_acked a durable transition.
        let mut nodes: Vec<Node> = (0..20)
            .map(|i| reporting_node("db", &format!("r{round}-n{i}"), &format!("r{round}-db{i}")))
            .collect();
        let mut promised_pins = Vec::new();
        let mut promised_transitions = Vec::new();
        let killer = {
            let pid = c.pid();
            let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            (pid, accepted)
        };
        let mut sent = 0;
        let mut killed = false;
        'outer: for _ in 0..50 {
            for n in nodes.iter_mut() {
                let (body, sig) = n.next("OK", now_ms());
                let headers = [
                    ("Content-Type", "application/json"),
                    (sr_protocol::TOKEN_HEADER, token.as_str()),
                    (sr_protocol::SIGNATURE_HEADER, sig.as_str()),
                ];
                let r = c
                    .client()
                    .request(
                        http::Method::PUT,
                        &c.url(&n.path()),
                        &headers,
                        body.into(),
                        Duration::from_secs(20),
                        1 << 20,
                    )
                    .await;
                match r {
                    Ok(r) if r.status == 200 => {
                        let v: Value = serde_json::from_slice(&r.body).unwrap();
                        if v["key_pinned"] == true {
                            promised_pins.push(n.id.clone());
                        }
                        promised_transitions.push((n.id.clone(), n.seq));
                        killer.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(r) => panic!("unexpected {}", r.status),
                    Err(_) => break 'outer,
                }
                sent += 1;
                // Kill in the middle of the load, at a different point each round.
                if sent == 150 + round * 37 {
                    let pid = killer.0;
                    // SIGKILL from another thread while requests are in flight.
                    std::thread::spawn(move || {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    });
                    killed = true;
                }
            }
        }
        assert!(killed, "round {round}: the kill point was never reached");
        c.kill9();
        let store = sr_collector::Store::open(&state).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        let stored = store.load_nodes().unwrap();
        for id in &promised_pins {
            let n = stored
                .iter()
                .find(|s| &s.row.node_id == id)
                .unwrap_or_else(|| panic!("round {round}: pin of {id} lost"));
            assert!(n.row.pinned_key.is_some());
        }
        for (id, seq) in &promised_transitions {
            let t = store
                .transitions(sr_protocol::NodeType::Db, id, 1000)
                .unwrap();
            assert!(
                t.iter().any(|t| t.seq == *seq),
                "round {round}: transition {id}/{seq} lost"
            );
        }
        drop(store);
        c.spawn();
        // The restarted collector accepts the survivors' next reports (seq moves on).
        let first = &mut nodes[0];
        let (code, v) = report(&c, first, &token, "OK").await;
        assert_eq!(code, 200, "round {round}: {v}");
    }
    c.check_logs();
}

#[test]
fn init_refuses_to_overwrite_and_validate_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    let state = dir.path().join("s");
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    let p = |x: &Path| x.display().to_string();
    let first = run(&[
        "collector",
        "init",
        "--plain-http",
        "--config",
        &p(&cfg),
        "--state-dir",
        &p(&state),
    ]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = run(&[
        "collector",
        "init",
        "--plain-http",
        "--config",
        &p(&cfg),
        "--state-dir",
        &p(&state),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(run(&[
        "collector",
        "init",
        "--plain-http",
        "--force",
        "--config",
        &p(&cfg),
        "--state-dir",
        &p(&state)
    ])
    .status
    .success());
    let listed = run(&["tokens", "list", "--config", &p(&cfg)]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        9,
        "header + 2 × 4 tokens"
    );
    std::fs::write(&cfg, "listen = \"x\"\nmax_connections = 0\nbogus = 1\n").unwrap();
    let bad = run(&["collector", "validate", "--config", &p(&cfg)]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bogus"));
    std::fs::write(&cfg, "listen = \"x\"\nmax_connections = 0\n").unwrap();
    let bad =
        String::from_utf8_lossy(&run(&["collector", "validate", "--config", &p(&cfg)]).stderr)
            .to_string();
    for needle in ["listen", "max_connections", "state_dir", "cert_path"] {
        assert!(bad.contains(needle), "{needle} missing: {bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_legacy_reports_only_when_allowed_and_never_after_a_pin() {
    let c = Collector::start_in_temp_dir(&[("allow_unsigned_legacy", "true")]);
    let broker = c.token("broker");
    // Exactly what the Python 5.0.5 reporter sends: no extension, no signature.
    let legacy = serde_json::to_vec(&json!({
        "reporting_freq": 5,
        "timestamp": sr_protocol::timestamp::format_legacy(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
        ).unwrap(),
        "report": {"status": "OK", "services": {"RabbitMQ": {"status": "Active", "extra_info": {"cluster_status": {"rabbit@b1": "OK"}}}}}
    }))
    .unwrap();
    let headers = [
        ("Content-Type", "application/json"),
        (sr_protocol::TOKEN_HEADER, broker.as_str()),
        ("Tenant", "default_tenant"),
    ];
    let (code, v) = c
        .put(
            "/api/v3.1/cluster-status/broker/py-1",
            &headers,
            legacy.clone(),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["acked_seq"], Value::Null);
    assert_eq!(v["key_pinned"], false);
    let node = &c.view().await["services"]["broker"]["nodes"]["py-1"];
    assert_eq!(node["signed"], false);
    assert_eq!(
        node["private_ip"], "127.0.0.1",
        "legacy nodes are listed at their peer address"
    );
    assert_eq!(node["services"]["RabbitMQ"]["status"], "Active");

    // The same node upgraded to our agent: its first signed report pins its key...
    let mut upgraded = reporting_node("broker", "py-1", "py-1");
    let (code, v) = report(&c, &mut upgraded, &broker, "OK").await;
    assert_eq!((code, v["key_pinned"].as_bool()), (200, Some(true)), "{v}");
    // ...and from then on an unsigned report for it is a downgrade, refused.
    let (code, v) = c
        .put("/api/v3.1/cluster-status/broker/py-1", &headers, legacy)
        .await;
    assert_eq!(
        (code, v["error_code"].as_str()),
        (401, Some("signature_required")),
        "{v}"
    );
    assert_eq!(
        c.view().await["services"]["broker"]["nodes"]["py-1"]["signed"],
        true
    );
    c.check_logs();
}

/// Issue 15: `cluster status` (and `history`, `maintenance list`) with no flag on a manager.
/// `collector init --ca-path` writes `client.toml` beside the config; with
/// `STATUS_REPORTER_ETC` pointing at that directory (as `/etc/status-reporter` on a real
/// manager) the commands need no flag; a flag still overrides its own value; a file others
/// may read is refused before its token is used.
#[test]
fn operator_commands_with_no_flags_read_the_client_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc");
    let pki = harness::Pki::with_sans(&tmp.path().join("pki"), "client file CA", &["127.0.0.1"]);
    let port = harness::lab::free_ports(1).unwrap()[0];
    let mut c = Collector::init_with(
        &dir,
        &pki,
        &format!("127.0.0.1:{port}"),
        &["--ca-path".as_ref(), pki.ca.as_os_str()],
    );
    c.spawn();
    let client = dir.join("client.toml");
    let mode = std::fs::metadata(&client).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640, "client.toml mode");
    let text = std::fs::read_to_string(&client).unwrap();
    assert!(
        text.contains(&format!("manager = \"https://127.0.0.1:{port}\"")),
        "{text}"
    );
    assert!(
        text.contains(&c.token("admin")),
        "the admin token is in the file"
    );

    let etc = dir.display().to_string();
    let no_flags = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .args(args)
            .env("STATUS_REPORTER_ETC", &etc)
            .env_remove("STATUS_REPORTER_TOKEN")
            .env_remove("STATUS_REPORTER_MANAGER")
            .env_remove("STATUS_REPORTER_CA_PATH")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // No nodes: the real view, Fail (exit 2), read with no flag at all.
    let (code, out, err) = no_flags(&["cluster", "status"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("Cluster status: Fail") && out.contains("no_nodes"),
        "{out}"
    );
    let (code, out, err) = no_flags(&["cluster", "history", "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"items\""), "{out}");
    let (code, out, err) = no_flags(&["maintenance", "list"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Nothing is in maintenance"), "{out}");

    // A flag overrides its own value: a wrong token from the variable is used (and refused),
    // the file's address and CA still apply.
    let (code, _, err) = no_flags(
        &["cluster", "status"],
        &[("STATUS_REPORTER_TOKEN", "srt_wrong")],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("401") || err.contains("403"), "{err}");
    // --manager elsewhere: unreachable there, not here.
    let dead = harness::lab::free_ports(1).unwrap()[0];
    let (code, _, err) = no_flags(
        &[
            "cluster",
            "status",
            "--manager",
            &format!("127.0.0.1:{dead}"),
            "--timeout",
            "2",
        ],
        &[],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{dead}")), "{err}");

    // World-readable: refused before the token is used, with the fix in the message.
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = no_flags(&["cluster", "status"], &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("world-readable") && err.contains("chmod 640"),
        "{err}"
    );
    assert!(!err.contains(&c.token("admin")), "no token in the error");
    // Group-writable: refused too.
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o660)).unwrap();
    let (code, _, err) = no_flags(&["cluster", "status"], &[]);
    assert_eq!(code, 3);
    assert!(err.contains("group- or world-writable"), "{err}");
    // No file: says what was missing and where it looked.
    std::fs::remove_file(&client).unwrap();
    let (code, _, err) = no_flags(&["cluster", "status"], &[]);
    assert_eq!(code, 3);
    assert!(
        err.contains("no --manager, --ca-path") && err.contains(&client.display().to_string()),
        "{err}"
    );
    c.check_logs();
}
