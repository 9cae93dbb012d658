//! Tier 2 over real processes (issue 16): two tier-1 clusters, each a real collector with
//! real agents on loopback, pushing signed summaries to one real tier-2 collector that
//! heals with a command.
//!
//! One run, in sequence (each wait polls with a deadline; nothing sleeps to synchronise):
//! 1. both clusters show OK at tier 2, in the API and in `cluster status --clusters`;
//! 2. an agent of cluster `east` is killed: exactly one heal call names it, and the next
//!    comes only after the heal interval (3 s), with a suppression recorded between;
//! 3. cluster `west` loses a node and then its collector (the whole cluster cut off): it
//!    shows Unreachable (`cluster_unreachable`, exit 2) and its silent node is never
//!    healed, the suppression recorded with why;
//! 4. hostile summaries at the ingest endpoint get clear 4xx answers.
//!
//! The timings are chosen so that step 3 is not vacuous: `silent_after` (15 s) is longer
//! than a node's staleness at tier 1 (3 s) plus `unreachable_after` (3 s) with room, so
//! `west`'s last summary already lists the dead node as silent but not yet healable when
//! its collector is killed.

mod harness;

use harness::{wait_for, Agent, Collector, Pki};
use serde_json::{json, Value};
use sr_probes::ProbeConfig;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn tier1(dir: &Path, pki: &Pki, name: &str, t2: &mut Collector) -> Collector {
    let mut c = Collector::init(&dir.join(name), pki, "127.0.0.1:0");
    c.set("required_types", "[\"manager\"]");
    c.set("flap_threshold", "1000");
    c.set("shutdown_grace_secs", "1");
    c.push_to_tier2(t2, name, 1);
    c.spawn();
    c
}

fn agent(dir: &Path, name: &str, c: &Collector) -> Agent {
    let probe = ProbeConfig::Tcp(sr_probes::tcp::Config {
        name: "Collector".into(),
        address: c.addr.to_string(),
        timeout_ms: 500,
        critical: true,
    });
    let mut a = Agent::for_collector(&dir.join(name), name, "manager", c, vec![probe], None);
    a.start();
    a
}

fn clusters(t2: &Collector) -> Value {
    t2.admin_json("/api/tier2/v1/clusters")
        .unwrap_or_else(|e| panic!("{e}\n{}", t2.log_tail()))["clusters"]
        .clone()
}

fn history(t2: &Collector, cluster: &str) -> Vec<Value> {
    t2.admin_json(&format!(
        "/api/tier2/v1/heal-history?cluster={cluster}&limit=1000"
    ))
    .unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn rows<'a>(h: &'a [Value], node: &str, decision: &str) -> Vec<&'a Value> {
    // Oldest first.
    h.iter()
        .rev()
        .filter(|r| r["node"] == node && r["decision"] == decision)
        .collect()
}

