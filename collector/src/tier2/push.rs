//! A tier-1 collector's push of its cluster's summary to every tier-2 URL of `[tier2]`,
//! with the agent's delivery discipline: one signer (the collector's own Ed25519 key in
//! `state_dir/tier2.key`, made on first start; a random boot id per start and a `seq`
//! per summary), then one bounded queue and one delivery task per URL, so a slow or
//! down tier-2 collector holds only itself. A queue holds one summary: a newer one
//! replaces a waiting one (counted as dropped), as the agent's latest-wins slot does.
//! Delivery reuses the alerts' attempts, retry classes and capped jittered backoff
//! ([`crate::alerts::delivery`]). Ingest never waits on any of this.

use crate::alerts::delivery::{deliver, Retry};
use crate::alerts::metrics::{SinkFamilies, SinkMetrics};
use crate::alerts::queue::Queue;
use crate::app::App;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sr_protocol::signing::NodeKey;
use sr_protocol::summary::{summary_path, DEFAULT_MAX_SUMMARY_BYTES};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::time::Instant;

pub const KEY_FILE: &str = "tier2.key";
/// Answers from a tier-2 collector are read up to this size.
const MAX_ANSWER: usize = 64 * 1024;

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// The push's series, one `url` label value per configured URL (at most 8).
#[derive(Clone)]
pub struct PushMetrics {
    sinks: SinkFamilies,
    pub built: Counter,
}

impl Default for PushMetrics {
    fn default() -> Self {
        PushMetrics {
            sinks: SinkFamilies::new(latency),
            built: Counter::default(),
        }
    }
}

impl PushMetrics {
    fn sink(&self, url: &str) -> SinkMetrics {
        self.sinks.sink("url", url)
    }

    pub fn register(&self, reg: &mut Registry) {
        let s = &self.sinks;
        reg.register(
            "tier2_summaries_built",
            "Summaries of this cluster built and signed for tier 2",
            self.built.clone(),
        );
        reg.register(
            "tier2_push_delivered",
            "Summaries a tier-2 collector accepted (2xx)",
            s.delivered.clone(),
        );
        reg.register(
            "tier2_push_failed",
            "Summaries given up: retries spent or a refusal not worth retrying",
            s.failed.clone(),
        );
        reg.register(
            "tier2_push_dropped",
            "Summaries replaced in a URL's queue by a newer one before delivery",
            s.dropped.clone(),
        );
        reg.register(
            "tier2_push_retries",
            "Summary delivery attempts retried",
            s.retries.clone(),
        );
        reg.register(
            "tier2_push_queue_length",
            "Summaries waiting for a tier-2 URL",
            s.queued.clone(),
        );
        reg.register_with_unit(
            "tier2_push_duration",
            "From a summary's signing to a tier-2 collector's 2xx, retries included",
            prometheus_client::registry::Unit::Seconds,
            s.latency.clone(),
        );
    }
}

