//! Delivery: one task per manager, fed by a latest-wins slot, sending signed reports.
//!
//! Every manager gets every report (fan-out, not first-success). A task only ever sends
//! the newest snapshot: while it waits out a backoff, newer cycles replace the pending
//! one, so a slow manager never builds a queue. Outcomes are classified:
//! - success: `200` with a JSON body (an empty `200` is a failure, as in 5.0.5);
//! - retryable: connect errors, timeouts, `408`, `429`, `5xx`, and a `200` whose body is
//!   not JSON. Retried with capped exponential backoff and full jitter; after
//!   [`BREAKER_THRESHOLD`] in a row the manager's circuit opens for a cool-down and
//!   snapshots are skipped for it, so a dead manager costs nothing per cycle;
//! - fatal: `400`, `401`, `403` and any other status. Logged at WARN once per change of
//!   cause, never retried: the task waits for the next cycle's snapshot;
//! - awaiting approval: `202` with `error_code` `pending_approval`, from a collector with
//!   `admission = "approve"` that holds this new node until an operator approves it. The
//!   report arrived, so this is not a failure (no retry, no breaker count, no failure in
//!   the self-health); it is logged at WARN once when it starts, with the command to run
//!   and this node's key fingerprint, and again at most every [`PENDING_REMINDER`].
//!
//! A report is re-signed with a fresh seq on every attempt, so a retry is never a
//! replay. The token goes only in its header and never into a log line.

use crate::config::{ManagerAddr, Secret};
use crate::report::{build_body, Identity, Snapshot, Tracker};
use rand::Rng;
use sr_protocol::report::{AgentHealth, ManagerDelivery};
use sr_protocol::signing::NodeKey;
use sr_protocol::{NodeType, SIGNATURE_HEADER, TENANT_HEADER, TOKEN_HEADER};
use sr_tls::client::{ClientError, HttpsClient};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Largest response body read from a manager. A report answer is `null`; a managers
/// list for a big cluster fits easily.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// How often a node still held for approval says so again in the log: the one action is
/// an operator's, so once per cycle would only bury other lines.
pub const PENDING_REMINDER: Duration = Duration::from_secs(15 * 60);
/// The `error_code` of a collector's 202 for a held node (collector/src/ingest/hold.rs).
pub const PENDING_APPROVAL_CODE: &str = "pending_approval";
/// Consecutive retryable failures that open a manager's circuit.
pub const BREAKER_THRESHOLD: u32 = 5;
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How many managers a discovered list may add; more is a hostile or broken answer.
pub const MAX_DISCOVERED: usize = 16;
/// Longest cause text kept in the self-health, so a hostile manager's error page cannot
/// bloat every report.
const MAX_CAUSE_LEN: usize = 200;

/// Full-jitter exponential backoff: a uniform delay in `[0, min(cap, base × 2^attempt)]`.
/// Full jitter spreads retries of many agents after a manager restart.
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration, unit_sample: f64) -> Duration {
    let ceiling = base
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(cap);
    ceiling.mul_f64(unit_sample.clamp(0.0, 1.0))
}

/// How long an open circuit stays open before one trial request: one reporting
/// interval (at most a minute). An open circuit already stops the retry storm; keeping
/// it open longer than an interval would only delay how soon a returning manager
/// converges, which must happen within two intervals.
pub fn breaker_cooldown(reporting_freq: u32) -> Duration {
    Duration::from_secs(u64::from(reporting_freq))
        .clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Received and held by a collector in approve mode: delivered, not yet admitted.
    AwaitingApproval,
    Retryable(String),
    Fatal(String),
}

impl Outcome {
    /// The short cause kind used to decide whether a failure is "new" for logging.
    fn kind(&self) -> &str {
        match self {
            Outcome::Delivered => "ok",
            Outcome::AwaitingApproval => PENDING_APPROVAL_CODE,
            Outcome::Retryable(c) | Outcome::Fatal(c) => c.split(':').next().unwrap_or(c),
        }
    }
}

