//! Alerts, end to end, against a real Alertmanager (Debian's `prometheus-alertmanager`)
//! and webhook receivers served by this test (axum on loopback), with one real collector
//! and real agents. One cluster for the whole suite; the scenarios run in sequence:
//!
//! 1. A node goes bad for real (the service its agent probes stops): after the hold-down
//!    Alertmanager holds `StatusReporterNodeNotOk` with the right labels, a webhook gets a
//!    body whose HMAC verifies (checked with `openssl dgst`, not our own code), a receiver
//!    answering 500 twice sees the retries and then the alert; a receiver that hangs
//!    delays neither of them nor ingest. Recovery resolves the alert in Alertmanager.
//! 2. A flap shorter than the hold-down sends nothing: the evaluator is seen (on
//!    `/metrics`) to hold the change and then drop it, and a later real change, which
//!    would queue behind any alert of the flap, arrives alone.
//! 3. The hanging sink's queue overflowed, counted on `/metrics`; no secret anywhere.
//! 4. A hostile `[alerts]` config gets every error at once from `collector validate`.

mod harness;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use harness::alertmanager::{Alertmanager, SHOWN_WITHIN};
use harness::fixtures::{now_ms, report_headers, tcp_probe, Node, Target};
use harness::metrics::{scrape, value_or_zero};
use harness::{wait_for, Agent, Collector, Pki, DEADLINE};
use serde_json::Value;
use sr_protocol::TOKEN_HEADER;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Short enough for a test, long enough that the flap below (a poll and one PUT) fits.
const HOLD_DOWN_SECS: u64 = 4;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Answer200,
    /// 500 to the first two attempts of each alert, then 200.
    FailTwice,
    /// Never answers.
    Hang,
}

#[derive(Debug, Clone)]
struct Got {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    json: Value,
}

#[derive(Default)]
struct Seen {
    delivered: Vec<Got>,
    attempts: HashMap<String, u32>,
    hung: u32,
}

struct Receiver {
    port: u16,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    fn start(rt: &tokio::runtime::Runtime, mode: Mode) -> Receiver {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state((mode, seen.clone()));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move { axum::serve(listener, app).await });
        Receiver { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn delivered(&self) -> Vec<Got> {
        self.seen.lock().unwrap().delivered.clone()
    }

    /// The first delivery about `target` going to `to` (`"OK"`, or `None` for not OK).
    fn find(&self, target: &str, to_ok: bool) -> Option<Got> {
        self.delivered().into_iter().find(|g| {
            g.json["kind"] == "node"
                && g.json["target"] == target
                && (g.json["to"] == "OK") == to_ok
        })
    }
}

async fn receive(
    State((mode, seen)): State<(Mode, Arc<Mutex<Seen>>)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = json["id"].as_str().unwrap_or_default().to_string();
    let n = {
        let mut s = seen.lock().unwrap();
        let n = s.attempts.entry(id).or_default();
        *n += 1;
        *n
    };
    match mode {
        Mode::Hang => {
            seen.lock().unwrap().hung += 1;
            std::future::pending::<()>().await;
        }
        Mode::FailTwice if n <= 2 => return StatusCode::INTERNAL_SERVER_ERROR,
        _ => {}
    }
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    seen.lock().unwrap().delivered.push(Got {
        timestamp: h("x-status-reporter-timestamp"),
        signature: h("x-status-reporter-signature"),
        body: body.to_vec(),
        json,
    });
    StatusCode::OK
}

/// HMAC-SHA256 by `openssl dgst`, independent of the collector's code: `sha256=<hex>` of
/// `"<timestamp>." + body` under `key`.
fn openssl_hmac(key: &str, timestamp: &str, body: &[u8]) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(timestamp.as_bytes()).unwrap();
    stdin.write_all(b".").unwrap();
    stdin.write_all(body).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    format!(
        "sha256={}",
        text.split_whitespace().last().unwrap_or_default()
    )
}