/// The collector's signing key, made (0600) on first use.
pub fn load_or_make_key(state_dir: &Path) -> Result<NodeKey, String> {
    let path = state_dir.join(KEY_FILE);
    let der = match sr_fsutil::read_bounded(&path, 16 * 1024) {
        Ok(der) => der,
        Err(_) if !path.exists() => {
            let der = NodeKey::generate_pkcs8().map_err(|e| e.to_string())?;
            sr_fsutil::atomic_write(&path, &der, 0o600, None)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            der
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    NodeKey::from_pkcs8(&der).map_err(|e| format!("{}: {e}", path.display()))
}

/// A random boot id (UUID-shaped) for this run of the push.
fn boot_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// One signed summary, shared by every URL's queue.
struct Signed {
    body: hyper::body::Bytes,
    header: String,
    seq: u64,
    queued_at: Instant,
}

struct Target {
    url: String,
    queue: Queue<Arc<Signed>>,
    metrics: SinkMetrics,
}

pub fn start(app: &Arc<App>) -> Result<(), String> {
    let Some(cfg) = app.cfg.tier2.clone() else {
        return Ok(());
    };
    let key = load_or_make_key(&app.cfg.state_dir)?;
    tracing::info!(cluster = %cfg.cluster, key = %key.fingerprint(), urls = cfg.urls.len(), "tier 2: pushing this cluster's summary");
    let client = match &cfg.ca_path {
        Some(ca) => sr_tls::client_config(ca, None)
            .map(|tls| sr_tls::HttpsClient::new(tls, cfg.timeout))
            .map_err(|e| format!("{}: {e}", ca.display()))?,
        None => sr_tls::HttpsClient::plain(cfg.timeout),
    };
    let token = String::from_utf8_lossy(cfg.token.expose()).into_owned();
    let path = summary_path(&cfg.cluster);
    let retry = Retry {
        max_retries: cfg.max_retries,
        initial: std::time::Duration::from_secs(1).min(cfg.interval),
        cap: cfg.interval,
    };
    let mut targets = Vec::new();
    for url in &cfg.urls {
        let t = Arc::new(Target {
            url: url.clone(),
            queue: Queue::new(1),
            metrics: app.tier2.push.sink(url),
        });
        targets.push(t.clone());
        let (client, token, path) = (client.clone(), token.clone(), path.clone());
        let timeout = cfg.timeout;
        let mut closing = app.closing.subscribe();
        tokio::spawn(async move {
            let log = crate::app::LogLimiter::new(crate::app::LOG_PERIOD);
            let full = format!("{}{path}", t.url);
            loop {
                let s = tokio::select! {
                    s = t.queue.take() => s,
                    _ = closing.changed() => return,
                };
                t.metrics.queued.set(t.queue.len() as i64);
                let headers = [
                    ("content-type", "application/json"),
                    ("user-agent", "status-reporter-collector"),
                    (sr_protocol::TOKEN_HEADER, token.as_str()),
                    (sr_protocol::SIGNATURE_HEADER, s.header.as_str()),
                ];
                let h = &headers;
                let send = deliver(retry, &t.metrics, s.queued_at, || {
                    client.request(
                        http::Method::PUT,
                        &full,
                        h,
                        s.body.clone(),
                        timeout,
                        MAX_ANSWER,
                    )
                });
                let done = tokio::select! {
                    d = send => d,
                    _ = closing.changed() => return,
                };
                if let Err(cause) = done {
                    if let Some(held) = log.allow() {
                        tracing::warn!(url = %t.url, %cause, seq = s.seq, held_back = held, "tier 2: summary not delivered");
                    }
                }
            }
        });
    }
    tokio::spawn(produce(app.clone(), cfg, key, targets));
    Ok(())
}

/// Every interval: the view, the summary, one signature, offered to every URL.
async fn produce(
    app: Arc<App>,
    cfg: super::config::PushConfig,
    key: NodeKey,
    targets: Vec<Arc<Target>>,
) {
    let boot = boot_id();
    let path = summary_path(&cfg.cluster);
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = app.closing.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.changed() => return,
        }
        let app2 = app.clone();
        let cluster = cfg.cluster.clone();
        let interval_secs = cfg.interval.as_secs().max(1) as u32;
        let built = tokio::task::spawn_blocking(move || {
            let view = app2.view();
            let now_ms = crate::clock::now_ms();
            let last_seen: HashMap<String, i64> = app2
                .mem
                .records()
                .into_iter()
                .filter_map(|r| {
                    r.latest
                        .as_ref()
                        .map(|l| (r.node_id.clone(), l.received_ms))
                })
                .collect();
            let summary = super::build::build(
                &view,
                &super::build::Inputs {
                    cluster: &cluster,
                    interval_secs,
                    last_seen_ms: &last_seen,
                    now_ms,
                },
            );
            super::build::fit(summary, DEFAULT_MAX_SUMMARY_BYTES)
        })
        .await;
        let Ok(body) = built else { continue };
        seq += 1;
        let env = key.sign("PUT", &path, &body, &boot, seq, crate::clock::now_ms());
        app.tier2.push.built.inc();
        let signed = Arc::new(Signed {
            body: body.into(),
            header: env.to_header(),
            seq,
            queued_at: Instant::now(),
        });
        for t in &targets {
            if t.queue.offer(signed.clone()).is_some() {
                t.metrics.dropped.inc();
            }
            t.metrics.queued.set(t.queue.len() as i64);
        }
    }
}
