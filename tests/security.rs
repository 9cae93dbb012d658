//! Security checks on the real binaries, on loopback: one collector (`collector init` +
//! `collector run`) and one agent (`configure` + `run`).
//!
//! In one test, in order: what listens, TLS versions and plain HTTP, file modes, a stolen
//! report replayed, a report signed by another key (refused, and shown as a key
//! mismatch), a db token writing broker or manager status, tokens stored only hashed, and
//! finally a grep of every log and every recorded CLI output for tokens and the private
//! key.

mod harness;

use harness::fixtures::*;
use harness::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Listening TCP sockets (state 0A) owned by `pid`, from /proc/net/tcp{,6}: "ip:port".
fn listening_sockets(pid: i32) -> Vec<String> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().to_string();
            if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let (ip, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let ip = if ip.len() == 8 {
                // Little-endian IPv4.
                let n = u32::from_str_radix(ip, 16).unwrap();
                std::net::Ipv4Addr::from(n.to_le_bytes()).to_string()
            } else {
                format!("[v6:{ip}]")
            };
            out.push(format!("{ip}:{port}"));
        }
    }
    out
}

/// A TLS 1.1 ClientHello (no supported_versions extension, TLS 1.1-era cipher suites).
fn tls11_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0x00, 0x04, 0x00, 0x2f, 0x00, 0x35]); // AES128-SHA, AES256-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0, (hello.len() >> 8) as u8, hello.len() as u8];
    hs.extend_from_slice(&hello);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

/// Sends `bytes` on a fresh TCP connection and returns what comes back before the
/// server closes (bounded by a read deadline).
fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if out.len() > 64 * 1024 {
            break;
        }
    }
    out
}

