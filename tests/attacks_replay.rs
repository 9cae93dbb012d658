//! Replay and pinning attacks on the real binaries (issue 12, "Replays that still get
//! through" and `nodes forget`), each sent as an attacker would: captured signed reports
//! replayed byte for byte, forged send times, an impostor racing the real node for the
//! pin after `nodes forget`, and a name shared by an impostor and the real node.
//!
//! The attacker holds the db role token (shared by every db node) and whatever it
//! captured on the wire; it never holds the real node's private key.

mod harness;

use harness::fixtures::now_ms;
use harness::*;
use serde_json::{json, Value};
use sr_protocol::signing::NodeKey;

/// A db node that signs its own reports.
struct Node {
    id: String,
    name: String,
    key: NodeKey,
    boot: String,
    seq: u64,
}

/// One captured request: exactly what went over the wire.
#[derive(Clone)]
struct Captured {
    path: String,
    signature: String,
    body: Vec<u8>,
}

impl Node {
    fn new(id: &str, name: &str) -> Node {
        Node {
            id: id.into(),
            name: name.into(),
            key: NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().unwrap()).unwrap(),
            boot: "boot-0".into(),
            seq: 0,
        }
    }

    fn path(&self) -> String {
        format!("/api/v3.1/cluster-status/db/{}", self.id)
    }

    /// The next report, signed with send time `sent_ms` (the legacy body timestamp is
    /// the same clock reading, as the agent writes it).
    fn report_at(&mut self, sent_ms: i64) -> Captured {
        self.seq += 1;
        let secs = sent_ms.clamp(0, 253_402_300_799_000) / 1000;
        let body = serde_json::to_vec(&json!({
            "reporting_freq": 3600,
            "timestamp": sr_protocol::timestamp::format_legacy(secs).unwrap(),
            "report": {"status": "OK", "services": {"Patroni": {"status": "Active", "extra_info": {}}}},
            "status_reporter": {
                "version": 1, "node_status": "OK", "node_name": self.name,
                "agent_version": "0.1.0", "boot_id": self.boot, "seq": self.seq, "facts": {},
                "transitions": []
            }
        }))
        .unwrap();
        let signature = self
            .key
            .sign("PUT", &self.path(), &body, &self.boot, self.seq, sent_ms)
            .to_header();
        Captured {
            path: self.path(),
            signature,
            body,
        }
    }

    fn report(&mut self) -> Captured {
        self.report_at(now_ms())
    }

    fn fingerprint(&self) -> String {
        self.key.fingerprint()
    }
}

async fn send(c: &Collector, r: &Captured) -> (u16, String) {
    let token = c.token("db");
    let (status, body) = c
        .put(
            &r.path,
            &[
                ("Content-Type", "application/json"),
                (sr_protocol::TOKEN_HEADER, token.as_str()),
                (sr_protocol::SIGNATURE_HEADER, r.signature.as_str()),
            ],
            r.body.clone(),
        )
        .await;
    let code = body["error_code"].as_str().unwrap_or("").to_string();
    (status, code)
}

fn collector(dir: &std::path::Path) -> Collector {
    let pki = Pki::new(&dir.join("pki"), "replay attacks CA");
    let mut c = Collector::init(&dir.join("c"), &pki, "127.0.0.1:0");
    c.spawn();
    c
}

