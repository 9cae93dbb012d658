//! The agent end to end: the real `status-reporter` binary against real collectors
//! (`sr_collector::server::serve`, in this process) on loopback over TLS.
//!
//! Bad-input tests run the binary alone. The delivery scenarios share one set of
//! collectors and one agent and run in sequence in one test, to keep the suite short.
//! Every wait polls with a deadline; nothing sleeps to synchronise.

mod harness;

use harness::fixtures::stand_in_manager;
use harness::{wait_for, Agent, InProcessCollector, Pki};
use sr_agent::config::RawConfig;
use sr_collector::store::{Role, Store};
use sr_probes::ProbeConfig;
use sr_protocol::report::ReportBody;
use sr_protocol::NodeType;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_status-reporter");

fn bin(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("STATUS_REPORTER_LOG", "warn")
        .output()
        .expect("run status-reporter")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn configure_refuses_bad_input_with_clear_messages_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pki = Pki::new(&d.join("pki"), "good");
    let ca = pki.ca.clone();
    let ca = ca.to_str().unwrap();
    std::fs::write(d.join("notpem.pem"), "this is not a certificate").unwrap();
    std::fs::write(
        d.join("expired.pem"),
        sr_tls::pki::Ca::with_validity("old", Some(((2001, 1, 1), (2002, 1, 1))))
            .unwrap()
            .cert_pem(),
    )
    .unwrap();
    let unreadable = d.join("unreadable.pem");
    std::fs::create_dir(&unreadable).unwrap();
    let cfg = d.join("etc/agent.toml");
    let cfg_s = cfg.to_str().unwrap().to_string();
    let base = |ca: &str, token: &str, ips: &[&str]| {
        let mut a = vec![
            "configure",
            "--no-verify",
            "--node-type",
            "db",
            "--config",
            &cfg_s,
            "--token",
            token,
            "--ca-path",
            ca,
            "--managers-ip",
        ];
        a.extend_from_slice(ips);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let notpem = d.join("notpem.pem");
    let expired = d.join("expired.pem");
    let missing = d.join("missing.pem");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base(missing.to_str().unwrap(), "tok", &["10.0.0.1"]),
            "--ca-path: cannot read",
        ),
        (
            base(unreadable.to_str().unwrap(), "tok", &["10.0.0.1"]),
            "--ca-path: cannot read",
        ),
        (
            base(notpem.to_str().unwrap(), "tok", &["10.0.0.1"]),
            "holds no PEM certificate",
        ),
        (
            base(expired.to_str().unwrap(), "tok", &["10.0.0.1"]),
            "expired",
        ),
        (base(ca, "", &["10.0.0.1"]), "--token: the token is empty"),
        (
            base(ca, "   ", &["10.0.0.1"]),
            "--token: the token is empty or only whitespace",
        ),
        (base(ca, "tok", &["10.0.0.256"]), "not a valid IPv4 address"),
        (
            base(ca, "tok", &["10.0.0.1:99999"]),
            "the port must be 1-65535",
        ),
        (
            base(ca, "tok", &["bad host!"]),
            "not a valid IP address or hostname",
        ),
        (
            base(ca, "tok", &["10.0.0.1", "10.0.0.1:53333"]),
            "listed twice",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = bin(&args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{t}");
        assert!(
            t.contains(want),
            "expected {want:?} for {args:?}, got:\n{t}"
        );
        assert!(t.contains("nothing was written"), "{t}");
        assert!(!d.join("etc").exists(), "{args:?} wrote something");
    }
    // All problems at once.
    let out = bin(&[
        "configure",
        "--no-verify",
        "--config",
        &cfg_s,
        "--token",
        " ",
        "--ca-path",
        notpem.to_str().unwrap(),
        "--managers-ip",
        "1.1.1.1",
        "1.1.1.1",
        "x..y",
    ]);
    let t = text(&out);
    for want in [
        "--token",
        "--ca-path",
        "listed twice",
        "x..y",
        "--node-type",
    ] {
        assert!(t.contains(want), "{want} missing:\n{t}");
    }
    // An unwritable config directory: a directory where this process cannot write.
    let ro = d.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let blocker = ro.join("etc");
    std::fs::write(&blocker, "a file where a directory should be").unwrap();
    let cfg_ro = blocker.join("agent.toml");
    let mut args = base(ca, "tok", &["10.0.0.1"]);
    let pos = args.iter().position(|a| a == &cfg_s).unwrap();
    args[pos] = cfg_ro.to_str().unwrap().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = bin(&args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("--config:") && t.contains("cannot be written"),
        "{t}"
    );

    // And the good case works, twice, identically.
    let args = base(ca, "tok-1", &["10.0.0.1", "10.0.0.2:8443"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = bin(&args);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(text(&first).contains("systemctl restart status-reporter"));
    let before = std::fs::read(&cfg).unwrap();
    let second = bin(&args);
    assert!(text(&second).contains("unchanged"), "{}", text(&second));
    assert_eq!(std::fs::read(&cfg).unwrap(), before);
    let shown = text(&bin(&["show-config", "--config", &cfg_s]));
    assert!(
        !shown.contains("tok-1") && shown.contains("<redacted>"),
        "{shown}"
    );
    let removed = bin(&["remove", "--config", &cfg_s]);
    assert_eq!(removed.status.code(), Some(0));
    assert!(!cfg.exists() && !d.join("etc/node.key").exists());
}

/// A configured agent (via the real `configure`) whose probes the test then sets.
fn configure_agent(
    dir: &Path,
    ca: &Path,
    token: &str,
    managers: &[String],
    probes: Vec<ProbeConfig>,
    verify: bool,
) -> PathBuf {
    let cfg = dir.join("agent.toml");
    let mut args = vec![
        if verify {
            "configure"
        } else {
            "configure --no-verify"
        }
        .to_string(),
        "--config".into(),
        cfg.to_str().unwrap().into(),
        "--token".into(),
        token.into(),
        "--ca-path".into(),
        ca.to_str().unwrap().into(),
        "--node-type".into(),
        "db".into(),
        "--node-name".into(),
        "db-test".into(),
        "--reporting-freq".into(),
        "1".into(),
        "--state-dir".into(),
        dir.join("state").to_str().unwrap().into(),
        "--managers-ip".into(),
    ];
    args.extend(managers.iter().cloned());
    let args: Vec<&str> = args.iter().flat_map(|a| a.split(' ')).collect();
    let out = bin(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut raw = RawConfig::read(&cfg).unwrap();
    raw.probes = probes;
    raw.push_timeout_ms = Some(1500);
    std::fs::write(&cfg, raw.to_toml()).unwrap();
    cfg
}

#[test]
fn run_with_a_nonsense_config_exits_2_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(&tmp.path().join("pki"), "ca");
    let cfg = configure_agent(
        tmp.path(),
        &pki.ca.clone(),
        "tok",
        &["127.0.0.1:9".into()],
        vec![ProbeConfig::Host(Default::default())],
        false,
    );
    let good = std::fs::read_to_string(&cfg).unwrap();
    for (edit, key) in [
        (
            good.replace("reporting_freq = 1", "reporting_freq = \"fast\""),
            "reporting_freq",
        ),
        (format!("{good}\nbogus_key = 1\n"), "bogus_key"),
        (
            good.replace("reporting_freq = 1", "reporting_freq = 0"),
            "reporting_freq",
        ),
        (
            good.replace("node_type = \"db\"", "node_type = \"database\""),
            "node_type",
        ),
        (good.replace("kind = \"host\"", "kind = \"hots\""), "hots"),
        (
            good.replace("managers = [", "managers = [\"10.0.0.999\", "),
            "managers",
        ),
        ("\u{0}\u{1}garbage[[[".to_string(), "agent.toml"),
    ] {
        std::fs::write(&cfg, &edit).unwrap();
        for cmd in ["run", "validate"] {
            let out = bin(&[cmd, "--config", cfg.to_str().unwrap()]);
            let t = text(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd} with {key}:\n{t}");
            assert!(t.contains(key), "{cmd}: expected the key {key:?} in:\n{t}");
        }
    }
}

/// The seqs of the transitions `c` stored for db node `node_id`.
fn seqs(c: &InProcessCollector, node_id: &str) -> Vec<u64> {
    c.transitions(NodeType::Db, node_id)
        .into_iter()
        .map(|t| t.seq)
        .collect()
}

/// The agent suite's collectors stop quickly: a test restarts them several times.
fn quick_shutdown(cfg: &mut sr_collector::Config) {
    cfg.shutdown_grace = Duration::from_millis(200);
}

/// A TLS "manager" signed by the right CA that answers every request with a fixed,
/// broken response: garbage, an empty 200, or an endless body.
fn hostile_manager(
    rt: &tokio::runtime::Runtime,
    cert: (PathBuf, PathBuf),
    mode: &'static str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stand_in_manager(rt, (&cert.0, &cert.1), move |mut s| async move {
        let mut buf = vec![0u8; 64 * 1024];
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
        match mode {
            "garbage" => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n<html>x</h>").await;
            }
            "empty" => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            }
            _ => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n").await;
                let chunk = vec![b'A'; 64 * 1024];
                // Stops when the client hangs up after its body limit.
                for _ in 0..16_000 {
                    if s.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = s.shutdown().await;
    })
}

/// A TCP server that accepts and never answers (the hung endpoint).
fn hung_endpoint(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            // Bounded: a test never opens more than a few hundred.
            if held.len() < 10_000 {
                held.push(s);
            }
        }
    });
    addr
}