/// A client restricted to one TLS version, trusting only the cluster CA.
fn client_with(
    ca: &Path,
    version: &'static rustls::SupportedProtocolVersion,
) -> sr_tls::HttpsClient {
    let roots = sr_tls::roots_from(ca).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(sr_tls::provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    sr_tls::HttpsClient::new(cfg, Duration::from_secs(5))
}

#[test]
fn collector_and_agent_expose_nothing_they_should_not() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.keep_if_asked();
    let d = tmp.path();
    let pki = Pki::new(&d.join("pki"), "hostile-suite CA");
    let mut c = Collector::init(&d.join("collector"), &pki, "127.0.0.1:0");
    c.spawn();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 1. Exactly one listening socket, on the configured address.
    let sockets = listening_sockets(c.pid());
    assert_eq!(
        sockets,
        vec![c.addr.to_string()],
        "the collector listens on more than it was told"
    );

    // 2. TLS 1.2 and 1.3 work; TLS 1.1 and plain HTTP get no HTTP answer.
    for (name, v) in [
        ("1.2", &rustls::version::TLS12),
        ("1.3", &rustls::version::TLS13),
    ] {
        let r = rt
            .block_on(client_with(&pki.ca, v).get(
                &c.url("/api/v3.1/ok"),
                &[],
                Duration::from_secs(10),
                1 << 16,
            ))
            .unwrap_or_else(|e| panic!("TLS {name} client refused: {e}"));
        assert!(r.status.as_u16() < 500, "TLS {name}: {}", r.status);
    }
    let reply = exchange(c.addr, &tls11_client_hello());
    assert!(
        reply.first() != Some(&0x16),
        "the collector answered a TLS 1.1 hello with a handshake: {reply:02x?}"
    );
    if let [0x15, _, _, _, _, level, desc, ..] = reply[..] {
        // Fatal protocol_version (70) or handshake_failure (40): either way no session.
        assert!(
            level == 2 && [40, 70].contains(&desc),
            "unexpected alert {reply:02x?}"
        );
    }
    let reply = exchange(
        c.addr,
        b"GET /api/v3.1/ok HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(
        !String::from_utf8_lossy(&reply).contains("HTTP/1."),
        "plain HTTP got an HTTP answer: {}",
        String::from_utf8_lossy(&reply)
    );

    // 3. Modes of what `collector init` and `configure` + `run` produce.
    assert_eq!(mode(&c.config()), 0o600, "collector config");
    assert_eq!(mode(&c.state()), 0o700, "collector state dir");
    let mut agent = Agent::configure(
        &d.join("agent"),
        &pki.ca,
        &c.token("db"),
        "db",
        "db-sec",
        1,
        &[c.addr.to_string()],
        vec![tcp_probe("Collector port", &c.addr.to_string())],
    );
    agent.start();
    let pinned = rt.block_on(async {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let v = c.view().await;
            if let Some((_, n)) = find_node(&v, "db-sec") {
                if n["signed"] == true {
                    return n.clone();
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the agent's report never arrived"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(pinned["key_mismatch"], false);
    assert_eq!(mode(&agent.config()), 0o600, "agent config");
    assert_eq!(mode(&agent.dir.join("etc/node.key")), 0o600, "agent key");
    assert_eq!(mode(&agent.dir.join("state")), 0o700, "agent state dir");

    rt.block_on(async {
        // 4. A stolen report, replayed byte for byte, is refused; so is an older seq.
        let mut n = Node::new("db", "db-replay");
        let (body, sig) = n.next("OK", now_ms());
        let db = c.token("db");
        let (code, v) = c
            .put(&n.path(), &report_headers(&db, &sig), body.clone())
            .await;
        assert_eq!(code, 200, "{v}");
        let (code, v) = c.put(&n.path(), &report_headers(&db, &sig), body).await;
        assert_eq!(code, 409, "a replay must be refused: {v}");

        // 5. The agent's node, reported by another key: refused and shown as a mismatch.
        let mut thief = Node::new("db", "db-sec");
        thief.boot = "boot-thief".into();
        thief.seq = 1_000_000;
        let (body, sig) = thief.next("OK", now_ms());
        let (code, v) = c.put(&thief.path(), &report_headers(&db, &sig), body).await;
        assert_eq!(
            (code, v["error_code"].as_str()),
            (403, Some("key_mismatch")),
            "{v}"
        );
        let v = c.view().await;
        assert_eq!(
            find_node(&v, "db-sec").unwrap().1["key_mismatch"],
            true,
            "{v}"
        );

        // 6. A db token cannot write broker or manager status.
        for ty in ["broker", "manager"] {
            let mut other = Node::new(if ty == "broker" { "broker" } else { "manager" }, "x1");
            let (body, sig) = other.next("OK", now_ms());
            let (code, v) = c.put(&other.path(), &report_headers(&db, &sig), body).await;
            assert_eq!(code, 403, "db token wrote {ty} status: {v}");
        }
    });

    // `cluster status --json` (recorded for the secret grep) shows the mismatch too.
    let admin = c.token("admin");
    let (code, out, err) = cli(
        Some(d),
        &[
            "cluster",
            "status",
            "--json",
            "--manager",
            &c.addr.to_string(),
            "--ca-path",
            pki.ca.to_str().unwrap(),
        ],
        &[("STATUS_REPORTER_TOKEN", admin.as_str())],
    );
    assert!(code < 3, "cluster status: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(find_node(&v, "db-sec").unwrap().1["key_mismatch"], true);
    for args in [
        vec!["tokens", "list", "--json"],
        vec!["nodes", "list", "--json"],
    ] {
        let mut a = args.clone();
        let cfg = c.config().display().to_string();
        a.extend(["--config", &cfg]);
        let (code, _, err) = cli(Some(d), &a, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let (code, _, err) = cli(
        Some(d),
        &["show-config", "--config", agent.config().to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "show-config: {err}");

    // 7. Stop everything, then: the store holds no token, nothing logged or printed holds
    //    a token or the private key.
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("the agent to stop", DEADLINE, || {
        (!agent.alive()).then_some(())
    });
    c.kill9();
    let tokens: Vec<(&str, String)> = ["manager", "db", "broker", "admin"]
        .iter()
        .map(|r| (*r, c.token(r)))
        .collect();
    let mut store_bytes = Vec::new();
    for e in std::fs::read_dir(c.state()).unwrap().flatten() {
        store_bytes.extend(std::fs::read(e.path()).unwrap());
    }
    assert!(store_bytes.len() > 4096, "the store is not where expected");
    let store_text = String::from_utf8_lossy(&store_bytes);
    for (role, t) in &tokens {
        assert!(
            !store_text.contains(t.as_str()),
            "the {role} token is stored in clear"
        );
    }
    let key_pem = std::fs::read_to_string(agent.dir.join("etc/node.key")).unwrap();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut secrets: Vec<(&str, String)> = tokens;
    secrets.push(("the private key", key_body.clone()));
    // A line of the PEM alone, in case something logs it wrapped.
    secrets.push((
        "a line of the private key",
        key_pem.lines().nth(1).unwrap().to_string(),
    ));
    let checked = assert_no_secrets(d, &secrets);
    assert!(checked >= 6, "only {checked} log/output files were checked");
    let log = c.log();
    assert!(!log.contains("panicked"), "{log}");
}
