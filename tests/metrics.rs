//! Prometheus `/metrics` on a real collector and a real agent: scraped over the network,
//! checked by the real `promtool check metrics`, and watched move with what happens
//! (a refused report counts under its reason, a failed login counts, a silent node turns
//! stale, pushes count per manager). Reader auth on the collector; loopback only and off
//! by default on the agent. No secret in any scrape.

mod harness;

use harness::fixtures::{now_ms, tcp_probe, Node, Target};
use harness::metrics::{promtool_check, scrape, value, value_or_zero};
use harness::{Agent, Collector, DEADLINE};
use sr_protocol::{SIGNATURE_HEADER, TOKEN_HEADER};

const REFUSED: &str = "status_reporter_reports_refused_total";

/// PUTs a signed report body with `token`: the status code.
fn put(
    rt: &tokio::runtime::Runtime,
    c: &Collector,
    n: &Node,
    token: &str,
    body: &[u8],
    sig: &str,
) -> u16 {
    let headers = [
        ("Content-Type", "application/json"),
        (TOKEN_HEADER, token),
        (SIGNATURE_HEADER, sig),
    ];
    rt.block_on(c.put(&n.path(), &headers, body.to_vec())).0
}

#[test]
fn collector_metrics_need_a_reader_pass_promtool_and_move() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // stale after one reporting period, so the stale gauge moves within the test.
    let c = Collector::start_in_temp_dir(&[("stale_after_factor", "1")]);
    let admin = c.token("admin");
    let db = c.token("db");
    let url = c.url("/metrics");
    let reader = [(TOKEN_HEADER, admin.as_str())];

    // Readers only: nothing without credentials, nothing for a reporter token.
    let (code, body) = scrape(&url, Some(&c.ca), &[]);
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("status_reporter_"), "{body}");
    let (code, body) = scrape(&url, Some(&c.ca), &[(TOKEN_HEADER, db.as_str())]);
    assert_eq!(code, 403, "{body}");

    let (code, before) = scrape(&url, Some(&c.ca), &reader);
    assert_eq!(code, 200, "{before}");
    promtool_check(&before).unwrap();
    // The check can fail: a sample without HELP is a lint problem.
    assert!(
        promtool_check("foo_count 1\n") != Ok(true),
        "promtool accepted a bad exposition"
    );
    // Refusal reasons start at 0, so the first refusal is a visible increase.
    assert_eq!(
        value(&before, REFUSED, &[("reason", "replayed_report")]),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        value(
            &before,
            "status_reporter_cluster_status",
            &[("status", "Fail")]
        ),
        Some(1.0)
    );

    // One accepted report, the same bytes again (a replay), one with an unknown token.
    let mut n = Node {
        reporting_freq: 1,
        ..Node::new("db", "db-metrics-1")
    };
    let t = now_ms();
    let (body, sig) = n.next("OK", t);
    assert_eq!(put(&rt, &c, &n, &db, &body, &sig), 200);
    assert_eq!(put(&rt, &c, &n, &db, &body, &sig), 409);
    let (body2, sig2) = n.next("OK", now_ms());
    assert_eq!(put(&rt, &c, &n, "not-a-token", &body2, &sig2), 401);
    // A wrong password for a reader.
    let (code, _) = scrape(
        &url,
        Some(&c.ca),
        &[("Authorization", "Basic YWRtaW46d3Jvbmc=")],
    );
    assert_eq!(code, 401);

    let (code, after) = scrape(&url, Some(&c.ca), &reader);
    assert_eq!(code, 200);
    promtool_check(&after).unwrap();
    let v = |name: &str, labels: &[(&str, &str)]| value_or_zero(&after, name, labels);
    assert_eq!(v(REFUSED, &[("reason", "replayed_report")]), 1.0, "{after}");
    assert_eq!(
        v(REFUSED, &[("reason", "unauthorized_error")]),
        1.0,
        "{after}"
    );
    assert_eq!(v("status_reporter_reports_accepted_total", &[]), 1.0);
    assert_eq!(v("status_reporter_reports_rejected_total", &[]), 2.0);
    assert_eq!(v("status_reporter_login_failures_total", &[]), 1.0);
    assert_eq!(v("status_reporter_ingest_duration_seconds_count", &[]), 3.0);
    assert!(
        v(
            "status_reporter_store_write_duration_seconds_count",
            &[("kind", "durable")]
        ) >= 1.0
    );
    let node = [("service", "db"), ("node", "db-metrics-1")];
    // Fresh (OK) or already stale (Fail): either way the node is listed with a state set.
    let states: f64 = ["OK", "Degraded", "Fail"]
        .iter()
        .map(|s| {
            let l: Vec<_> = node.iter().copied().chain([("status", *s)]).collect();
            v("status_reporter_node_status", &l)
        })
        .sum();
    assert_eq!(states, 1.0, "exactly one status is current: {after}");

    // Silent for longer than its period: the node turns stale.
    harness::wait_for("the silent node to count as stale", DEADLINE, || {
        let (_, text) = scrape(&url, Some(&c.ca), &reader);
        (value(&text, "status_reporter_stale_nodes", &[]) == Some(1.0)).then_some(text)
    });
    let (_, stale) = scrape(&url, Some(&c.ca), &reader);
    let stale_reason: Vec<_> = node.iter().copied().chain([("reason", "stale")]).collect();
    assert_eq!(
        value(&stale, "status_reporter_node_reason", &stale_reason),
        Some(1.0),
        "{stale}"
    );

    for (role, secret) in ["admin", "db", "broker", "manager"].map(|r| (r, c.token(r))) {
        assert!(
            !after.contains(&secret) && !stale.contains(&secret),
            "{role} token in /metrics"
        );
    }
}