/// Classifies a response or transport error.
pub fn classify(result: &Result<sr_tls::Response, ClientError>) -> Outcome {
    let resp = match result {
        Err(ClientError::BodyTooLarge(n)) => {
            return Outcome::Retryable(format!("response: body larger than {n} bytes"))
        }
        Err(ClientError::Timeout(d)) => {
            return Outcome::Retryable(format!("timeout: no answer within {} ms", d.as_millis()))
        }
        Err(ClientError::Connect(e)) => return Outcome::Retryable(format!("connect: {}", cut(e))),
        Err(ClientError::Url(u)) => return Outcome::Fatal(format!("url: invalid {u:?}")),
        Err(ClientError::Request(e)) => return Outcome::Retryable(format!("request: {}", cut(e))),
        Ok(r) => r,
    };
    let code = resp.status.as_u16();
    let detail = body_excerpt(&resp.body);
    match code {
        200 if resp.body.iter().all(u8::is_ascii_whitespace) => {
            Outcome::Retryable("response: empty 200 body".into())
        }
        200 => match serde_json::from_slice::<serde_json::Value>(&resp.body) {
            Ok(_) => Outcome::Delivered,
            Err(_) => Outcome::Retryable(format!(
                "response: 200 with a body that is not JSON: {detail}"
            )),
        },
        202 if error_code(&resp.body).as_deref() == Some(PENDING_APPROVAL_CODE) => {
            Outcome::AwaitingApproval
        }
        408 | 429 | 500..=599 => Outcome::Retryable(format!("http {code}: {detail}")),
        300..=399 => Outcome::Fatal(format!("http {code}: redirects are not followed")),
        _ => Outcome::Fatal(format!("http {code}: {detail}")),
    }
}

/// The `error_code` of a collector's `{message, error_code}` answer, if the body is one.
fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("error_code")?.as_str().map(str::to_string)
}

/// The start of a body, printable, for logs and self-health.
fn body_excerpt(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(&body[..body.len().min(MAX_CAUSE_LEN)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().is_empty() {
        "(no body)".into()
    } else {
        text.trim().to_string()
    }
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_CAUSE_LEN).collect()
}

/// Per-manager circuit breaker.
#[derive(Debug, Default)]
pub struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn record(&mut self, outcome: &Outcome, now: Instant, cooldown: Duration) -> bool {
        match outcome {
            // A held report reached the collector: the manager is up.
            Outcome::Delivered | Outcome::AwaitingApproval => {
                self.failures = 0;
                self.open_until = None;
                false
            }
            Outcome::Retryable(_) => {
                self.failures += 1;
                if self.failures >= BREAKER_THRESHOLD {
                    self.open_until = Some(now + cooldown);
                    true
                } else {
                    false
                }
            }
            Outcome::Fatal(_) => false,
        }
    }

    /// When the circuit is open: the instant the trial request is allowed.
    pub fn open_until(&self, now: Instant) -> Option<Instant> {
        self.open_until.filter(|t| *t > now)
    }
}

/// What every send needs besides the snapshot. Rebuilt on reload and carried with each
/// snapshot, so a task always uses the config that produced what it sends.
pub struct PushContext {
    pub client: HttpsClient,
    pub token: Secret,
    pub key: NodeKey,
    pub node_type: NodeType,
    pub node_id: String,
    pub identity: Identity,
    pub timeout: Duration,
}

impl PushContext {
    pub fn report_path(&self) -> String {
        sr_protocol::report_path(self.node_type, &self.node_id)
    }
}

/// One entry of the latest-wins slot.
#[derive(Clone)]
pub struct Job {
    pub snapshot: Arc<Snapshot>,
    pub ctx: Arc<PushContext>,
}

/// State shared by the cycle loop and every push task. Never held across an await.
#[derive(Default)]
pub struct AgentState {
    pub tracker: Tracker,
    pub deliveries: BTreeMap<ManagerAddr, ManagerDelivery>,
    pub last_cycle_ms: Option<u64>,
    pub persist_error: Option<String>,
}

impl AgentState {
    pub fn health(&self) -> AgentHealth {
        AgentHealth {
            managers: self.deliveries.values().cloned().collect(),
            last_cycle_ms: self.last_cycle_ms,
            persist_error: self.persist_error.clone(),
        }
    }
}

