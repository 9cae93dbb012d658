//! `--view-stages`: where one `GET /cluster-status` computation's time goes at N nodes, in
//! process, stage by stage (the median of 7 runs of each): the records' copy memory makes,
//! `NodeInput::from_record`, the roll-up (and its stack services and row keys apart), and
//! the JSON encoding of the view. Synthetic fresh records as `rollup_time` makes them.

use sr_collector::rollup::{self, rollup, LatestReport, NodeInput, NodeRecord, Policy};
use sr_collector::view_encode::{self, RowCache};
use sr_protocol::NodeType;
use std::sync::Arc;
use std::time::Instant;

/// `n` fresh records spread over the three Cloudify types, received a second before `now`,
/// each 2.5 s ahead of the collector's clock: as the end-to-end run's are (its reports are
/// signed before the rounds start), so each row carries a `clock_skew` reason.
pub fn records(n: usize, now: i64) -> Vec<NodeRecord> {
    let body = sr_protocol::report::ReportBody::decode(
        br#"{"reporting_freq":60,"timestamp":"20261122160000+0000","report":{"status":"OK","services":{"Service":{"status":"Active","extra_info":{}}}},"status_reporter":{"version":1,"node_status":"OK","node_name":"x","private_ip":"10.1.2.3","agent_version":"bench","boot_id":"bench-boot","seq":1}}"#,
    )
    .expect("valid body")
    .body;
    (0..n)
        .map(|i| NodeRecord {
            node_type: NodeType::ALL[i % 3],
            node_id: format!("n{i}"),
            name: format!("node{i}"),
            private_ip: Some("10.1.2.3".into()),
            key_mismatch: false,
            latest: Some(Arc::new(LatestReport {
                body: body.clone(),
                received_ms: now - 1000,
                skew_ms: 2_500,
                signed: true,
            })),
            status_changes_ms: Vec::new(),
        })
        .collect()
}

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..7)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[3]
}

pub fn run(n: usize) {
    let now = 1_800_000_000_000;
    let records = records(n, now);
    let policy = Policy::default();
    // As `App::view_at` does it: records sorted by type, then judged.
    let inputs = || {
        let mut records = records.clone();
        records.sort_by_key(|r| r.node_type);
        records
            .iter()
            .map(|r| NodeInput::from_record(r, now, &policy))
            .collect::<Vec<NodeInput>>()
    };
    let sorted = inputs();
    let view = rollup(&sorted, now, &policy);
    let json = serde_json::to_vec(&view).expect("view encodes");
    let copy = median_ms(|| {
        std::hint::black_box(records.clone());
    });
    let judge = median_ms(|| {
        std::hint::black_box(inputs());
    });
    let roll = median_ms(|| {
        std::hint::black_box(rollup(&sorted, now, &policy));
    });
    let stack = median_ms(|| {
        std::hint::black_box(rollup::stack::rollup(&sorted, &policy));
    });
    let keys = median_ms(|| {
        std::hint::black_box(rollup::names::row_keys(&sorted));
    });
    let encode = median_ms(|| {
        std::hint::black_box(serde_json::to_vec(&view).expect("view encodes"));
    });
    // The serving path (`view_cache::compute`): rows written from the judged inputs, from
    // an empty row cache (every row encoded) and from a full one (none changed).
    let parts = rollup::rollup_parts(&sorted, now, &policy);
    let write = |cache: Option<&mut RowCache>| {
        let mut out = Vec::with_capacity(json.len() + json.len() / 8);
        view_encode::write(&parts, cache, &mut out).expect("view encodes");
        assert_eq!(out, json, "the serving path's bytes are the owned view's");
        out
    };
    let parts_ms = median_ms(|| {
        std::hint::black_box(rollup::rollup_parts(&sorted, now, &policy));
    });
    let cold = median_ms(|| {
        std::hint::black_box(write(None));
    });
    let mut cache = RowCache::default();
    write(Some(&mut cache));
    let warm = median_ms(|| {
        std::hint::black_box(write(Some(&mut cache)));
    });
    // One node in ten with a new report since the last view (a poller under steady ingest):
    // views of `sorted` and of this set alternate, so each write encodes a tenth of the rows.
    let mut changed = records.clone();
    for r in changed.iter_mut().step_by(10) {
        r.latest = r.latest.as_deref().map(|l| Arc::new(l.clone()));
    }
    changed.sort_by_key(|r| r.node_type);
    let changed: Vec<NodeInput> = changed
        .iter()
        .map(|r| NodeInput::from_record(r, now, &policy))
        .collect();
    let changed_parts = rollup::rollup_parts(&changed, now, &policy);
    let mut flip = false;
    let tenth = median_ms(|| {
        flip = !flip;
        let p = if flip { &changed_parts } else { &parts };
        let mut out = Vec::with_capacity(json.len() + json.len() / 8);
        view_encode::write(p, Some(&mut cache), &mut out).expect("view encodes");
        assert_eq!(out, json, "the serving path's bytes are the owned view's");
        std::hint::black_box(out);
    });
    println!("| stage, {n} nodes, in process (median of 7) | ms |");
    println!("|---|---|");
    println!("| copy of the records (as `Memory::records`) | {copy:.2} |");
    println!("| the copy sorted by type, then `NodeInput::from_record` each | {judge:.2} |");
    println!("| `rollup` (all of it) | {roll:.2} |");
    println!("| of which `stack::rollup` | {stack:.2} |");
    println!("| `names::row_keys` over all nodes at once | {keys:.2} |");
    println!(
        "| JSON encoding of the view ({:.1} MB) | {encode:.2} |",
        json.len() as f64 / 1e6
    );
    println!("| `rollup_parts` (the serving path: rows borrowed) | {parts_ms:.2} |");
    println!("| rows written from the judged inputs, every row encoded | {cold:.2} |");
    println!("| rows written, every row from the row cache | {warm:.2} |");
    println!("| rows written, one row in ten changed since the last view | {tenth:.2} |");
}