#[test]
fn per_node_series_can_be_left_out() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pki = harness::Pki::with_sans(
        &tmp.path().join("pki"),
        "metrics test CA",
        &["localhost", "127.0.0.1"],
    );
    let mut c = Collector::init(tmp.path(), &pki, "127.0.0.1:0");
    // `collector init` writes the table with its default; turn it off there.
    let toml = std::fs::read_to_string(c.config()).unwrap();
    assert!(
        toml.contains("[metrics]\nper_node_series = true\n"),
        "{toml}"
    );
    std::fs::write(
        c.config(),
        toml.replace("per_node_series = true", "per_node_series = false"),
    )
    .unwrap();
    c.spawn();
    let db = c.token("db");
    let mut n = Node::new("db", "db-no-series-1");
    let (body, sig) = n.next("OK", now_ms());
    assert_eq!(put(&rt, &c, &n, &db, &body, &sig), 200);

    let admin = c.token("admin");
    let (code, text) = scrape(&c.url("/metrics"), Some(&c.ca), &[(TOKEN_HEADER, &admin)]);
    assert_eq!(code, 200, "{text}");
    promtool_check(&text).unwrap();
    for series in [
        "status_reporter_node_status",
        "status_reporter_node_reason",
        "status_reporter_node_clock_skew_seconds",
    ] {
        assert!(!text.contains(series), "{series} is still exposed:\n{text}");
    }
    assert!(
        !text.contains("db-no-series-1"),
        "a node label is left:\n{text}"
    );
    // The cluster, service and count series stay.
    assert_eq!(
        value(&text, "status_reporter_nodes", &[]),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "status_reporter_stale_nodes", &[]).is_some(),
        "{text}"
    );
    assert!(
        value(
            &text,
            "status_reporter_service_status",
            &[("service", "db")]
        )
        .is_some(),
        "{text}"
    );
    assert!(value(
        &text,
        "status_reporter_cluster_status",
        &[("status", "Fail")]
    )
    .is_some());
}

#[test]
fn hostile_metrics_requests_get_clear_errors() {
    let c = Collector::start_in_temp_dir(&[]);
    let url = c.url("/metrics");
    for (name, headers) in [
        ("garbage token", vec![(TOKEN_HEADER, "x".repeat(4000))]),
        (
            "not base64",
            vec![("Authorization", "Basic !!!!".to_string())],
        ),
        (
            "huge basic",
            vec![("Authorization", format!("Basic {}", "A".repeat(5000)))],
        ),
        ("bearer", vec![("Authorization", "Bearer abc".to_string())]),
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, body) = scrape(&url, Some(&c.ca), &h);
        assert_eq!(code, 401, "{name}: {body}");
        assert!(body.contains("unauthorized_error"), "{name}: {body}");
    }
    // A query string changes nothing; other methods are not routed to it.
    let admin = c.token("admin");
    let (code, body) = scrape(
        &c.url("/metrics?name[]=x&%ff"),
        Some(&c.ca),
        &[(TOKEN_HEADER, &admin)],
    );
    assert_eq!(code, 200, "{body}");
    let r = harness::rest::request(
        harness::rest::Tls {
            ca: Some(&c.ca),
            identity: None,
        },
        "POST",
        &url,
        &[(TOKEN_HEADER, &admin)],
        Some("{}"),
    )
    .unwrap();
    assert_eq!(r.status, 405, "{}", r.body);
}

