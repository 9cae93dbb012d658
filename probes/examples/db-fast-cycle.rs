//! The db probe's fast cycle against a real lab member, with the `patroni` probe's shipped
//! client (TCP_QUICKACK re-armed after every read) and with the kernel's delayed ACKs (the
//! client before), interleaved cycle by cycle so both see the same load. Run by
//! `bench/db-fast-cycle.sh`, which starts the lab; prints a Markdown table. Nothing is
//! asserted: this is a measurement.
//!
//! Usage: db-fast-cycle --patroni URL --member NAME --etcd URL --pg-port PORT --ca PEM
//!                      --cert PEM --key PEM [--cycles N] [--label TEXT]
//! The fast cycle is what the agent runs every interval on a db node when `/cluster` and
//! `/config` are not due: `/patroni` (mTLS) + etcd status and health (mTLS) + the postgres
//! queries on the kept session, concurrently.

use sr_probes::{etcd, patroni, postgres, Probe, ProbeContext, Scheduled};
use sr_tls::Acks;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn args() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(k) = k.strip_prefix("--") else {
            panic!("unexpected argument {k:?}");
        };
        let v = it.next().unwrap_or_else(|| panic!("--{k} needs a value"));
        out.insert(k.to_string(), v);
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let a = args();
    let get = |k: &str| {
        a.get(k)
            .unwrap_or_else(|| panic!("--{k} is required"))
            .clone()
    };
    let cycles: u64 = a.get("cycles").map_or(40, |c| c.parse().expect("--cycles"));
    let label = a.get("label").cloned().unwrap_or_default();
    let tls = format!(
        "ca_file = '{}'\ncert_file = '{}'\nkey_file = '{}'\n",
        get("ca"),
        get("cert"),
        get("key")
    );
    // cluster_every large: /cluster and /config only in cycle 0, as in the fast path.
    let pcfg: patroni::Config = toml::from_str(&format!(
        "url = '{}'\nmember = '{}'\ncluster_every = 1000000\n[tls]\n{tls}",
        get("patroni"),
        get("member")
    ))
    .expect("patroni config");
    let ecfg: etcd::Config =
        toml::from_str(&format!("url = '{}'\n[tls]\n{tls}", get("etcd"))).expect("etcd config");
    let qcfg: postgres::Config = toml::from_str(&format!(
        "port = {}\nuser = 'monitor'\npassword = 'monitor'",
        get("pg-port")
    ))
    .expect("postgres config");
    let etcd: Arc<dyn Probe> = Arc::new(Scheduled::<etcd::Etcd>::new(ecfg));
    let pg: Arc<dyn Probe> = Arc::new(Scheduled::<postgres::Postgres>::new(qcfg));
    let arms: Vec<(&str, Vec<Arc<dyn Probe>>)> = [
        ("delayed ACKs (before)", Acks::Delayed),
        ("TCP_QUICKACK (shipped)", Acks::Quick),
    ]
    .into_iter()
    .map(|(name, acks)| {
        let p: Arc<dyn Probe> = Arc::new(Scheduled::with_probe(
            pcfg.clone(),
            patroni::Patroni::with_acks(&pcfg, acks),
        ));
        (name, vec![p, Arc::clone(&etcd), Arc::clone(&pg)])
    })
    .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // [arm][0 = whole cycle, 1.. = each probe] in ms
    let mut times = vec![vec![Vec::new(); 4]; arms.len()];
    for cycle in 0..=cycles {
        for (arm, (_, probes)) in arms.iter().enumerate() {
            let ctx = ProbeContext { cycle, now: 0 };
            let (whole, each) = rt.block_on(async {
                let t = Instant::now();
                // Concurrently, as the scheduler runs them.
                let (p, e, q) = tokio::join!(
                    timed(&probes[0], &ctx),
                    timed(&probes[1], &ctx),
                    timed(&probes[2], &ctx)
                );
                (t.elapsed(), [p, e, q])
            });
            for (f, _) in &each {
                if f.status != sr_protocol::NodeStatus::Ok {
                    eprintln!("cycle {cycle}: not OK: {:?}", f.reasons);
                }
            }
            if cycle == 0 {
                continue; // fills the /cluster cache and opens the postgres session
            }
            times[arm][0].push(whole.as_secs_f64() * 1000.0);
            for (i, (_, d)) in each.iter().enumerate() {
                times[arm][i + 1].push(d.as_secs_f64() * 1000.0);
            }
        }
    }
    println!("\n{label} {cycles} fast cycles per arm, interleaved; p50 / p95 / max in ms\n");
    println!("| client | fast cycle | patroni | etcd | postgres |");
    println!("|---|---|---|---|---|");
    for (arm, (name, _)) in arms.iter().enumerate() {
        let cols: Vec<String> = times[arm]
            .iter_mut()
            .map(|v| {
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    percentile(v, 0.5),
                    percentile(v, 0.95),
                    v[v.len() - 1]
                )
            })
            .collect();
        println!("| {name} | {} |", cols.join(" | "));
    }
    let p50 = |arm: usize| percentile(&times[arm][0], 0.5);
    println!(
        "\nfast cycle p50 ratio shipped / before: {:.2}",
        p50(1) / p50(0)
    );
}

async fn timed(p: &Arc<dyn Probe>, ctx: &ProbeContext) -> (sr_probes::Finding, Duration) {
    let t = Instant::now();
    let f = p.run(ctx).await;
    (f, t.elapsed())
}