pub struct Shared {
    seq: AtomicU64,
    pub state: Mutex<AgentState>,
    /// Prometheus metrics (served only with `metrics_listen`).
    pub metrics: crate::metrics::AgentMetrics,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            seq: AtomicU64::new(0),
            state: Mutex::new(AgentState::default()),
            metrics: Default::default(),
        }
    }
}

impl Shared {
    /// The next sequence number of this boot; strictly increasing across all managers.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, AgentState> {
        // A poisoned lock only means a panic elsewhere; the state itself stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends one signed report to one manager.
pub async fn send_once(addr: &ManagerAddr, job: &Job, shared: &Shared) -> (u64, Outcome) {
    let ctx = &job.ctx;
    let seq = shared.next_seq();
    let now_ms = crate::unix_now_ms();
    let body = {
        let st = shared.lock();
        let acked = st.deliveries.get(addr).map(|d| d.acked_seq).unwrap_or(0);
        build_body(
            &ctx.identity,
            &job.snapshot,
            seq,
            now_ms / 1000,
            st.tracker.since(acked),
            st.tracker.dropped(),
            st.health(),
        )
    };
    let path = ctx.report_path();
    let sig = ctx
        .key
        .sign("PUT", &path, &body, &ctx.identity.boot_id, seq, now_ms)
        .to_header();
    let url = format!("{}{path}", addr.base_url());
    let headers = [
        ("Content-Type", "application/json"),
        (TOKEN_HEADER, ctx.token.expose()),
        (TENANT_HEADER, "default_tenant"),
        (SIGNATURE_HEADER, sig.as_str()),
    ];
    let result = ctx
        .client
        .request(
            http::Method::PUT,
            &url,
            &headers,
            body.into(),
            ctx.timeout,
            MAX_RESPONSE_BYTES,
        )
        .await;
    (seq, classify(&result))
}

/// Asks one manager for the cluster's manager list (`private_ip` of each item).
pub async fn fetch_managers(addr: &ManagerAddr, ctx: &PushContext) -> Result<Vec<String>, String> {
    let url = format!("{}{}/managers", addr.base_url(), sr_protocol::API_PREFIX);
    let headers = [
        (TOKEN_HEADER, ctx.token.expose()),
        (TENANT_HEADER, "default_tenant"),
    ];
    let resp = ctx
        .client
        .get(&url, &headers, ctx.timeout, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    if resp.status != http::StatusCode::OK {
        return Err(format!("http {}", resp.status.as_u16()));
    }
    parse_manager_list(&resp.body)
}

/// Reads `items[].private_ip` leniently (other keys are ignored) but boundedly.
pub fn parse_manager_list(body: &[u8]) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("managers list is not JSON: {e}"))?;
    let items = v
        .get("items")
        .and_then(|i| i.as_array())
        .ok_or("managers list has no items array")?;
    let mut out = Vec::new();
    for item in items {
        if let Some(ip) = item.get("private_ip").and_then(|p| p.as_str()) {
            if out.len() >= MAX_DISCOVERED {
                return Err(format!(
                    "managers list names more than {MAX_DISCOVERED} managers"
                ));
            }
            if !out.iter().any(|x| x == ip) {
                out.push(ip.to_string());
            }
        }
    }
    Ok(out)
}

/// What a push task tells the daemon.
#[derive(Debug)]
pub enum PushEvent {
    /// A manager list was read from `from`.
    Discovered { from: ManagerAddr, ips: Vec<String> },
    /// A delivery's recorded result changed kind (for persisting the self-health).
    HealthChanged,
}