/// Sets `metrics_listen` in an agent's config.
fn enable_agent_metrics(a: &Agent, listen: &str) {
    let mut raw = sr_agent::config::RawConfig::read(&a.cfg).unwrap();
    raw.metrics_listen = Some(listen.to_string());
    std::fs::write(&a.cfg, raw.to_toml()).unwrap();
}

/// The agent's metrics address, from its `metrics listening on http://ADDR/metrics` line.
fn agent_metrics_url(a: &Agent) -> String {
    harness::wait_for("the agent's metrics listener", DEADLINE, || {
        let log = a.log();
        let at = log.find("metrics listening on http://")?;
        let rest = &log[at + "metrics listening on ".len()..];
        let end = rest.find(|c: char| c.is_whitespace() || c == '"')?;
        Some(rest[..end].to_string())
    })
}

#[test]
fn agent_metrics_are_off_by_default_loopback_only_and_count_probes_and_pushes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Listening from the start.
    let mut target = Target::new(&rt);
    let c = Collector::start_in_temp_dir(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Agent::for_collector(
        &tmp.path().join("db1"),
        "db1",
        "db",
        &c,
        vec![tcp_probe("api", &target.addr())],
        None,
    );

    // Off by default: nothing in the config, no listener announced.
    let raw = sr_agent::config::RawConfig::read(&a.cfg).unwrap();
    assert_eq!(raw.metrics_listen, None);

    // Not loopback: refused by validation, with the reason.
    for bad in [
        "0.0.0.0:9464",
        "192.0.2.1:9464",
        "localhost:9464",
        "127.0.0.1",
        "127.0.0.1:99999",
        "",
    ] {
        enable_agent_metrics(&a, bad);
        let (code, out, err) = harness::cli(
            None,
            &["validate", "--config", a.cfg.to_str().unwrap()],
            &[],
        );
        assert_ne!(code, 0, "{bad:?} accepted: {out}{err}");
        assert!(
            format!("{out}{err}").contains("metrics_listen"),
            "{bad:?}: {out}{err}"
        );
    }

    enable_agent_metrics(&a, "127.0.0.1:0");
    a.start();
    let url = agent_metrics_url(&a);
    let manager = c.addr.to_string();
    let text = harness::wait_for("a delivered push and a probe result", DEADLINE, || {
        let (code, text) = scrape(&url, None, &[]);
        let pushed = value_or_zero(
            &text,
            "status_reporter_agent_pushes_total",
            &[("outcome", "ok")],
        );
        let probed = value_or_zero(
            &text,
            "status_reporter_agent_probe_results_total",
            &[("probe", "tcp:api"), ("status", "OK")],
        );
        (code == 200 && pushed >= 1.0 && probed >= 1.0).then_some(text)
    });
    promtool_check(&text).unwrap();
    assert!(
        value(
            &text,
            "status_reporter_agent_pushes_total",
            &[("manager", &manager), ("outcome", "ok")]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        value(
            &text,
            "status_reporter_agent_probe_duration_seconds_count",
            &[("probe", "tcp:api")]
        )
        .is_some(),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "status_reporter_agent_transitions_dropped_total",
            &[]
        ),
        Some(0.0)
    );

    // The probe's target goes away: the Fail results count, and the node status follows.
    target.close();
    harness::wait_for("a Fail probe result", DEADLINE, || {
        let (_, text) = scrape(&url, None, &[]);
        let failed = value_or_zero(
            &text,
            "status_reporter_agent_probe_results_total",
            &[("probe", "tcp:api"), ("status", "Fail")],
        );
        (failed >= 1.0
            && value(
                &text,
                "status_reporter_agent_node_status",
                &[("status", "Fail")],
            ) == Some(1.0))
        .then_some(())
    });

    // Only /metrics, only GET.
    let (code, _) = scrape(&url.replace("/metrics", "/"), None, &[]);
    assert_eq!(code, 404);
    let r = harness::rest::request(harness::rest::Tls::default(), "POST", &url, &[], Some("{}"))
        .unwrap();
    assert_eq!(r.status, 405);

    let token = c.token("db");
    let (_, text) = scrape(&url, None, &[]);
    assert!(
        !text.contains(&token),
        "the token is in the agent's metrics"
    );
    assert!(!a.log().contains(&token), "the token is in the agent's log");
}