fn delivery<'a>(
    body: &'a ReportBody,
    manager: &str,
) -> Option<&'a sr_protocol::report::ManagerDelivery> {
    body.extension
        .as_ref()?
        .agent_health
        .managers
        .iter()
        .find(|m| m.manager == manager)
}

#[test]
fn agent_delivers_to_every_manager_and_survives_what_managers_and_operators_do() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let pki = Pki::new(&d.join("pki"), "cluster-ca");
    let other = Pki::new(&d.join("other"), "some-other-ca");

    // Two collectors sharing one token store (copied), as managers of one cluster do.
    let (state_a, state_b) = (d.join("a"), d.join("b"));
    std::fs::create_dir_all(&state_a).unwrap();
    let token = Store::open(&state_a)
        .unwrap()
        .create_token(Role::Db)
        .unwrap();
    std::fs::create_dir_all(&state_b).unwrap();
    for f in std::fs::read_dir(&state_a).unwrap().flatten() {
        std::fs::copy(f.path(), state_b.join(f.file_name())).unwrap();
    }
    let mut a = InProcessCollector::new(&rt, state_a, pki.server("a"), quick_shutdown);
    let mut b = InProcessCollector::new(&rt, state_b, pki.server("b"), quick_shutdown);
    a.start();
    b.start();
    // A collector whose certificate another CA signed: must be refused.
    let mut wrong =
        InProcessCollector::new(&rt, d.join("wrong"), other.server("wrong"), quick_shutdown);
    wrong.start();
    let garbage = hostile_manager(&rt, pki.server("g1"), "garbage");
    let empty = hostile_manager(&rt, pki.server("g2"), "empty");
    let huge = hostile_manager(&rt, pki.server("g3"), "huge");
    let hung = hung_endpoint(&rt);

    // The service whose state the test flips, and the hung HTTP endpoint.
    let svc_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let svc_addr = svc_listener.local_addr().unwrap().to_string();
    let probes = vec![
        ProbeConfig::Tcp(sr_probes::tcp::Config {
            name: "Svc".into(),
            address: svc_addr.clone(),
            timeout_ms: 300,
            critical: true,
        }),
        ProbeConfig::Http(sr_probes::http::Config {
            name: "Hung".into(),
            url: format!("http://{hung}/health"),
            expect_status: 200,
            ca_path: None,
            timeout_ms: 300,
            critical: false,
        }),
    ];
    let managers = vec![
        a.addr(),
        b.addr(),
        wrong.addr(),
        garbage.clone(),
        empty.clone(),
        huge.clone(),
    ];
    let cfg = configure_agent(d, &pki.ca.clone(), &token, &managers, probes, true);
    let node_id = RawConfig::read(&cfg).unwrap().node_id.unwrap();
    let mut agent = Agent::at(&cfg, &d.join("agent.log"));
    agent.start();

    // 1. Both collectors receive signed reports; the hung endpoint is a timeout reason,
    //    and the cycle still ends inside the 1 s interval.
    for c in [&a, &b] {
        let body = wait_for("a first report", Duration::from_secs(20), || {
            c.latest(&node_id)
        });
        let ext = body.extension.as_ref().unwrap();
        assert_eq!(ext.node_name, "db-test");
        assert_eq!(
            body.report.services["Svc"].status,
            sr_protocol::ServiceStatus::Active
        );
        assert_eq!(
            body.report.services["Hung"].status,
            sr_protocol::ServiceStatus::Inactive
        );
        assert_eq!(ext.node_status, sr_protocol::NodeStatus::Degraded);
        let hung_reason = &ext.services["Hung"].reasons[0];
        assert_eq!(hung_reason.code, "endpoint_timeout", "{hung_reason:?}");
    }
    let body = wait_for(
        "self-health covering every manager",
        Duration::from_secs(20),
        || {
            let b = b.latest(&node_id)?;
            let all = [&wrong.addr(), &garbage, &empty, &huge]
                .iter()
                .all(|m| delivery(&b, m).is_some_and(|d| d.last_result != "pending"));
            all.then_some(b)
        },
    );
    let ext = body.extension.as_ref().unwrap();
    assert!(
        ext.agent_health.last_cycle_ms.unwrap() < 1000,
        "cycle bounded by the interval: {:?}",
        ext.agent_health
    );
    // 2. Wrong CA refused; hostile answers bounded and reported.
    let res = |m: &str| delivery(&body, m).unwrap().last_result.clone();
    assert!(
        res(&wrong.addr()).contains("UnknownIssuer") || res(&wrong.addr()).contains("certificate"),
        "{}",
        res(&wrong.addr())
    );
    assert!(
        wrong.latest(&node_id).is_none(),
        "nothing reached the wrong-CA collector"
    );
    assert!(res(&garbage).contains("not JSON"), "{}", res(&garbage));
    assert!(res(&empty).contains("empty 200"), "{}", res(&empty));
    assert!(res(&huge).contains("larger than"), "{}", res(&huge));
    assert_eq!(delivery(&body, &a.addr()).unwrap().last_result, "ok");

    // 3. Push on change: the service goes away; measure until a collector knows.
    let t0 = Instant::now();
    drop(svc_listener);
    wait_for(
        "the change to reach collector A",
        Duration::from_secs(20),
        || {
            let body = a.latest(&node_id)?;
            (body.report.services["Svc"].status == sr_protocol::ServiceStatus::Inactive)
                .then_some(())
        },
    );
    println!("push-on-change latency (service down -> stored at collector A): {} ms (reporting_freq 1 s)", t0.elapsed().as_millis());
    let svc_listener = std::net::TcpListener::bind(&svc_addr).unwrap();
    wait_for("the service back up at A", Duration::from_secs(20), || {
        (a.latest(&node_id)?.report.services["Svc"].status == sr_protocol::ServiceStatus::Active)
            .then_some(())
    });

    // 4. Collector A goes away; B keeps receiving; A gets the missed transitions back.
    a.stop();
    let before: std::collections::BTreeSet<u64> = seqs(&b, &node_id).into_iter().collect();
    let new_at_b = || {
        seqs(&b, &node_id)
            .into_iter()
            .filter(|s| !before.contains(s))
            .collect::<Vec<u64>>()
    };
    let svc = |c: &InProcessCollector| c.latest(&node_id).map(|r| r.report.services["Svc"].status);
    drop(svc_listener);
    wait_for("B to see the service down", Duration::from_secs(20), || {
        (svc(&b) == Some(sr_protocol::ServiceStatus::Inactive) && !new_at_b().is_empty())
            .then_some(())
    });
    let down = new_at_b().len();
    let svc_listener = std::net::TcpListener::bind(&svc_addr).unwrap();
    wait_for("B to see the service up", Duration::from_secs(20), || {
        (svc(&b) == Some(sr_protocol::ServiceStatus::Active) && new_at_b().len() > down)
            .then_some(())
    });
    let missed = new_at_b();
    let at_a_before = seqs(&a, &node_id);
    assert!(
        missed.iter().all(|s| !at_a_before.contains(s)),
        "A was down for these"
    );
    a.start();
    wait_for(
        "A to receive the transitions it missed",
        Duration::from_secs(30),
        || {
            let at_a = seqs(&a, &node_id);
            missed.iter().all(|s| at_a.contains(s)).then_some(())
        },
    );
    println!("transitions missed by A and delivered on its return: {missed:?}");

    // 5. The token is revoked on A: B's copy of the self-health shows A's 401, logged once.
    {
        let store = Store::open(&a.state).unwrap();
        let id = store
            .list_tokens()
            .unwrap()
            .into_iter()
            .find(|t| t.role == Role::Db.as_str())
            .unwrap()
            .id;
        assert!(store.revoke_token(id).unwrap());
    }
    wait_for(
        "A's 401 in the agent's self-health at B",
        Duration::from_secs(20),
        || {
            let body = b.latest(&node_id)?;
            delivery(&body, &a.addr())?
                .last_result
                .starts_with("http 401")
                .then_some(())
        },
    );
    // A few more cycles: still one WARN for the 401, never a tight loop.
    let seq_now = b.latest(&node_id).unwrap().extension.unwrap().seq;
    wait_for("more reports at B", Duration::from_secs(20), || {
        (b.latest(&node_id)?.extension?.seq > seq_now + 5).then_some(())
    });
    let warns_401 = agent
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("http 401"))
        .count();
    assert_eq!(warns_401, 1, "{}", agent.log());
    assert!(
        !agent.log().contains(&token),
        "the token must never be logged"
    );

    // 6. SIGHUP with a broken config keeps the old one; a good one is applied.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace("reporting_freq = 1", "reporting_freq = \"often\""),
    )
    .unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("the reload to be refused", Duration::from_secs(20), || {
        agent.log().contains("reload refused").then_some(())
    });
    assert!(
        agent.log().contains("reporting_freq"),
        "the refusal names the key"
    );
    let seq_now = b.latest(&node_id).unwrap().extension.unwrap().seq;
    wait_for(
        "reports to continue on the old config",
        Duration::from_secs(20),
        || (b.latest(&node_id)?.extension?.seq > seq_now + 2).then_some(()),
    );
    assert!(agent.alive());
    std::fs::write(
        &cfg,
        good.replace("node_name = \"db-test\"", "node_name = \"db-renamed\""),
    )
    .unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for("the renamed node at B", Duration::from_secs(20), || {
        (b.latest(&node_id)?.extension?.node_name == "db-renamed").then_some(())
    });
    let boot = b.latest(&node_id).unwrap().extension.unwrap().boot_id;
    assert_eq!(
        boot,
        body.extension.as_ref().unwrap().boot_id,
        "reload keeps the boot (state not dropped)"
    );

    // 7. SIGTERM stops it within its grace period.
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    let status = wait_for("the agent to exit", Duration::from_secs(10), || {
        agent.exited()
    });
    assert!(status.success(), "{status:?}\n{}", agent.log());
    drop(svc_listener);
}