/// Runs until `shutdown` is set: waits for snapshots in `slot` and delivers each.
pub async fn manager_task(
    addr: ManagerAddr,
    mut slot: watch::Receiver<Option<Job>>,
    shared: Arc<Shared>,
    events: mpsc::Sender<PushEvent>,
    mut shutdown: watch::Receiver<bool>,
    refresh_every: Duration,
) {
    let mut breaker = Breaker::default();
    let mut last_logged_kind = String::from("ok");
    let mut pending_logged: Option<Instant> = None;
    let mut last_refresh: Option<Instant> = None;
    shared
        .lock()
        .deliveries
        .entry(addr.clone())
        .or_insert_with(|| ManagerDelivery {
            manager: addr.to_string(),
            last_result: "pending".into(),
            consecutive_failures: 0,
            acked_seq: 0,
        });
    'jobs: loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            r = slot.changed() => if r.is_err() { return },
        }
        let Some(mut job) = slot.borrow_and_update().clone() else {
            continue;
        };
        let cooldown = breaker_cooldown(job.ctx.identity.reporting_freq);
        // An open circuit skips snapshots until its trial time, except that a status
        // change is tried at once: it is the report that matters most.
        if let Some(until) = breaker.open_until(Instant::now()) {
            if !job.snapshot.changed {
                tracing::debug!(manager = %addr, remaining_ms = (until - Instant::now()).as_millis() as u64, "circuit open, snapshot skipped");
                continue;
            }
        }
        let mut attempt = 0u32;
        loop {
            let (seq, outcome) = tokio::select! {
                biased;
                _ = shutdown.changed() => return,
                r = send_once(&addr, &job, &shared) => r,
            };
            let opened = breaker.record(&outcome, Instant::now(), cooldown);
            let kind_changed = record(&shared, &addr, seq, &outcome);
            if outcome == Outcome::AwaitingApproval {
                log_awaiting_approval(&addr, &job.ctx, &mut pending_logged);
            } else {
                pending_logged = None;
            }
            log_outcome(&addr, &outcome, &mut last_logged_kind, opened, cooldown);
            if kind_changed {
                let _ = events.try_send(PushEvent::HealthChanged);
            }
            match outcome {
                Outcome::Delivered => {
                    if last_refresh.is_none_or(|t| t.elapsed() >= refresh_every) {
                        last_refresh = Some(Instant::now());
                        match fetch_managers(&addr, &job.ctx).await {
                            Ok(ips) => {
                                let _ = events.try_send(PushEvent::Discovered {
                                    from: addr.clone(),
                                    ips,
                                });
                            }
                            Err(e) => {
                                tracing::warn!(manager = %addr, cause = %e, "could not refresh the manager list")
                            }
                        }
                    }
                    continue 'jobs;
                }
                // Sent again next cycle, as the collector expects (each report refreshes
                // the held entry); no manager-list refresh before admission.
                Outcome::Fatal(_) | Outcome::AwaitingApproval => continue 'jobs,
                Outcome::Retryable(_) if opened => continue 'jobs,
                Outcome::Retryable(_) => {}
            }
            let delay = backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP, rand::rng().random());
            attempt += 1;
            let wake = Instant::now() + delay;
            // Wait out the backoff; a newer snapshot replaces the pending one (latest
            // wins), and a status change cuts the wait short.
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.changed() => return,
                    r = slot.changed() => {
                        if r.is_err() { return }
                        if let Some(newer) = slot.borrow_and_update().clone() {
                            let urgent = newer.snapshot.changed;
                            job = newer;
                            if urgent { break }
                        }
                    }
                    _ = tokio::time::sleep_until(wake) => break,
                }
            }
        }
    }
}

/// Records an attempt in the shared self-health; true when the result's kind changed.
fn record(shared: &Shared, addr: &ManagerAddr, seq: u64, outcome: &Outcome) -> bool {
    shared.metrics.push(&addr.to_string(), outcome);
    let mut st = shared.lock();
    let d = st
        .deliveries
        .entry(addr.clone())
        .or_insert_with(|| ManagerDelivery {
            manager: addr.to_string(),
            last_result: String::new(),
            consecutive_failures: 0,
            acked_seq: 0,
        });
    let before = Outcome::Retryable(d.last_result.clone()).kind().to_string();
    match outcome {
        Outcome::Delivered => {
            d.last_result = "ok".into();
            d.consecutive_failures = 0;
            d.acked_seq = seq;
        }
        // Not acked: the collector kept none of the transitions, so they go again.
        Outcome::AwaitingApproval => {
            d.last_result =
                format!("{PENDING_APPROVAL_CODE}: held until an operator approves this node");
            d.consecutive_failures = 0;
        }
        Outcome::Retryable(c) | Outcome::Fatal(c) => {
            d.last_result = c.clone();
            d.consecutive_failures = d.consecutive_failures.saturating_add(1);
        }
    }
    before != outcome.kind()
}

