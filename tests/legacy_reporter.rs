//! The original Cloudify 5.0.5 reporter against a real collector process.
//!
//! The bodies are the ones docs/protocol.md documents ("Reports from the original 5.0.5
//! reporter"), read from the doc byte for byte as `collector/tests/rollup_golden.rs` reads
//! them, and sent as the 5.0.5 reporter sends them: unsigned, with the role's reporter
//! token, `PUT /api/v3.1/cluster-status/{type}/{node_id}`, to a collector with
//! `allow_unsigned_legacy = true`. The one byte-level change: the doc's bodies carry a fixed
//! `timestamp`, which is replaced by the current time (same format, same length) so the
//! report is not judged skewed; everything else is sent exactly as documented.

#[path = "../collector/tests/support/documented.rs"]
mod documented;

use serde_json::Value;

mod harness;

use harness::fixtures::now_ms;
use harness::Collector;

/// The fixed reporter clock the documented bodies carry.
const DOCUMENTED_TIMESTAMP: &str = "\"timestamp\": \"20270115075959+0000\"";

/// A 5.0.5 reporter's body as docs/protocol.md gives it, byte for byte.
fn documented_body(name: &str) -> Vec<u8> {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.md");
    documented::documented_body(&doc, name)
}

/// [`documented_body`] with only its `timestamp` value replaced by the current time, as a
/// running 5.0.5 reporter stamps it; panics if the doc's body stops carrying the fixed one.
fn fresh_body(name: &str) -> Vec<u8> {
    let body = String::from_utf8(documented_body(name)).unwrap();
    assert_eq!(
        body.matches(DOCUMENTED_TIMESTAMP).count(),
        1,
        "the {name} body no longer carries {DOCUMENTED_TIMESTAMP}"
    );
    let fresh = format!(
        "\"timestamp\": \"{}\"",
        legacy_timestamp(now_ms().div_euclid(1000))
    );
    body.replacen(DOCUMENTED_TIMESTAMP, &fresh, 1).into_bytes()
}

/// `unix_secs` as 5.0.5 formats its reporter clock: UTC `%Y%m%d%H%M%S+0000`.
fn legacy_timestamp(unix_secs: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}+0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A collector that accepts unsigned legacy reports and requires only `required` types, so
/// the overall status is the one type's.
fn legacy_collector(required: &str) -> Collector {
    Collector::start_in_temp_dir(&[
        ("allow_unsigned_legacy", "true"),
        ("required_types", &format!("[\"{required}\"]")),
    ])
}

/// PUTs `body` as the 5.0.5 reporter does (no signature header) and expects 200 with a
/// reply that says it was accepted unsigned.
async fn report(c: &Collector, node_type: &str, node_id: &str, body: Vec<u8>) {
    let token = c.token(node_type);
    let (code, reply) = c
        .put(
            &format!("/api/v3.1/cluster-status/{node_type}/{node_id}"),
            &[
                ("Content-Type", "application/json"),
                (sr_protocol::TOKEN_HEADER, &token),
                ("Tenant", "default_tenant"),
            ],
            body,
        )
        .await;
    assert_eq!(code, 200, "{node_type}/{node_id}: {reply}");
    assert_eq!(reply["status"], "accepted", "{reply}");
    assert_eq!(reply["acked_seq"], Value::Null, "unsigned: {reply}");
    assert!(
        reply["skew_ms"].as_i64().unwrap().abs() <= 2_000,
        "the substituted timestamp is fresh: {reply}"
    );
}

#[test]
fn the_documented_timestamp_format_is_reproduced() {
    assert_eq!(legacy_timestamp(0), "19700101000000+0000");
    // The doc's own fixed stamp, 2027-01-15 07:59:59 UTC.
    assert_eq!(legacy_timestamp(1_799_999_999), "20270115075959+0000");
    assert_eq!(legacy_timestamp(951_782_400), "20000229000000+0000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_legacy_db_cluster_is_ok_with_roles() {
    let c = legacy_collector("db");
    // A master with a sync and an async streaming replica; 5.0.5 replicas send one body.
    report(&c, "db", "db1", fresh_body("db-master")).await;
    report(&c, "db", "db2", fresh_body("db-replica")).await;
    report(&c, "db", "db3", fresh_body("db-replica")).await;

    let v = c.view().await;
    assert_eq!(v["status"], "OK", "{v:#}");
    let db = &v["services"]["db"];
    assert_eq!(db["status"], "OK", "{v:#}");
    let nodes = &db["nodes"];
    assert_eq!(nodes["db1"]["role"], "leader", "{v:#}");
    for replica in ["db2", "db3"] {
        assert_eq!(nodes[replica]["role"], "replica", "{v:#}");
        assert_eq!(nodes[replica]["status"], "OK", "{v:#}");
    }
    for node in ["db1", "db2", "db3"] {
        assert_eq!(nodes[node]["signed"], false, "{v:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_broker_split_brain_is_fail() {
    let c = legacy_collector("broker");
    // broker1 and broker2 see broker3 down; broker3 sees both of them down.
    report(&c, "broker", "broker1", fresh_body("broker-majority")).await;
    report(&c, "broker", "broker2", fresh_body("broker-majority")).await;
    report(&c, "broker", "broker3", fresh_body("broker-minority")).await;

    let v = c.view().await;
    assert_eq!(v["status"], "Fail", "{v:#}");
    let broker = &v["services"]["broker"];
    assert_eq!(broker["status"], "Fail", "{v:#}");
    let split: Vec<&Value> = broker["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["code"] == "split_brain")
        .collect();
    assert!(!split.is_empty(), "no split_brain reason: {v:#}");
    assert!(
        split
            .iter()
            .all(|r| r["message"].as_str().unwrap().contains("broker3")),
        "{v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_list_a_legacy_reporter_reads_is_never_empty() {
    let c = legacy_collector("manager");
    let token = c.token("manager");
    let auth = [(sr_protocol::TOKEN_HEADER, token.as_str())];
    let read = || c.get("/api/v3.1/managers", &auth);

    // Before any node reported: the collector stands in for the managers.
    let (code, v) = read().await;
    assert_eq!(code, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v:#}");
    assert_eq!(items[0]["placeholder"], true, "{v:#}");
    assert!(items[0]["private_ip"].is_string(), "{v:#}");

    // Still not empty once other node types report but no manager has.
    report(&c, "db", "db1", fresh_body("db-master")).await;
    let (code, v) = read().await;
    assert_eq!(code, 200, "{v}");
    assert!(!v["items"].as_array().unwrap().is_empty(), "{v:#}");
}