fn heal_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn tier2_view_heals_a_silent_node_once_per_interval_and_never_a_silent_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = Pki::with_sans(
        &dir.join("pki"),
        "tier2 test CA",
        &["localhost", "127.0.0.1"],
    );

    // The heal command: appends "CLUSTER NODE" to heal.log.
    let heal_log = dir.join("heal.log");
    let script = dir.join("heal.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$SR_CLUSTER $SR_NODE\" >> {}\n",
            heal_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut t2 = Collector::init(&dir.join("t2"), &pki, "127.0.0.1:0");
    t2.set("required_types", "[\"manager\"]");
    t2.set("shutdown_grace_secs", "1");
    t2.append_config(&format!(
        "[fleet]\nunreachable_after_secs = 3\n\n[fleet.heal]\nsilent_after_secs = 15\ninterval_secs = 3\ntimeout_secs = 10\ncommand = [\"{}\"]\n",
        script.display()
    ));
    t2.spawn();
    let mut east = tier1(dir, &pki, "east", &mut t2);
    let mut west = tier1(dir, &pki, "west", &mut t2);
    let mut a1 = agent(dir, "a1", &east);
    let _a2 = agent(dir, "a2", &east);
    let _w1 = agent(dir, "w1", &west);
    let mut w2 = agent(dir, "w2", &west);

    // 1. Both clusters OK at tier 2.
    wait_for("east and west OK at tier 2", LIMIT, || {
        let c = clusters(&t2);
        (c["east"]["status"] == "OK" && c["west"]["status"] == "OK").then_some(())
    });
    let (code, out, err) = t2.cluster_status_cli(&["--clusters"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("east") && out.contains("west"), "{out}");
    let c = clusters(&t2);
    assert_eq!(c["east"]["nodes_total"], 2, "{c}");
    assert!(
        c["east"]["managers"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{c}"
    );

    // 2. An agent of east dies: one heal call, then the next only after the interval.
    a1.kill();
    let first = wait_for("a heal call for east a1", LIMIT, || {
        let lines = heal_lines(&heal_log);
        (!lines.is_empty()).then_some(lines)
    });
    assert_eq!(first, ["east a1"], "exactly one heal call, naming the node");
    let (code, out, _) = t2.cluster_status_cli(&["--cluster", "east"]);
    assert_eq!(code, 1, "east is Degraded (a1 stale, quorum held): {out}");
    assert!(
        out.contains("a1") && out.contains("yes"),
        "a1 listed silent: {out}"
    );

    // 3. West loses w2; once tier 2 shows it silent, west's collector is killed: the
    //    whole cluster is cut off.
    w2.kill();
    wait_for("west's summary to list w2 silent", LIMIT, || {
        let v = t2.admin_json("/api/tier2/v1/clusters/west").ok()?;
        let nodes = v["summary"]["nodes"].as_array()?.clone();
        nodes
            .iter()
            .any(|n| n["name"] == "w2" && n["silent"] == true)
            .then_some(())
    });
    west.kill9();
    wait_for("west Unreachable at tier 2", LIMIT, || {
        let c = clusters(&t2);
        (c["west"]["status"] == "Unreachable").then_some(c)
    });
    let c = clusters(&t2);
    assert_eq!(
        c["west"]["reasons"][0]["code"], "cluster_unreachable",
        "{c}"
    );
    let (code, out, err) = t2.cluster_status_cli(&["--clusters"]);
    assert_eq!(
        code, 2,
        "an unreachable cluster fails the check: {out}{err}"
    );
    assert!(out.contains("Unreachable"), "{out}");
    // w2 is now silent past silent_after at tier 2, but its cluster is unreachable.
    let h = wait_for("the west suppression to be recorded", LIMIT, || {
        let h = history(&t2, "west");
        (!rows(&h, "w2", "suppressed").is_empty()).then_some(h)
    });
    assert_eq!(
        rows(&h, "w2", "suppressed")[0]["why"],
        "cluster_unreachable"
    );
    assert!(
        rows(&h, "w2", "run").is_empty(),
        "never a heal of a silent cluster: {h:?}"
    );

    // 2, continued: a second run of east a1, no sooner than the interval after the first.
    let h = wait_for("a second heal of east a1", LIMIT, || {
        let h = history(&t2, "east");
        (rows(&h, "a1", "run").len() >= 2).then_some(h)
    });
    let runs = rows(&h, "a1", "run");
    let at = |r: &Value| r["at_ms"].as_i64().unwrap();
    let gap = at(runs[1]) - at(runs[0]);
    assert!(gap >= 3000, "second run {gap} ms after the first: {h:?}");
    let first_id = runs[0]["id"].as_i64().unwrap();
    let second_id = runs[1]["id"].as_i64().unwrap();
    assert!(
        rows(&h, "a1", "suppressed").iter().any(|r| {
            let id = r["id"].as_i64().unwrap();
            id > first_id && id < second_id && r["why"] == "within_interval"
        }),
        "a suppression between the runs: {h:?}"
    );
    // Every completed call is one line in the file, and none names west.
    wait_for("every run's outcome recorded", LIMIT, || {
        let h = history(&t2, "east");
        let done = rows(&h, "a1", "succeeded").len();
        let lines = heal_lines(&heal_log);
        (done >= 2 && lines.len() == done).then_some(())
    });
    assert!(heal_lines(&heal_log).iter().all(|l| l == "east a1"));
    let (code, out, _) = t2.cluster_status_cli(&["--heal-history"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("within_interval") && out.contains("cluster_unreachable"),
        "{out}"
    );

    // The fleet in /metrics, bounded by cluster.
    let m = t2.admin_get_text("/metrics");
    assert!(
        m.contains(
            "status_reporter_tier2_cluster_status{cluster=\"west\",status=\"Unreachable\"} 1"
        ),
        "{m}"
    );

    // 4. Hostile summaries.
    hostile(&t2);
    east.stop();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn summary(cluster: &str) -> Value {
    json!({
        "version": 1, "cluster": cluster, "interval_secs": 10, "status": "OK",
        "reasons": [], "services": {"manager": {"status": "OK", "reasons": []}},
        "nodes": [], "nodes_total": 1, "nodes_omitted": 0, "managers": ["10.0.0.1"]
    })
}

struct Sender {
    key: sr_protocol::signing::NodeKey,
    boot: String,
    seq: u64,
}

impl Sender {
    fn new(boot: &str) -> Sender {
        let der = sr_protocol::signing::NodeKey::generate_pkcs8().unwrap();
        Sender {
            key: sr_protocol::signing::NodeKey::from_pkcs8(&der).unwrap(),
            boot: boot.into(),
            seq: 0,
        }
    }

    /// The signature header for `body` at `cluster`'s path, with the next seq.
    fn sign(&mut self, cluster: &str, body: &[u8]) -> String {
        self.seq += 1;
        let path = sr_protocol::summary::summary_path(cluster);
        self.key
            .sign("PUT", &path, body, &self.boot, self.seq, now_ms())
            .to_header()
    }
}

fn hostile(t2: &Collector) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = t2.token("cluster");
    let admin = t2.token("admin");
    let path = sr_protocol::summary::summary_path("hostile");
    let put = |headers: &[(&str, &str)], body: Vec<u8>| rt.block_on(t2.put(&path, headers, body));
    let mut s = Sender::new("boot-1");
    let good = summary("hostile").to_string().into_bytes();
    let base = |sig: &str| -> Vec<(&'static str, String)> {
        vec![
            ("content-type", "application/json".into()),
            (sr_protocol::TOKEN_HEADER, token.clone()),
            (sr_protocol::SIGNATURE_HEADER, sig.to_string()),
        ]
    };
    let send = |h: Vec<(&'static str, String)>, body: Vec<u8>| {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        put(&h, body)
    };
    let expect = |(code, v): (u16, Value), want: u16, error_code: &str| {
        assert_eq!(code, want, "{v}");
        assert_eq!(v["error_code"], error_code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    };

    // Unsigned.
    let mut h = base("");
    h.pop();
    expect(send(h, good.clone()), 401, "signature_required");
    // Signed over other bytes.
    let sig = s.sign("hostile", b"{}");
    expect(send(base(&sig), good.clone()), 401, "invalid_signature");
    // Malformed and truncated, validly signed: refused after the signature, as 400.
    for body in [b"{not json".to_vec(), good[..good.len() / 2].to_vec()] {
        let sig = s.sign("hostile", &body);
        expect(send(base(&sig), body), 400, "bad_parameters_error");
    }
    // Another cluster's name inside.
    let other = summary("east").to_string().into_bytes();
    let sig = s.sign("hostile", &other);
    expect(send(base(&sig), other), 400, "bad_parameters_error");
    // Oversized (declared length over the 64 KiB limit).
    let big = vec![b' '; 70 * 1024];
    let sig = s.sign("hostile", &big);
    expect(send(base(&sig), big), 413, "payload_too_large");
    // Wrong content type, wrong token role, bad name.
    let sig = s.sign("hostile", &good);
    let mut h = base(&sig);
    h[0].1 = "text/plain".into();
    expect(send(h, good.clone()), 415, "unsupported_media_type");
    let mut h = base(&sig);
    h[1].1 = admin.clone();
    expect(send(h, good.clone()), 403, "forbidden_error");
    let h = base(&sig);
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, v) = rt.block_on(t2.put("/api/tier2/v1/clusters/a%20b", &h, good.clone()));
    assert_eq!(
        (code, v["error_code"].as_str()),
        (400, Some("invalid_cluster_name")),
        "{v}"
    );
    // A good one is accepted and pins the key; the same bytes again are a replay.
    let sig = s.sign("hostile", &good);
    let (code, v) = send(base(&sig), good.clone());
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["key_pinned"], true, "{v}");
    expect(send(base(&sig), good.clone()), 409, "replayed_report");
    // Another key for a pinned cluster.
    let mut intruder = Sender::new("boot-9");
    let sig = intruder.sign("hostile", &good);
    expect(send(base(&sig), good.clone()), 403, "key_mismatch");
    // Until an admin forgets the cluster: then a new key pins.
    let forgotten = rt
        .block_on(t2.client().request(
            http::Method::DELETE,
            &t2.url("/api/tier2/v1/clusters/hostile"),
            &[(sr_protocol::TOKEN_HEADER, admin.as_str())],
            Vec::new().into(),
            Duration::from_secs(10),
            1 << 20,
        ))
        .unwrap();
    assert_eq!(forgotten.status.as_u16(), 200);
    let mut rekeyed = Sender::new("boot-10");
    let sig = rekeyed.sign("hostile", &good);
    let (code, v) = send(base(&sig), good.clone());
    assert_eq!((code, &v["key_pinned"]), (200, &json!(true)), "{v}");
    // An old boot, replayed after a newer one: refused.
    let mut old = Sender {
        key: rekeyed.key,
        boot: "boot-0".into(),
        seq: 100,
    };
    let body = summary("hostile").to_string().into_bytes();
    let header = {
        old.seq += 1;
        old.key
            .sign("PUT", &path, &body, &old.boot, old.seq, now_ms() - 60_000)
            .to_header()
    };
    expect(send(base(&header), body), 409, "replayed_report");
}