/// WARN when a manager starts holding this node for approval, then once per
/// [`PENDING_REMINDER`]; DEBUG in between.
fn log_awaiting_approval(addr: &ManagerAddr, ctx: &PushContext, last: &mut Option<Instant>) {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < PENDING_REMINDER) {
        tracing::debug!(manager = %addr, "report held for approval");
        return;
    }
    *last = Some(now);
    tracing::warn!(
        manager = %addr,
        node_id = %ctx.node_id,
        fingerprint = %ctx.key.fingerprint(),
        "report delivered and held: this node awaits an operator's approval; on a manager run `status-reporter nodes approve {} --fingerprint {}`",
        ctx.node_id,
        ctx.key.fingerprint(),
    );
}

/// WARN once per change of failure kind, INFO on recovery; DEBUG otherwise.
fn log_outcome(
    addr: &ManagerAddr,
    outcome: &Outcome,
    last_kind: &mut String,
    opened: bool,
    cooldown: Duration,
) {
    let kind = outcome.kind().to_string();
    match outcome {
        Outcome::Delivered if *last_kind == PENDING_APPROVAL_CODE => {
            tracing::info!(manager = %addr, "node approved: reports are accepted")
        }
        Outcome::Delivered if *last_kind != "ok" => {
            tracing::info!(manager = %addr, "reports delivered again")
        }
        Outcome::Delivered => tracing::debug!(manager = %addr, "report delivered"),
        // Logged by `log_awaiting_approval`, which rate-limits it.
        Outcome::AwaitingApproval => {}
        Outcome::Fatal(cause) if kind != *last_kind => {
            tracing::warn!(manager = %addr, cause = %cause, "report rejected; not retrying until the next cycle")
        }
        Outcome::Retryable(cause) if kind != *last_kind => {
            tracing::warn!(manager = %addr, cause = %cause, "report not delivered; retrying")
        }
        Outcome::Retryable(cause) | Outcome::Fatal(cause) => {
            tracing::debug!(manager = %addr, cause = %cause, "report not delivered")
        }
    }
    if opened {
        tracing::warn!(manager = %addr, cooldown_s = cooldown.as_secs(), "manager keeps failing; circuit open, skipping it until the cool-down ends");
    }
    *last_kind = kind;
}

#[cfg(test)]
mod tests {
    #[test]
    fn breaker_cooldown_is_one_interval_within_bounds() {
        assert_eq!(super::breaker_cooldown(1), super::Duration::from_secs(1));
        assert_eq!(super::breaker_cooldown(5), super::Duration::from_secs(5));
        assert_eq!(
            super::breaker_cooldown(3600),
            super::Duration::from_secs(60)
        );
    }

    use super::*;
    use http::{HeaderMap, StatusCode};

    fn resp(code: u16, body: &str) -> Result<sr_tls::Response, ClientError> {
        Ok(sr_tls::Response {
            status: StatusCode::from_u16(code).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec().into(),
        })
    }

    #[test]
    fn outcomes_are_classified_like_the_issue_says() {
        assert_eq!(classify(&resp(200, "null")), Outcome::Delivered);
        assert_eq!(classify(&resp(200, "{\"ok\":true}")), Outcome::Delivered);
        for retry in [
            resp(200, ""),
            resp(200, "<html>garbage"),
            resp(408, ""),
            resp(429, ""),
            resp(500, "boom"),
            resp(503, ""),
        ] {
            assert!(
                matches!(classify(&retry), Outcome::Retryable(_)),
                "{retry:?}"
            );
        }
        for fatal in [
            resp(400, "bad"),
            resp(401, "no"),
            resp(403, ""),
            resp(404, ""),
            resp(302, ""),
        ] {
            assert!(matches!(classify(&fatal), Outcome::Fatal(_)), "{fatal:?}");
        }
        assert!(matches!(
            classify(&Err(ClientError::Timeout(Duration::from_secs(1)))),
            Outcome::Retryable(_)
        ));
        assert!(matches!(
            classify(&Err(ClientError::Connect("refused".into()))),
            Outcome::Retryable(_)
        ));
        assert!(matches!(
            classify(&Err(ClientError::BodyTooLarge(10))),
            Outcome::Retryable(_)
        ));
        let Outcome::Fatal(c) = classify(&resp(401, "token revoked")) else {
            panic!()
        };
        assert_eq!(c, "http 401: token revoked");
    }

