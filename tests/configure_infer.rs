//! `status-reporter configure` without `--node-type`: the node type comes from the token's
//! role, which real collectors state in the `X-Status-Reporter-Role` header of their
//! `GET /api/v3.1/managers` answer.
//!
//! Two real collectors (`sr_collector::server::serve`, in this process, sharing a copied
//! token store as the managers of one cluster do) and two stand-in managers signed by the
//! same CA (one stating another role, one stating none, as a Cloudify 5.0.5 manager) are
//! started once; the scenarios then run the real binary in sequence. Every refusal must
//! name `--node-type` and write nothing.

use sr_agent::config::RawConfig;
use sr_collector::store::{Role, Store};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod harness;

use harness::fixtures::stand_in_manager;
use harness::{text, InProcessCollector, Pki, BIN};

/// A stand-in manager (TLS from the same CA) that answers every request 200 with an
/// empty manager list and, when `role` is set, states that role.
fn stand_in(
    rt: &tokio::runtime::Runtime,
    cert: (PathBuf, PathBuf),
    role: Option<&'static str>,
) -> String {
    use http_body_util::Full;
    use hyper::body::Bytes;
    stand_in_manager(rt, (&cert.0, &cert.1), move |tls| async move {
        let svc = hyper::service::service_fn(
            move |_req: http::Request<hyper::body::Incoming>| async move {
                let mut resp = http::Response::new(Full::new(Bytes::from_static(
                    br#"{"items":[],"metadata":{"pagination":{"total":0,"size":0,"offset":0}}}"#,
                )));
                if let Some(r) = role {
                    resp.headers_mut()
                        .insert(sr_protocol::ROLE_HEADER, http::HeaderValue::from_static(r));
                }
                Ok::<_, std::convert::Infallible>(resp)
            },
        );
        let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
            .await;
    })
}

/// Runs `configure` (no `--node-type` unless `extra` has one) against `managers`.
fn configure(cfg: &Path, ca: &Path, token: &str, managers: &[&str], extra: &[&str]) -> Output {
    let mut args = vec![
        "configure",
        "--config",
        cfg.to_str().unwrap(),
        "--token",
        token,
        "--ca-path",
        ca.to_str().unwrap(),
        "--node-name",
        "infer-test",
    ];
    args.extend_from_slice(extra);
    args.push("--managers-ip");
    args.extend_from_slice(managers);
    Command::new(BIN)
        .args(&args)
        .env("STATUS_REPORTER_LOG", "warn")
        .output()
        .expect("run status-reporter")
}

/// A refusal: exit `code`, the message says `want` and names the option to fix (`ask`),
/// and the config file is not written.
fn assert_refused(
    out: &Output,
    code: i32,
    want: &str,
    ask: &str,
    cfg: &Path,
    before: Option<&[u8]>,
) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    assert!(t.contains(want), "expected {want:?} in:\n{t}");
    assert!(t.contains(ask), "the error must name {ask}:\n{t}");
    assert!(t.contains("nothing was written"), "{t}");
    assert_eq!(std::fs::read(cfg).ok().as_deref(), before, "{t}");
}

#[test]
fn configure_takes_the_node_type_from_the_token_role_or_asks_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pki = Pki::new(&d.join("pki"), "infer-ca");
    let ca_path = pki.ca.clone();

    // Two collectors sharing one token store (copied before either starts).
    let (state_a, state_b) = (d.join("a"), d.join("b"));
    let store = Store::open(&state_a).unwrap();
    let broker = store.create_token(Role::Broker).unwrap();
    let db = store.create_token(Role::Db).unwrap();
    let admin = store.create_token(Role::Admin).unwrap();
    drop(store);
    std::fs::create_dir_all(&state_b).unwrap();
    for f in std::fs::read_dir(&state_a).unwrap().flatten() {
        std::fs::copy(f.path(), state_b.join(f.file_name())).unwrap();
    }
    let start = |name: &str, state| {
        let mut c = InProcessCollector::new(&rt, state, pki.server(name), |_| {});
        c.start();
        c
    };
    let (collector_a, collector_b) = (start("a", state_a), start("b", state_b));
    let (a, b) = (collector_a.addr(), collector_b.addr());
    let says_db = stand_in(&rt, pki.server("s1"), Some("db"));
    let silent = stand_in(&rt, pki.server("s2"), None);
    // Nothing listens here once the listener is dropped: an unreachable manager.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();

    // 1. Both collectors state "broker": the config gets node_type = "broker", and a second
    //    run changes nothing.
    let cfg = d.join("etc/agent.toml");
    let out = configure(&cfg, &ca_path, &broker, &[&a, &b], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("token accepted (role broker)"), "{t}");
    assert!(t.contains("node type broker, from the token's role"), "{t}");
    assert_eq!(
        RawConfig::read(&cfg).unwrap().node_type.as_deref(),
        Some("broker")
    );
    let written = std::fs::read(&cfg).unwrap();
    let again = configure(&cfg, &ca_path, &broker, &[&a, &b], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("unchanged"), "{}", text(&again));
    assert_eq!(std::fs::read(&cfg).unwrap(), written);

    // 2. The kept node type (broker) contradicts the db token's role: refused, unchanged.
    let out = configure(&cfg, &ca_path, &db, &[&a, &b], &[]);
    assert_refused(&out, 2, "role is db", "--node-type", &cfg, Some(&written));
    // So does an explicit one on a fresh config.
    let fresh = d.join("fresh/agent.toml");
    let out = configure(&fresh, &ca_path, &db, &[&a], &["--node-type", "broker"]);
    assert_refused(&out, 2, "(403)", "--node-type", &fresh, None);
    // And an explicit matching one is accepted.
    let out = configure(&fresh, &ca_path, &db, &[&a], &["--node-type", "db"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_dir_all(d.join("fresh")).unwrap();

    // 3. Every way the role can be unknown or ambiguous asks for --node-type.
    let cases: Vec<(&str, Vec<&str>, i32, &str, &str)> = vec![
        // A real collector says broker, another manager says db.
        (&broker, vec![&a, &says_db], 2, "disagree", "--node-type"),
        // A manager that accepts but does not say (a Cloudify 5.0.5 manager).
        (&broker, vec![&silent], 2, "did not state", "--node-type"),
        (
            &broker,
            vec![&a, &silent],
            2,
            "did not state",
            "--node-type",
        ),
        // No manager answers.
        (
            &broker,
            vec![&closed],
            1,
            "no manager accepted",
            "--node-type",
        ),
        // An unknown token: answered, refused.
        (
            "srt_not-a-real-token",
            vec![&a],
            1,
            "no manager accepted",
            "--node-type",
        ),
        // An admin token cannot report whatever the node type: the token is what to fix.
        (&admin, vec![&a, &b], 2, "role is admin", "--token"),
    ];
    for (token, managers, code, want, ask) in cases {
        let out = configure(&fresh, &ca_path, token, &managers, &[]);
        assert_refused(&out, code, want, ask, &fresh, None);
    }
    // 4. With --no-verify nothing can be inferred: --node-type is required.
    let out = configure(&fresh, &ca_path, &broker, &[&a], &["--no-verify"]);
    assert_refused(
        &out,
        2,
        "required with --no-verify",
        "--node-type",
        &fresh,
        None,
    );
}