fn forget(c: &Collector, args: &[&str]) -> (i32, String, String) {
    let config = c.config().display().to_string();
    let mut all = vec!["nodes", "forget"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", &config]);
    cli(Some(&c.dir), &all, &[])
}

fn node_ids(c: &Collector) -> Vec<String> {
    let config = c.config().display().to_string();
    let (code, out, err) = cli(None, &["nodes", "list", "--json", "--config", &config], &[]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let mut ids: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Waits until the running collector has picked up the CLI's change (one flush).
async fn until_refused_or_accepted(c: &Collector, r: &Captured, want: (u16, &str)) {
    eventually(&format!("{want:?} for {}", r.path), DEADLINE, || async {
        let got = send(c, r).await;
        got.0 == want.0 && got.1 == want.1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_send_times_cannot_open_a_node_or_a_boot() {
    let tmp = tempfile::tempdir().unwrap();
    let c = collector(tmp.path());
    // First contact with ts = 0 and ts = i64::MAX: a signature that says nothing about
    // when it was made must not pin a key.
    for (i, ts) in [0, i64::MAX, now_ms() - 3_600_000].into_iter().enumerate() {
        let mut n = Node::new(&format!("forged-{i}"), &format!("forged-{i}"));
        assert_eq!(
            send(&c, &n.report_at(ts)).await,
            (409, "stale_signature".into()),
            "ts={ts}"
        );
    }
    assert!(node_ids(&c).is_empty(), "no forged report pinned a key");
    // A real node with a sane clock is accepted, and inside its boot only the sequence
    // counts (the data's freshness is judged by receive time, not the send time).
    let mut real = Node::new("db1", "db1");
    assert_eq!(send(&c, &real.report()).await.0, 200);
    assert_eq!(send(&c, &real.report_at(now_ms() - 3_600_000)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_report_cannot_re_pin_a_forgotten_key() {
    let tmp = tempfile::tempdir().unwrap();
    let c = collector(tmp.path());
    let mut real = Node::new("db1", "db1");
    let captured = real.report();
    assert_eq!(send(&c, &captured).await.0, 200);

    // The operator reinstalls db1 (a new key) and forgets the old one.
    let (code, out, err) = forget(&c, &["db1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&real.fingerprint()), "{out}");
    // The attacker replays the captured report, still inside the send-time window:
    // before the fix it was accepted and pinned the old key again.
    until_refused_or_accepted(&c, &captured, (403, "key_forgotten")).await;
    assert!(node_ids(&c).is_empty(), "the old key did not re-pin");

    // The reinstalled node pins its new key.
    let mut reinstalled = Node::new("db1", "db1");
    reinstalled.boot = "boot-new".into();
    assert_eq!(send(&c, &reinstalled.report()).await.0, 200);
    assert_eq!(node_ids(&c), vec!["db1".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_forget_with_accept_key_only_the_named_key_can_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let c = collector(tmp.path());
    let mut old = Node::new("db1", "db1");
    assert_eq!(send(&c, &old.report()).await.0, 200);
    let mut reinstalled = Node::new("db1", "db1");
    reinstalled.boot = "boot-new".into();
    let mut impostor = Node::new("db1", "db1");
    impostor.boot = "boot-evil".into();

    let fp = reinstalled.fingerprint();
    let (code, out, err) = forget(&c, &["db1", "--accept-key", &fp]);
    assert_eq!(code, 0, "{out}{err}");
    // The impostor races for the pin with its own key and loses, however often it tries.
    until_refused_or_accepted(&c, &impostor.report(), (403, "key_not_approved")).await;
    assert_eq!(
        send(&c, &impostor.report()).await,
        (403, "key_not_approved".into())
    );
    assert_eq!(send(&c, &reinstalled.report()).await.0, 200);
    assert_eq!(
        send(&c, &impostor.report()).await,
        (403, "key_mismatch".into())
    );

    // A fingerprint that is not one is refused before anything is forgotten.
    let (code, _, err) = forget(&c, &["db1", "--accept-key", "SHA256:nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("fingerprint"), "{err}");
    assert_eq!(node_ids(&c), vec!["db1".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_a_boot_long_gone_is_refused_and_does_not_lock_the_node_out() {
    let tmp = tempfile::tempdir().unwrap();
    let c = collector(tmp.path());
    let mut real = Node::new("db1", "db1");
    let start = now_ms() - 60_000;
    let captured = real.report_at(start);
    assert_eq!(send(&c, &captured).await.0, 200);
    // The agent restarts 20 times (a crash loop): every start is a new boot id, so the
    // first boot falls out of the 16 the collector remembers.
    for b in 1..=20 {
        real.boot = format!("boot-{b}");
        real.seq = 0;
        assert_eq!(send(&c, &real.report_at(start + b * 1000)).await.0, 200);
    }
    // The attacker replays boot 0's report: before the fix it was taken as a new boot,
    // and every real report after it was refused as "from an earlier boot".
    assert_eq!(send(&c, &captured).await, (409, "replayed_report".into()));
    assert_eq!(send(&c, &real.report()).await.0, 200);

    // The same holds after a restart of the collector (replay state reloaded): SIGTERM,
    // whose drain writes the latest reports, then a new process on the same store.
    let mut c = c;
    assert!(c.stop().success());
    c.spawn();
    assert_eq!(send(&c, &captured).await, (409, "replayed_report".into()));
    real.boot = "boot-after-restart".into();
    real.seq = 0;
    assert_eq!(send(&c, &real.report()).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_by_a_shared_name_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = collector(tmp.path());
    let mut real = Node::new("3d5d-real", "dbA");
    let mut impostor = Node::new("evil-1", "dbA");
    assert_eq!(send(&c, &real.report()).await.0, 200);
    assert_eq!(send(&c, &impostor.report()).await.0, 200);

    let (code, out, err) = forget(&c, &["dbA"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("3d5d-real") && err.contains("evil-1"), "{err}");
    assert_eq!(
        node_ids(&c),
        vec!["3d5d-real".to_string(), "evil-1".to_string()]
    );

    let (code, out, err) = forget(&c, &["evil-1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(node_ids(&c), vec!["3d5d-real".to_string()]);
}
