//! The event stream (`GET /api/v3.1/events`, Server-Sent Events) and `cluster watch` on a
//! real collector: a real client follows the stream across a collector restart without
//! losing or repeating an event; resume by id; the watcher cap is counted; hostile ids and
//! parameters are clear 400s; readers only; no secret in what a watcher prints.

mod harness;

use harness::fixtures::{report, Node};
use harness::metrics::{scrape, value};
use harness::{Collector, DEADLINE};
use serde_json::Value;
use sr_protocol::TOKEN_HEADER;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `cluster watch --json` process writing to files; killed on drop.
struct Watcher {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Watcher {
    fn start(c: &Collector, dir: &Path, extra: &[&str]) -> Watcher {
        std::fs::create_dir_all(dir).unwrap();
        let out = dir.join("watch.out");
        let err = dir.join("watch.err");
        let child = Command::new(harness::BIN)
            .args(["cluster", "watch", "--json", "--timeout", "5"])
            .args(["--manager", &c.addr.to_string(), "--ca-path"])
            .arg(&c.ca)
            .args(extra)
            .env("STATUS_REPORTER_TOKEN", c.token("admin"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Watcher { child, out, err }
    }

    /// The events printed so far.
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_for(&self, n: usize) -> Vec<Value> {
        let mut last = 0;
        harness::poll::poll(DEADLINE, Duration::from_millis(50), || {
            let e = self.events();
            last = e.len();
            if e.len() >= n {
                Ok(e)
            } else {
                Err(String::new())
            }
        })
        .map(|(e, _)| e)
        .unwrap_or_else(|_| {
            panic!(
                "watcher printed {last} of {n} events\nstderr: {}",
                std::fs::read_to_string(&self.err).unwrap_or_default()
            )
        })
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

fn stored_ids(rt: &tokio::runtime::Runtime, c: &Collector) -> Vec<i64> {
    let (code, v) = rt.block_on(c.get(
        "/api/v3.1/history?after=0&limit=1000",
        &[(TOKEN_HEADER, &c.token("admin"))],
    ));
    assert_eq!(code, 200, "{v}");
    ids(v["items"].as_array().unwrap())
}

#[test]
fn a_watcher_follows_the_stream_across_a_collector_restart_without_a_gap() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Collector::start_in_temp_dir(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let w = Watcher::start(&c, &tmp.path().join("w1"), &["--after", "0"]);
    let mut db = Node::new("db", "db-events-1");
    report(&rt, &c, &mut db, &["OK", "Degraded", "Fail"]);
    let first = w.wait_for(3);
    assert_eq!(first[2]["to"], "Fail");
    assert_eq!(first[2]["node_id"], "db-events-1");

    // The collector stops (the stream ends) and comes back; events stored before the
    // watcher reconnects must still reach it, once each, in order.
    assert!(c.stop().success());
    c.spawn();
    let mut broker = Node::new("broker", "broker-events-1");
    report(&rt, &c, &mut db, &["OK"]);
    report(&rt, &c, &mut broker, &["OK", "Fail"]);
    let all = w.wait_for(6);
    let got = ids(&all);
    assert_eq!(
        got,
        stored_ids(&rt, &c),
        "every stored event once, in id order"
    );
    assert!(got.windows(2).all(|p| p[0] < p[1]), "{got:?}");
    assert!(
        w.stderr().contains("reconnecting after event"),
        "{}",
        w.stderr()
    );

    // A later watcher resumes from an id (sent as Last-Event-ID) and exits after --count.
    let from = got[1].to_string();
    let out = Command::new(harness::BIN)
        .args([
            "cluster",
            "watch",
            "--json",
            "--timeout",
            "5",
            "--count",
            "4",
        ])
        .args(["--manager", &c.addr.to_string(), "--ca-path"])
        .arg(&c.ca)
        .args(["--after", &from])
        .env("STATUS_REPORTER_TOKEN", c.token("admin"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", harness::text(&out));
    let resumed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(ids(&resumed), got[2..]);

    // Without an id a watcher gets only what happens after it connected.
    let live = Watcher::start(&c, &tmp.path().join("w2"), &[]);
    harness::wait_for("the live watcher to connect", DEADLINE, || {
        let (_, m) = scrape(
            &c.url("/metrics"),
            Some(&c.ca),
            &[(TOKEN_HEADER, &c.token("admin"))],
        );
        (value(&m, "status_reporter_event_watchers", &[]) == Some(2.0)).then_some(())
    });
    report(&rt, &c, &mut db, &["Degraded"]);
    let live_events = live.wait_for(1);
    assert_eq!(live_events.len(), 1, "{live_events:?}");
    assert_eq!(live_events[0]["to"], "Degraded");
    w.wait_for(7);

    let printed = std::fs::read_to_string(&w.out).unwrap() + &w.stderr();
    for role in ["admin", "db", "broker", "manager"] {
        assert!(
            !printed.contains(&c.token(role)),
            "{role} token printed by watch"
        );
    }
}

#[test]
fn hostile_event_requests_are_refused_clearly_and_watchers_are_capped() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Collector::start_in_temp_dir(&[]);
    let admin = c.token("admin");
    let get = |path: &str, headers: &[(&str, &str)]| rt.block_on(c.get(path, headers));
    let (code, v) = get("/api/v3.1/events", &[]);
    assert_eq!(code, 401, "{v}");
    let (code, v) = get("/api/v3.1/events", &[(TOKEN_HEADER, &c.token("db"))]);
    assert_eq!(code, 403, "{v}");
    let huge = format!("/api/v3.1/events?after={}", "9".repeat(5000));
    for (path, last_id, says) in [
        ("/api/v3.1/events?after=-1", None, "after"),
        ("/api/v3.1/events?after=abc", None, "after"),
        (huge.as_str(), None, "after"),
        ("/api/v3.1/events?after=1&after=2", None, "more than once"),
        ("/api/v3.1/events?node=db1", None, "unknown parameter"),
        ("/api/v3.1/events", Some("x"), "Last-Event-ID"),
        ("/api/v3.1/events", Some("-4"), "Last-Event-ID"),
        ("/api/v3.1/events?after=3", Some("1.5"), "Last-Event-ID"),
    ] {
        let mut h = vec![(TOKEN_HEADER, admin.as_str())];
        if let Some(l) = last_id {
            h.push(("Last-Event-ID", l));
        }
        let (code, v) = get(path, &h);
        let p: String = path.chars().take(60).collect();
        assert_eq!(code, 400, "{p} {last_id:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{p}: {v}");
    }
    let (code, out, err) = harness::cli(
        None,
        &[
            "cluster",
            "watch",
            "--manager",
            &c.addr.to_string(),
            "--ca-path",
            c.ca.to_str().unwrap(),
            "--after=-5",
        ],
        &[("STATUS_REPORTER_TOKEN", &admin)],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--after"), "{err}");
    for (flag, value) in [
        ("--count", "0"),
        ("--count", "-1"),
        ("--after", "x"),
        ("--timeout", "0"),
    ] {
        let (code, out, err) = harness::cli(
            None,
            &[
                "cluster",
                "watch",
                "--manager",
                &c.addr.to_string(),
                "--ca-path",
                c.ca.to_str().unwrap(),
                &format!("{flag}={value}"),
            ],
            &[("STATUS_REPORTER_TOKEN", &admin)],
        );
        assert_eq!(code, 2, "{flag} {value}: {out}{err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }

    // The cap: every watcher on its own connection; one more is refused and counted.
    let max = sr_collector::events::MAX_WATCHERS;
    let open = |n: usize| {
        (0..n)
            .map(|_| {
                let (status, headers, body) = rt
                    .block_on(c.client().open_stream(
                        &c.url("/api/v3.1/events"),
                        &[(TOKEN_HEADER, &admin)],
                        Duration::from_secs(20),
                    ))
                    .unwrap();
                (status.as_u16(), headers, body)
            })
            .collect::<Vec<_>>()
    };
    let streams = open(max);
    assert!(streams.iter().all(|s| s.0 == 200));
    let over = open(1);
    assert_eq!(over[0].0, 503);
    assert!(over[0].1.contains_key("retry-after"));
    let metrics = |what: &str| {
        let (_, m) = scrape(&c.url("/metrics"), Some(&c.ca), &[(TOKEN_HEADER, &admin)]);
        value(&m, what, &[]).unwrap_or(-1.0)
    };
    assert_eq!(metrics("status_reporter_event_watchers"), max as f64);
    assert_eq!(metrics("status_reporter_event_watchers_refused_total"), 1.0);
    drop(streams);
    drop(over);
    harness::wait_for(
        "closed watchers to give their places back",
        DEADLINE,
        || (metrics("status_reporter_event_watchers") == 0.0).then_some(()),
    );
}

#[test]
fn a_quiet_stream_outlives_the_idle_deadline() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Collector::start_in_temp_dir(&[
        ("idle_timeout_secs", "1"),
        ("header_read_timeout_secs", "0.2"),
    ]);
    let admin = c.token("admin");
    let tmp = tempfile::tempdir().unwrap();
    let w = Watcher::start(&c, &tmp.path().join("w"), &[]);
    let metrics = |what: &str| {
        let (_, m) = scrape(&c.url("/metrics"), Some(&c.ca), &[(TOKEN_HEADER, &admin)]);
        value(&m, what, &[]).unwrap_or(-1.0)
    };
    harness::wait_for("the watcher to connect", DEADLINE, || {
        (metrics("status_reporter_event_watchers") == 1.0).then_some(())
    });
    // Connections opened one after another after the watcher's, each left idle after one
    // request (a kept-alive client's pool holds it) until the collector closes it. Once
    // three have been closed (counted), the watcher's quiet stream has been open for more
    // than twice the idle deadline plus the close grace: a stream counted as idle would
    // have been cut by then, and the watcher would have said so.
    let mut kept = Vec::new();
    for closed in 1..=3 {
        let idle = c.client();
        let r = rt
            .block_on(idle.get(&c.url("/api/v3.1/ok"), &[], Duration::from_secs(10), 4096))
            .unwrap();
        assert_eq!(r.status.as_u16(), 200);
        kept.push(idle);
        harness::wait_for("an idle connection to be closed", DEADLINE, || {
            (metrics("status_reporter_idle_connections_closed_total") >= f64::from(closed))
                .then_some(())
        });
    }
    let mut db = Node::new("db", "db-quiet-1");
    report(&rt, &c, &mut db, &["Fail"]);
    let got = w.wait_for(1);
    assert_eq!(got[0]["to"], "Fail");
    assert!(
        !w.stderr().contains("reconnecting"),
        "the stream was cut: {}",
        w.stderr()
    );
}

/// `status-reporter maintenance ARGS` against `c` as the admin.
fn maintenance(c: &Collector, args: &[&str]) {
    let manager = c.addr.to_string();
    let mut all = vec!["maintenance"];
    all.extend(args);
    all.extend(["--manager", &manager, "--ca-path", c.ca.to_str().unwrap()]);
    let (code, out, err) = harness::cli(
        Some(&c.dir),
        &all,
        &[("STATUS_REPORTER_TOKEN", &c.token("admin"))],
    );
    assert_eq!(code, 0, "maintenance {args:?}: {out}{err}");
}

#[test]
fn maintenance_changes_are_events_in_the_same_sequence_across_a_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut c = Collector::start_in_temp_dir(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let w = Watcher::start(&c, &tmp.path().join("w"), &["--after", "0"]);
    let mut db = Node::new("db", "db-maint-ev-1");
    report(&rt, &c, &mut db, &["OK", "Fail"]);
    maintenance(
        &c,
        &[
            "on",
            "db-maint-ev-1",
            "--reason",
            "disk swap",
            "--by",
            "alice",
        ],
    );
    // Durable before the answer: the event is in the history as soon as the command ends.
    let stored = stored_ids(&rt, &c);
    assert_eq!(stored.len(), 3, "{stored:?}");
    let first = w.wait_for(3);
    assert_eq!(first[2]["kind"], "maintenance");
    assert_eq!(first[2]["action"], "on");
    assert_eq!(first[2]["target"], "db-maint-ev-1");
    assert_eq!(first[2]["by"], "alice");
    assert_eq!(first[2]["reason"], "disk swap");
    assert_eq!(first[1]["kind"], "transition");

    // Across a restart: changes made before the watcher is back reach it once, in order,
    // interleaved with transitions by id; an expiry is an event of its own.
    assert!(c.stop().success());
    c.spawn();
    maintenance(
        &c,
        &["on", "galera", "--reason", "upgrade", "--until", "2s"],
    );
    report(&rt, &c, &mut db, &["OK"]);
    maintenance(&c, &["off", "db-maint-ev-1"]);
    let all = w.wait_for(7);
    let got = ids(&all);
    assert_eq!(
        got,
        stored_ids(&rt, &c),
        "every stored event once, in id order"
    );
    let shape: Vec<(String, String, String)> = all
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("-").to_string();
            (s("kind"), s("node_id"), s("action"))
        })
        .collect();
    let want = [
        ("transition", "db-maint-ev-1", "-"),
        ("transition", "db-maint-ev-1", "-"),
        ("maintenance", "db-maint-ev-1", "on"),
        ("maintenance", "galera", "on"),
        ("transition", "db-maint-ev-1", "-"),
        ("maintenance", "db-maint-ev-1", "off"),
        ("maintenance", "galera", "expired"),
    ];
    assert_eq!(
        shape,
        want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())),
        "{all:?}"
    );
    assert!(
        w.stderr().contains("reconnecting after event"),
        "{}",
        w.stderr()
    );

    // `cluster history` shows them in its table, and finds a service's by `--service`.
    let manager = c.addr.to_string();
    let (code, out, err) = harness::cli(
        Some(&c.dir),
        &[
            "cluster",
            "history",
            "--service",
            "galera",
            "--manager",
            &manager,
            "--ca-path",
            c.ca.to_str().unwrap(),
        ],
        &[("STATUS_REPORTER_TOKEN", &c.token("admin"))],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("maintenance ended at its until") && out.contains("maintenance on: upgrade"),
        "{out}"
    );
    assert_eq!(out.matches("galera").count(), 2, "{out}");
}