fn secret_file(dir: &Path, name: &str, mode: u32) -> (PathBuf, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let secret = format!(
        "{nanos:032x}{:032x}",
        std::process::id() as u128 * 7919 + name.len() as u128
    );
    let p = dir.join(name);
    std::fs::write(&p, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    (p, secret)
}

/// The alert Alertmanager holds for node `node`, if any.
fn am_node_alert(am: &Alertmanager, node: &str) -> Option<Value> {
    am.alerts().into_iter().find(|a| {
        a["labels"]["alertname"] == "StatusReporterNodeNotOk" && a["labels"]["node"] == node
    })
}

#[test]
fn alerts_reach_alertmanager_and_signed_webhooks_after_the_hold_down_and_no_sink_holds_another() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(am) = Alertmanager::start(&tmp.path().join("am")) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let good = Receiver::start(&rt, Mode::Answer200);
    let flaky = Receiver::start(&rt, Mode::FailTwice);
    let hang = Receiver::start(&rt, Mode::Hang);
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let (good_secret_path, good_secret) = secret_file(&secrets, "good.secret", 0o600);
    let (flaky_secret_path, flaky_secret) = secret_file(&secrets, "flaky.secret", 0o640);

    let pki = Pki::new(&tmp.path().join("pki"), "alerts test CA");
    let mut c = Collector::init(&tmp.path().join("collector"), &pki, "127.0.0.1:0");
    c.set("required_types", "[\"manager\"]");
    c.set("flap_threshold", "1000");
    c.set("shutdown_grace_secs", "1");
    let plain_config = std::fs::read_to_string(c.config()).unwrap();
    c.append_config(&format!(
        r#"[alerts]
cluster = "lab"
hold_down_secs = {HOLD_DOWN_SECS}
evaluate_interval_secs = 0.2
retry_initial_secs = 0.05
retry_max_secs = 0.2

[[alerts.alertmanager]]
name = "am"
urls = ["{am_url}"]
resend_interval_secs = 2

[[alerts.webhook]]
name = "good"
url = "{good}"
secret_file = "{good_secret}"

[[alerts.webhook]]
name = "flaky"
url = "{flaky}"
secret_file = "{flaky_secret}"

[[alerts.webhook]]
name = "hang"
url = "{hang}"
secret_file = "{good_secret}"
timeout_secs = 30
max_retries = 20
queue_size = 1
"#,
        am_url = am.url(""),
        good = good.url(),
        flaky = flaky.url(),
        hang = hang.url(),
        good_secret = good_secret_path.display(),
        flaky_secret = flaky_secret_path.display(),
    ));
    c.spawn();
    let admin = c.token("admin");
    let reader = [(TOKEN_HEADER, admin.as_str())];
    let metrics = || {
        let (code, text) = scrape(&c.url("/metrics"), Some(&c.ca), &reader);
        assert_eq!(code, 200, "{text}");
        text
    };

    // Two managers with agents; mgr-a watches a TCP service the test can stop.
    let mut service = Target::new(&rt);
    let mut agents = [
        Agent::for_collector(
            &tmp.path().join("mgr-a"),
            "mgr-a",
            "manager",
            &c,
            vec![tcp_probe("api", &service.addr())],
            None,
        ),
        Agent::for_collector(
            &tmp.path().join("mgr-b"),
            "mgr-b",
            "manager",
            &c,
            vec![tcp_probe("api", &c.addr.to_string())],
            None,
        ),
    ];
    for a in &mut agents {
        a.start();
    }
    c.wait("both managers OK", DEADLINE, |s| {
        ["mgr-a", "mgr-b"]
            .iter()
            .all(|n| s.node_json(n).is_some_and(|j| j["status"] == "OK"))
    });

    // 1. mgr-a's service stops: the node goes bad for real.
    service.close();
    let alert = wait_for("Alertmanager to hold mgr-a's alert", SHOWN_WITHIN, || {
        am_node_alert(&am, "mgr-a")
    });
    let l = &alert["labels"];
    assert_eq!(l["cluster"], "lab", "{alert}");
    assert_eq!(l["service"], "manager", "{alert}");
    assert!(
        l["status"] == "Fail" || l["status"] == "Degraded",
        "{alert}"
    );
    assert!(
        l["severity"] == "critical" || l["severity"] == "warning",
        "{alert}"
    );
    assert!(
        !l["reason"].as_str().unwrap_or_default().is_empty(),
        "{alert}"
    );
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("mgr-a"),
        "{alert}"
    );

    // The signed webhook: the HMAC verifies independently, over timestamp and body.
    let got = wait_for("the good webhook to get mgr-a's alert", DEADLINE, || {
        good.find("mgr-a", false)
    });
    assert_eq!(got.json["version"], 1);
    assert_eq!(got.json["cluster"], "lab");
    assert_eq!(got.json["service"], "manager");
    assert_eq!(got.json["from"], "OK");
    assert_eq!(got.json["firing"], true);
    assert!(got.json["event_id"].as_i64().unwrap() > 0, "{}", got.json);
    assert!(
        got.json["reasons"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "{}",
        got.json
    );
    let ts: i64 = got.timestamp.parse().expect("a unix timestamp header");
    assert!((now_ms() / 1000 - ts).abs() < 300, "a fresh timestamp");
    assert_eq!(
        got.signature,
        openssl_hmac(&good_secret, &got.timestamp, &got.body)
    );
    assert_ne!(
        got.signature,
        openssl_hmac(&flaky_secret, &got.timestamp, &got.body),
        "per-sink secrets"
    );
    let mut tampered = got.body.clone();
    tampered[0] = b' ';
    assert_ne!(
        got.signature,
        openssl_hmac(&good_secret, &got.timestamp, &tampered)
    );

    // 500, 500, then 200: the same alert (same id) three times, delivered once.
    let fl = wait_for("the flaky webhook to get mgr-a's alert", DEADLINE, || {
        flaky.find("mgr-a", false)
    });
    let id = fl.json["id"].as_str().unwrap().to_string();
    assert_eq!(flaky.seen.lock().unwrap().attempts[&id], 3);
    assert_eq!(
        fl.signature,
        openssl_hmac(&flaky_secret, &fl.timestamp, &fl.body)
    );

    // The hanging receiver holds a request open, and has delivered nothing, while the
    // others got their alert above; ingest goes on meanwhile.
    assert!(
        hang.seen.lock().unwrap().hung >= 1,
        "the hanging sink was tried"
    );
    let accepted = |t: &str| value_or_zero(t, "status_reporter_reports_accepted_total", &[]);
    let before = accepted(&metrics());
    wait_for(
        "reports to keep being accepted while a sink hangs",
        DEADLINE,
        || (accepted(&metrics()) >= before + 4.0).then_some(()),
    );
    let text = metrics();
    assert_eq!(
        value_or_zero(
            &text,
            "status_reporter_alerts_delivered_total",
            &[("sink", "hang")]
        ),
        0.0
    );
    assert!(hang.delivered().is_empty());
    assert!(
        value_or_zero(
            &text,
            "status_reporter_alert_retries_total",
            &[("sink", "flaky")]
        ) >= 2.0,
        "{text}"
    );
    assert!(
        value_or_zero(
            &text,
            "status_reporter_alerts_delivered_total",
            &[("sink", "good")]
        ) >= 1.0
    );

    // Recovery: resolved in Alertmanager (it no longer lists it), OK to the webhook.
    service.open();
    wait_for(
        "Alertmanager to see mgr-a's alert resolved",
        SHOWN_WITHIN,
        || am_node_alert(&am, "mgr-a").is_none().then_some(()),
    );
    let ok = wait_for("the good webhook to get mgr-a's recovery", DEADLINE, || {
        good.find("mgr-a", true)
    });
    assert_eq!(ok.json["firing"], false);
    assert_ne!(ok.json["from"], "OK");

    // 2. A flap shorter than the hold-down. Hand-made managers report rarely (no
    // staleness within the test); first seen OK, which sends nothing.
    let manager = c.token("manager");
    let put = |n: &mut Node, status: &str| {
        let (body, sig) = n.next(status, now_ms());
        let (code, _) = rt.block_on(c.put(&n.path(), &report_headers(&manager, &sig), body));
        assert_eq!(code, 200);
    };
    let pending = || value_or_zero(&metrics(), "status_reporter_alerts_pending", &[]);
    let mut flap = Node {
        reporting_freq: 600,
        ..Node::new("manager", "flap-1")
    };
    let mut mark = Node {
        reporting_freq: 600,
        ..Node::new("manager", "mark-1")
    };
    put(&mut flap, "OK");
    put(&mut mark, "OK");
    c.wait("the hand-made managers OK", DEADLINE, |s| {
        ["flap-1", "mark-1"]
            .iter()
            .all(|n| s.node_json(n).is_some_and(|j| j["status"] == "OK"))
    });
    wait_for("nothing pending before the flap", DEADLINE, || {
        (pending() == 0.0).then_some(())
    });
    let delivered_before = good.delivered().len();
    put(&mut flap, "Fail");
    wait_for("the evaluator to hold flap-1's Fail", DEADLINE, || {
        (pending() >= 1.0).then_some(())
    });
    put(&mut flap, "OK");
    wait_for("the evaluator to drop the flap", DEADLINE, || {
        (pending() == 0.0).then_some(())
    });
    // A real change after it: any alert of the flap would be queued ahead of this one.
    put(&mut mark, "Fail");
    wait_for("the marker's alert", DEADLINE, || {
        good.find("mark-1", false)
    });
    let after: Vec<Value> = good.delivered()[delivered_before..]
        .iter()
        .map(|g| g.json.clone())
        .collect();
    assert!(
        after.iter().all(|j| j["target"] != "flap-1"),
        "the flap was sent: {after:#?}"
    );
    wait_for("Alertmanager to hold the marker", SHOWN_WITHIN, || {
        am_node_alert(&am, "mark-1")
    });
    assert!(am_node_alert(&am, "flap-1").is_none());

    // 3. The hanging sink (queue of 1, one alert stuck in flight) dropped the oldest.
    let text = wait_for("a queue overflow on /metrics", DEADLINE, || {
        let t = metrics();
        (value_or_zero(
            &t,
            "status_reporter_alerts_dropped_total",
            &[("sink", "hang")],
        ) >= 1.0)
            .then_some(t)
    });
    assert_eq!(
        value_or_zero(
            &text,
            "status_reporter_alerts_dropped_total",
            &[("sink", "good")]
        ),
        0.0
    );
    assert!(
        text.contains("status_reporter_alert_delivery_duration_seconds_bucket{"),
        "the latency histogram"
    );
    assert!(
        value_or_zero(
            &text,
            "status_reporter_alert_changes_total",
            &[("kind", "node"), ("to", "OK")]
        ) >= 1.0
    );
    if harness::metrics::promtool_check(&text).is_err() {
        panic!("{:?}", harness::metrics::promtool_check(&text));
    }
    // No secret in the metrics, the history, the log or Alertmanager.
    let history = rt
        .block_on(c.get("/api/v3.1/history?limit=1000", &reader))
        .1
        .to_string();
    for s in [&good_secret, &flaky_secret] {
        assert!(!text.contains(s.as_str()));
        assert!(!history.contains(s.as_str()));
        assert!(!c.log().contains(s.as_str()));
        assert!(!am.log().contains(s.as_str()));
    }

    // 4. Hostile config: every error at once from `collector validate`.
    let (world_path, _) = secret_file(&secrets, "world.secret", 0o644);
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            r#"{plain_config}
[alerts]
hold_down_secs = -5
evaluate_interval_secs = 1e9
colour = "red"
"#
        ),
    )
    .unwrap();
    let validate = |p: &Path| {
        harness::cli(
            None,
            &["collector", "validate", "--config", p.to_str().unwrap()],
            &[],
        )
    };
    let (code, out, err) = validate(&bad);
    assert_ne!(code, 0);
    assert!(
        format!("{out}{err}").contains("unknown field `colour`"),
        "{out}{err}"
    );
    std::fs::write(
        &bad,
        format!(
            r#"{plain_config}
[alerts]
hold_down_secs = -5
evaluate_interval_secs = 1e9
[[alerts.webhook]]
name = "w"
url = "gopher://x"
secret_file = "{world}"
max_retries = 1000
[[alerts.webhook]]
name = "w2"
url = "http://user:pw@127.0.0.1:1/"
secret_file = "/nonexistent/secret"
[[alerts.alertmanager]]
name = "a"
urls = ["https://am:9093"]
"#,
            world = world_path.display()
        ),
    )
    .unwrap();
    let (code, out, err) = validate(&bad);
    let said = format!("{out}{err}");
    assert_ne!(code, 0, "{said}");
    for needle in [
        "hold_down_secs = -5",
        "evaluate_interval_secs",
        "gopher://x",
        "every user may read or write it",
        "max_retries = 1000",
        "/nonexistent/secret",
        "must not carry credentials",
        "needs ca_path",
    ] {
        assert!(said.contains(needle), "missing {needle:?} in:\n{said}");
    }
}
