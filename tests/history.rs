//! `GET /api/v3.1/history` and `status-reporter cluster history` on a real collector:
//! transitions reported by signed nodes come back filtered, bounded and with increasing
//! ids; every hostile parameter or flag is a clear 400 or exit 2; readers only; no secret
//! in any output.

mod harness;

use harness::fixtures::{report, Node};
use harness::Collector;
use serde_json::Value;
use sr_protocol::TOKEN_HEADER;

fn history(rt: &tokio::runtime::Runtime, c: &Collector, query: &str) -> (u16, Value) {
    rt.block_on(c.get(
        &format!("/api/v3.1/history{query}"),
        &[(TOKEN_HEADER, &c.token("admin"))],
    ))
}

fn ids(v: &Value) -> Vec<i64> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

/// `cluster history` with the admin token in the environment: (exit code, stdout, stderr).
fn cli(c: &Collector, args: &[&str]) -> (i32, String, String) {
    let manager = c.addr.to_string();
    let mut all = vec![
        "cluster",
        "history",
        "--manager",
        &manager,
        "--ca-path",
        c.ca.to_str().unwrap(),
    ];
    all.extend(args);
    let token = c.token("admin");
    harness::cli(Some(&c.dir), &all, &[("STATUS_REPORTER_TOKEN", &token)])
}

#[test]
fn history_serves_stored_transitions_filtered_and_bounded() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Collector::start_in_temp_dir(&[]);
    let mut db = Node {
        name: "db-one".into(),
        ..Node::new("db", "db-id-1")
    };
    let mut broker = Node::new("broker", "broker-1");
    report(&rt, &c, &mut db, &["OK", "Degraded", "Fail"]);
    report(&rt, &c, &mut broker, &["OK", "Fail"]);

    let (code, all) = history(&rt, &c, "");
    assert_eq!(code, 200, "{all}");
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 5, "{all}");
    assert!(
        all_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {all_ids:?}"
    );
    assert_eq!(all["metadata"]["order"], "newest_first");
    assert_eq!(all["retention"]["per_node"], 1000);
    let newest = &all["items"][0];
    assert_eq!(newest["node_id"], "broker-1");
    assert_eq!(newest["to"], "Fail");
    assert!(
        newest["received_at"].as_str().unwrap().ends_with('Z'),
        "{newest}"
    );

    // By name and by id, by service type, by limit, and resumed after an id.
    let (_, by_name) = history(&rt, &c, "?node=db-one");
    let (_, by_id) = history(&rt, &c, "?node=db-id-1");
    assert_eq!(ids(&by_name).len(), 3);
    assert_eq!(ids(&by_name), ids(&by_id));
    let (_, brokers) = history(&rt, &c, "?service=broker");
    assert_eq!(ids(&brokers).len(), 2);
    let (_, two) = history(&rt, &c, "?limit=2");
    assert_eq!(ids(&two), all_ids[..2]);
    let oldest = *all_ids.last().unwrap();
    let (_, after) = history(&rt, &c, &format!("?after={oldest}"));
    let mut rest = all_ids[..4].to_vec();
    rest.reverse();
    assert_eq!(ids(&after), rest, "oldest first after an id");
    let (_, future) = history(&rt, &c, "?since=2999-01-01T00:00:00Z");
    assert!(ids(&future).is_empty());
    let (_, recent) = history(&rt, &c, "?since=1h&until=2999-01-01T00:00:00%2B01:00");
    assert_eq!(ids(&recent).len(), 5);

    // The command line: a table and --json.
    let (code, out, err) = cli(&c, &["--node", "db-one", "--limit", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("db-one") && out.contains("Fail") && out.contains("Degraded"),
        "{out}"
    );
    assert!(
        out.contains("2 shown, newest first. Kept: 90 days, 1000 per node."),
        "{out}"
    );
    let (code, out, err) = cli(&c, &["--json", "--service", "broker"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids(&v), ids(&brokers));

    // The history survives a restart: it is the store's.
    let mut c = c;
    c.stop();
    c.spawn();
    let (_, again) = history(&rt, &c, "");
    assert_eq!(ids(&again), all_ids);

    let secrets: Vec<_> = ["admin", "db", "broker", "manager"]
        .iter()
        .map(|r| (*r, c.token(r)))
        .collect();
    let checked = harness::fixtures::assert_no_secrets(&c.dir, &secrets);
    assert!(checked > 0);
}

#[test]
fn hostile_history_requests_are_clear_400s_and_flags_exit_2() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = Collector::start_in_temp_dir(&[]);
    // Readers only.
    let (code, v) = rt.block_on(c.get("/api/v3.1/history", &[]));
    assert_eq!(code, 401, "{v}");
    let (code, v) = rt.block_on(c.get("/api/v3.1/history", &[(TOKEN_HEADER, &c.token("db"))]));
    assert_eq!(code, 403, "{v}");
    let long_node = format!("?node={}", "x".repeat(200));
    let long_key = format!("?{}=1", "k".repeat(10_000));
    for (query, says) in [
        ("?limit=100000", "limit"),
        ("?limit=0", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=1.5", "limit"),
        ("?limit=18446744073709551617", "limit"),
        ("?after=-1", "after"),
        ("?after=1e9", "after"),
        ("?since=yesterday", "since"),
        ("?since=1h&until=2h", "later"),
        ("?until=9999999999999999999d", "until"),
        ("?node=%00x", "control"),
        ("?service=%1b%5b2J", "control"),
        ("?node=", "node"),
        (long_node.as_str(), "node"),
        ("?node=a&node=b", "more than once"),
        ("?nodes=a", "unknown parameter"),
        (long_key.as_str(), "unknown parameter"),
    ] {
        let (code, v) = history(&rt, &c, query);
        let q: String = query.chars().take(60).collect();
        assert_eq!(code, 400, "{q}: {v}");
        assert_eq!(v["error_code"], "bad_parameters_error", "{q}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(says), "{q}: {msg}");
        assert!(msg.len() < 300, "{q}: a bounded message");
    }
    for (args, says) in [
        (vec!["--limit", "0"], "--limit"),
        (vec!["--limit", "5000"], "--limit"),
        (vec!["--since", "last tuesday"], "since"),
        (vec!["--node", "a\u{1b}[2Jb"], "control"),
    ] {
        let (code, out, err) = cli(&c, &args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "no raw escape reaches the terminal: {err:?}"
        );
    }
    let (code, _, err) = cli(&c, &["--limit", "not-a-number"]);
    assert_eq!(code, 2, "{err}");
}