    #[test]
    fn a_held_report_awaits_approval_and_is_no_failure() {
        let held = resp(
            202,
            r#"{"message":"new node held for an operator's approval","error_code":"pending_approval"}"#,
        );
        assert_eq!(classify(&held), Outcome::AwaitingApproval);
        // Any other 202 is not something the agent was promised: still not delivered.
        assert!(matches!(classify(&resp(202, "{}")), Outcome::Fatal(_)));
        assert!(matches!(
            classify(&resp(202, r#"{"error_code":"pending"}"#)),
            Outcome::Fatal(_)
        ));
        assert!(matches!(
            classify(&resp(202, "not json")),
            Outcome::Fatal(_)
        ));
        // Held answers never open the circuit, and reset a failure run.
        let mut b = Breaker::default();
        let cd = Duration::from_secs(5);
        let now = Instant::now();
        for _ in 0..BREAKER_THRESHOLD - 1 {
            assert!(!b.record(&Outcome::Retryable("connect: refused".into()), now, cd));
        }
        for _ in 0..3 * BREAKER_THRESHOLD {
            assert!(!b.record(&Outcome::AwaitingApproval, now, cd));
        }
        assert!(b.open_until(now).is_none());
        assert!(!b.record(&Outcome::Retryable("connect: refused".into()), now, cd));
    }

    #[test]
    fn hostile_bodies_are_cut_and_cleaned_in_causes() {
        let huge = format!("\u{1b}[31m{}", "x".repeat(10_000));
        let Outcome::Fatal(c) = classify(&resp(400, &huge)) else {
            panic!()
        };
        assert!(c.len() < MAX_CAUSE_LEN + 20, "{}", c.len());
        assert!(!c.contains('\u{1b}'));
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let base = Duration::from_millis(250);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, base, cap, 1.0), base);
        assert_eq!(backoff_delay(3, base, cap, 1.0), base * 8);
        assert_eq!(backoff_delay(30, base, cap, 1.0), cap);
        assert_eq!(backoff_delay(u32::MAX, base, cap, 0.5), cap / 2);
        assert_eq!(backoff_delay(5, base, cap, 0.0), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_repeated_failures_and_closes_on_success() {
        let mut b = Breaker::default();
        let cd = Duration::from_secs(5);
        let fail = Outcome::Retryable("connect: refused".into());
        for _ in 0..BREAKER_THRESHOLD - 1 {
            assert!(!b.record(&fail, Instant::now(), cd));
        }
        assert!(b.open_until(Instant::now()).is_none());
        assert!(b.record(&fail, Instant::now(), cd));
        assert!(b.open_until(Instant::now()).is_some());
        // Fatal outcomes neither open nor close it.
        assert!(!b.record(&Outcome::Fatal("http 401: x".into()), Instant::now(), cd));
        tokio::time::advance(cd + Duration::from_millis(1)).await;
        assert!(
            b.open_until(Instant::now()).is_none(),
            "trial allowed after the cool-down"
        );
        b.record(&Outcome::Delivered, Instant::now(), cd);
        assert!(!b.record(&fail, Instant::now(), cd), "the count restarted");
    }

    #[test]
    fn manager_lists_are_read_leniently_but_bounded() {
        let body = br#"{"items":[{"private_ip":"10.0.0.1","hostname":"m1"},{"private_ip":"10.0.0.1"},{"hostname":"x"}],"metadata":{}}"#;
        assert_eq!(parse_manager_list(body).unwrap(), vec!["10.0.0.1"]);
        assert!(parse_manager_list(b"").is_err());
        assert!(parse_manager_list(b"[]").is_err());
        let many: Vec<_> = (0..=MAX_DISCOVERED)
            .map(|i| format!("{{\"private_ip\":\"10.0.0.{i}\"}}"))
            .collect();
        assert!(
            parse_manager_list(format!("{{\"items\":[{}]}}", many.join(",")).as_bytes()).is_err()
        );
    }
}
