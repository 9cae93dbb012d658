//! `collector-bench --tier2`: a tier-2 collector (`[fleet]`, no healing) receiving signed
//! summaries from `--clusters` clusters of `--nodes-per-cluster` nodes each, every cluster
//! once per round, over `--conns` keep-alive TLS connections (the same load driver as the
//! ingest benchmark). Each summary lists a tenth of its cluster's nodes as not OK (a third
//! of those silent), the shape a degraded fleet sends. Round 1 pins every cluster's key;
//! later rounds are steady state. Then `GET /api/tier2/v1/clusters`, what `cluster status
//! --clusters` reads, is timed. Prints a Markdown table (BENCHMARKS.md, "Tier 2").

use super::{median, ms, pki, run_load, Child, Prepared};
use sr_collector::store::{Role, Store};
use sr_protocol::signing::NodeKey;
use sr_protocol::summary::{summary_path, NodeSummary, ServiceSummary, Summary};
use sr_protocol::{NodeStatus, Reason};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The marker file that makes `--serve-collector` a tier-2 collector.
pub const MARKER: &str = "tier2-fleet";

fn summary(cluster: &str, nodes: usize) -> Summary {
    let unwell = (nodes / 10).max(1);
    Summary {
        version: 1,
        cluster: cluster.to_string(),
        interval_secs: 10,
        status: NodeStatus::Degraded,
        reasons: vec![Reason::new(
            "degraded",
            "some nodes are not OK but a quorum is",
        )],
        services: ["manager", "db", "broker"]
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    ServiceSummary {
                        status: NodeStatus::Degraded,
                        reasons: vec![Reason::new("degraded", "2 of 3 healthy (quorum 2)")],
                    },
                )
            })
            .collect(),
        nodes: (0..unwell)
            .map(|i| NodeSummary {
                name: format!("node-{i:04}"),
                service: ["manager", "db", "broker"][i % 3].to_string(),
                status: NodeStatus::Fail,
                silent: i % 3 == 0,
                last_seen_age_ms: Some(41_000),
                reasons: vec![Reason::new(
                    "stale",
                    "last report 41 s ago; stale after 15 s",
                )],
            })
            .collect(),
        nodes_total: nodes as u32,
        nodes_omitted: 0,
        managers: vec!["10.0.0.11".into(), "10.0.0.12".into(), "10.0.0.13".into()],
    }
}

fn prepare(keys: &[NodeKey], nodes: usize, round: u64) -> Vec<Prepared> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let cluster = format!("cluster-{i:04}");
            let body = summary(&cluster, nodes).encode();
            let path = summary_path(&cluster);
            let env = key.sign("PUT", &path, &body, "bench-boot", round, now);
            Prepared {
                path,
                signature: env.to_header(),
                body: body.into(),
            }
        })
        .collect()
}

pub fn drive(
    dir: &Path,
    clusters: usize,
    nodes: usize,
    rounds: usize,
    conns: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    pki(dir)?;
    std::fs::write(dir.join(MARKER), "")?;
    let store = Store::open(&super::collector_config(dir).state_dir)?;
    let token = store.create_token(Role::Cluster)?;
    let admin = store.create_token(Role::Admin)?;
    drop(store);
    let keys: Vec<NodeKey> = (0..clusters)
        .map(|_| NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().expect("keygen")).expect("key"))
        .collect();
    let prepared: Vec<Arc<Vec<Prepared>>> = (1..=rounds as u64)
        .map(|r| Arc::new(prepare(&keys, nodes, r)))
        .collect();
    let bytes = prepared[0][0].body.len();
    let ca = dir.join("ca.pem");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let collector = Child::spawn("--serve-collector", dir)?;
    let tokens = [token.clone(), token.clone(), token];
    let mut runs = Vec::new();
    for r in &prepared {
        runs.push(rt.block_on(run_load(
            collector.server.pid(),
            collector.addr,
            &ca,
            &tokens,
            r.clone(),
            conns,
        )));
    }
    let client =
        sr_tls::HttpsClient::new(sr_tls::client_config(&ca, None)?, Duration::from_secs(5));
    let url = format!(
        "https://localhost:{}/api/tier2/v1/clusters",
        collector.addr.port()
    );
    let mut list_ms = Vec::new();
    let mut listed = 0;
    let mut list_bytes = 0;
    for _ in 0..5 {
        let t0 = Instant::now();
        let resp = rt.block_on(client.get(
            &url,
            &[(sr_protocol::TOKEN_HEADER, &admin)],
            Duration::from_secs(10),
            64 << 20,
        ))?;
        list_ms.push(ms(t0.elapsed()));
        let v: serde_json::Value = serde_json::from_slice(&resp.body)?;
        listed = v["clusters"].as_object().map_or(0, |m| m.len());
        list_bytes = resp.body.len();
    }
    let (rss, hwm) = collector.rss_mib();
    println!(
        "Tier 2: {clusters} clusters x {nodes} nodes, summary {bytes} bytes, {rounds} rounds, {conns} connections\n"
    );
    println!("| round | summaries/s | p50 ms | p99 ms | errors | tier-2 CPU ms per 1000 summaries | driver CPU ms per 1000 | cores busy |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, r) in runs.iter().enumerate() {
        let kind = if i == 0 { "1 (pins)" } else { "steady" };
        println!(
            "| {kind} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.2} |",
            r.reports_per_s,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.server_cpu_ms_per_k,
            r.driver_cpu_ms_per_k,
            r.cores_busy
        );
    }
    println!(
        "\nGET /api/tier2/v1/clusters ({listed} clusters, {list_bytes} bytes): median {:.2} ms of 5. Tier-2 RSS {rss:.1} MiB (peak {hwm:.1} MiB).",
        median(list_ms)
    );
    Ok(())
}
