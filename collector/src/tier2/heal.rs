//! The healing hook, after the seed's policy: when a tier-1 node is silent past
//! `silent_after` in its cluster's summaries while the cluster still reports (a fresh
//! summary: at least one of its managers is alive), run the configured command or webhook
//! with the cluster, the node and the reason; never while the whole cluster is silent; at
//! most once per node per `interval`.
//!
//! [`step`] is the policy: pure (no I/O, no clock; `now` is passed), tested below over the
//! edge cases. It returns only the decisions worth recording: every run, and a suppression
//! when its cause differs from the node's last recorded decision, so a cluster that stays
//! unreachable for a day is one history row per node, not one per second. [`run_loop`]
//! feeds it every second and [`execute`] does the I/O (a command with a timeout, no shell;
//! or a signed webhook), each run recorded with its outcome.

use super::config::{HealAction, HealConfig};
use std::collections::HashMap;
use std::time::Duration;

/// The policy's tunables in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub silent_after_ms: i64,
    pub interval_ms: i64,
    pub unreachable_after_ms: i64,
}

/// One silent node as a cluster's last summary shows it.
#[derive(Debug, Clone)]
pub struct Silent {
    pub node: String,
    /// Its age at the summary, `None` if it never reported (never healed: nothing to restart).
    pub age_at_summary_ms: Option<u64>,
    /// The first reason, as `code: message`.
    pub reason: String,
}

/// One cluster's input: when its last summary arrived and which nodes it shows silent.
#[derive(Debug, Clone)]
pub struct ClusterInput {
    pub cluster: String,
    pub received_ms: i64,
    pub silent: Vec<Silent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// No fresh summary: the whole cluster is silent (or cut off from tier 2).
    ClusterUnreachable,
    /// The node was healed less than `interval` ago.
    WithinInterval,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::ClusterUnreachable => "cluster_unreachable",
            Why::WithinInterval => "within_interval",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Run,
    Suppressed(Why),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub cluster: String,
    pub node: String,
    pub reason: String,
    pub silent_for_ms: i64,
    pub verdict: Verdict,
}

/// What the policy remembers per `(cluster, node)`.
#[derive(Debug, Default)]
pub struct State {
    last_run_ms: HashMap<(String, String), i64>,
    last_recorded: HashMap<(String, String), Verdict>,
}

impl State {
    /// Seeds the runs found in the history, so a restart does not heal again early.
    pub fn remember_run(&mut self, cluster: &str, node: &str, at_ms: i64) {
        let k = (cluster.to_string(), node.to_string());
        let e = self.last_run_ms.entry(k.clone()).or_insert(at_ms);
        *e = (*e).max(at_ms);
        self.last_recorded.insert(k, Verdict::Run);
    }
}

/// The policy. Updates `state` and returns the decisions to record and act on.
pub fn step(
    state: &mut State,
    clusters: &[ClusterInput],
    now_ms: i64,
    p: &Policy,
) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut due: Vec<(String, String)> = Vec::new();
    for c in clusters {
        let fresh = super::view::fresh(c.received_ms, now_ms, p.unreachable_after_ms);
        let since_summary = now_ms.saturating_sub(c.received_ms).max(0);
        let mut seen: Vec<&str> = Vec::new();
        for s in &c.silent {
            // A node listed under several services is one node.
            if seen.contains(&s.node.as_str()) {
                continue;
            }
            seen.push(&s.node);
            let Some(age) = s.age_at_summary_ms else {
                continue;
            };
            let silent_for = (age as i64).saturating_add(since_summary);
            if silent_for < p.silent_after_ms {
                continue;
            }
            let key = (c.cluster.clone(), s.node.clone());
            due.push(key.clone());
            let verdict = if !fresh {
                Verdict::Suppressed(Why::ClusterUnreachable)
            } else if state
                .last_run_ms
                .get(&key)
                .is_some_and(|at| now_ms.saturating_sub(*at) < p.interval_ms)
            {
                Verdict::Suppressed(Why::WithinInterval)
            } else {
                Verdict::Run
            };
            if verdict == Verdict::Run {
                state.last_run_ms.insert(key.clone(), now_ms);
            } else if state.last_recorded.get(&key) == Some(&verdict) {
                continue;
            }
            state.last_recorded.insert(key, verdict.clone());
            out.push(Decision {
                cluster: c.cluster.clone(),
                node: s.node.clone(),
                reason: s.reason.clone(),
                silent_for_ms: silent_for,
                verdict,
            });
        }
    }
    // A node no longer due (it came back, or it left the summary) starts afresh next
    // time, but its last run still counts against the interval.
    state.last_recorded.retain(|k, _| due.contains(k));
    let horizon = p.interval_ms;
    state
        .last_run_ms
        .retain(|_, at| now_ms.saturating_sub(*at) < horizon);
    out
}

/// What one run did, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded(String),
    Failed(String),
}

/// Most output kept from a command, for the history row.
const MAX_OUTPUT: usize = 1024;

/// Runs the configured action for one decision. Never panics; every failure is an outcome.
pub async fn execute(
    cfg: &HealConfig,
    client: Option<&sr_tls::HttpsClient>,
    d: &Decision,
) -> Outcome {
    match &cfg.action {
        HealAction::Command(argv) => run_command(argv, cfg.timeout, d).await,
        HealAction::Webhook { url, secret, .. } => {
            let Some(client) = client else {
                return Outcome::Failed("no HTTP client".into());
            };
            let body = serde_json::json!({
                "version": 1,
                "kind": "heal",
                "cluster": d.cluster,
                "node": d.node,
                "reason": d.reason,
                "silent_for_ms": d.silent_for_ms,
            })
            .to_string();
            let ts = crate::clock::now_ms() / 1000;
            let sig = crate::alerts::webhook::sign(secret.expose(), ts, body.as_bytes());
            let ts = ts.to_string();
            let headers = [
                ("content-type", "application/json"),
                ("user-agent", "status-reporter-collector"),
                (crate::alerts::webhook::TIMESTAMP_HEADER, ts.as_str()),
                (crate::alerts::webhook::SIGNATURE_HEADER, sig.as_str()),
            ];
            match client
                .request(
                    http::Method::POST,
                    url,
                    &headers,
                    body.into(),
                    cfg.timeout,
                    64 * 1024,
                )
                .await
            {
                Ok(r) if r.status.is_success() => {
                    Outcome::Succeeded(format!("http {}", r.status.as_u16()))
                }
                Ok(r) => Outcome::Failed(format!("http {}", r.status.as_u16())),
                Err(e) => Outcome::Failed(sr_tls::client::error_chain(&e)),
            }
        }
    }
}

async fn run_command(argv: &[String], timeout: Duration, d: &Decision) -> Outcome {
    let Some((prog, args)) = argv.split_first() else {
        return Outcome::Failed("empty command".into());
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .env("SR_CLUSTER", &d.cluster)
        .env("SR_NODE", &d.node)
        .env("SR_REASON", &d.reason)
        .env("SR_SILENT_FOR_MS", d.silent_for_ms.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot start {prog}: {e}")),
    };
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Outcome::Failed(format!(
            "timed out after {} s (killed)",
            timeout.as_secs_f64()
        )),
        Ok(Err(e)) => Outcome::Failed(format!("wait failed: {e}")),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stdout));
            let text: String = text.chars().take(MAX_OUTPUT).collect();
            if out.status.success() {
                Outcome::Succeeded(format!("exit 0 {}", text.trim()).trim().to_string())
            } else {
                Outcome::Failed(format!("{} {}", out.status, text.trim()).trim().to_string())
            }
        }
    }
}

/// Concurrent heal actions at most; a run past it is recorded as failed (`busy`).
pub const MAX_RUNNING: usize = 4;

fn snapshot(fleet: &super::Fleet) -> Vec<ClusterInput> {
    let clusters = fleet.clusters.lock().unwrap_or_else(|e| e.into_inner());
    clusters
        .iter()
        .map(|(name, e)| ClusterInput {
            cluster: name.clone(),
            received_ms: e.received_ms,
            silent: e
                .summary
                .nodes
                .iter()
                .filter(|n| n.silent)
                .map(|n| Silent {
                    node: n.name.clone(),
                    age_at_summary_ms: n.last_seen_age_ms,
                    reason: n
                        .reasons
                        .first()
                        .map(|r| format!("{}: {}", r.code, r.message))
                        .unwrap_or_else(|| "silent".into()),
                })
                .collect(),
        })
        .collect()
}

/// Logs, counts and stores one history row (the store write off the async threads).
async fn record(
    app: &std::sync::Arc<crate::app::App>,
    d: &Decision,
    decision: &str,
    why: &str,
    detail: String,
) {
    let Some(fleet) = app.tier2.fleet.as_ref() else {
        return;
    };
    match decision {
        "run" | "succeeded" => {
            tracing::info!(cluster = %d.cluster, node = %d.node, decision, why, %detail, silent_for_ms = d.silent_for_ms, "tier-2 heal")
        }
        _ => {
            tracing::warn!(cluster = %d.cluster, node = %d.node, decision, why, %detail, silent_for_ms = d.silent_for_ms, "tier-2 heal")
        }
    }
    fleet.count_heal(decision, why);
    let row = super::store::HealRow {
        id: 0,
        at: None,
        at_ms: crate::clock::now_ms(),
        cluster: d.cluster.clone(),
        node: d.node.clone(),
        decision: decision.to_string(),
        why: why.to_string(),
        detail,
    };
    let app2 = app.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let Some(f) = app2.tier2.fleet.as_ref() else {
            return Ok(0);
        };
        f.store.record_heal(&app2.cfg.state_dir, &row)
    })
    .await;
    if !matches!(stored, Ok(Ok(_))) {
        tracing::warn!(cluster = %d.cluster, node = %d.node, decision, "tier-2 heal: the decision could not be stored in the history");
    }
}

/// Judges every second and acts; ends when the collector begins to stop.
pub async fn run_loop(app: std::sync::Arc<crate::app::App>) {
    let Some(fleet) = app.tier2.fleet.as_ref() else {
        return;
    };
    let Some(cfg) = fleet.cfg.heal.clone() else {
        return;
    };
    let policy = Policy {
        silent_after_ms: cfg.silent_after.as_millis() as i64,
        interval_ms: cfg.interval.as_millis() as i64,
        unreachable_after_ms: fleet.unreachable_after_ms(),
    };
    let client = match &cfg.action {
        HealAction::Webhook {
            ca_path: Some(ca), ..
        } => match sr_tls::client_config(ca, None) {
            Ok(tls) => Some(sr_tls::HttpsClient::new(tls, cfg.timeout)),
            Err(e) => {
                tracing::error!(ca = %ca.display(), error = %e, "tier-2 heal: the webhook's CA cannot be read; no heal will run");
                return;
            }
        },
        HealAction::Webhook { .. } => Some(sr_tls::HttpsClient::plain(cfg.timeout)),
        HealAction::Command(_) => None,
    };
    let client = std::sync::Arc::new(client);
    let cfg = std::sync::Arc::new(cfg);
    let mut state = State::default();
    let app2 = app.clone();
    if let Ok(Ok(runs)) = tokio::task::spawn_blocking(move || {
        let f = app2.tier2.fleet.as_ref().expect("checked above");
        f.store.last_runs(&app2.cfg.state_dir)
    })
    .await
    {
        for (c, n, at) in runs {
            state.remember_run(&c, &n, at);
        }
    }
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_RUNNING));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut closing = app.closing.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closing.changed() => return,
        }
        let inputs = snapshot(fleet);
        let decisions = step(&mut state, &inputs, crate::clock::now_ms(), &policy);
        for d in decisions {
            match d.verdict {
                Verdict::Suppressed(why) => {
                    record(&app, &d, "suppressed", why.as_str(), String::new()).await
                }
                Verdict::Run => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        record(
                            &app,
                            &d,
                            "failed",
                            "busy",
                            format!("{MAX_RUNNING} heals already running"),
                        )
                        .await;
                        continue;
                    };
                    record(&app, &d, "run", "silent", d.reason.clone()).await;
                    let (app, cfg, client) = (app.clone(), cfg.clone(), client.clone());
                    tokio::spawn(async move {
                        let outcome = execute(&cfg, client.as_ref().as_ref(), &d).await;
                        drop(permit);
                        match outcome {
                            Outcome::Succeeded(s) => {
                                record(&app, &d, "succeeded", "silent", s).await
                            }
                            Outcome::Failed(s) => record(&app, &d, "failed", "action", s).await,
                        }
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        silent_after_ms: 30_000,
        interval_ms: 600_000,
        unreachable_after_ms: 30_000,
    };

    fn cluster(received_ms: i64, nodes: &[(&str, Option<u64>)]) -> Vec<ClusterInput> {
        vec![ClusterInput {
            cluster: "east".into(),
            received_ms,
            silent: nodes
                .iter()
                .map(|(n, age)| Silent {
                    node: n.to_string(),
                    age_at_summary_ms: *age,
                    reason: "stale: no report".into(),
                })
                .collect(),
        }]
    }

    fn verdicts(d: &[Decision]) -> Vec<(&str, Verdict)> {
        d.iter()
            .map(|d| (d.node.as_str(), d.verdict.clone()))
            .collect()
    }

    #[test]
    fn a_node_silent_past_the_threshold_in_a_fresh_cluster_is_healed_once_per_interval() {
        let mut st = State::default();
        // Silent 29.999 s: not yet.
        assert!(step(
            &mut st,
            &cluster(100_000, &[("db2", Some(29_999))]),
            100_000,
            &P
        )
        .is_empty());
        // Exactly the threshold: run.
        let d = step(
            &mut st,
            &cluster(100_000, &[("db2", Some(29_999))]),
            100_001,
            &P,
        );
        assert_eq!(verdicts(&d), [("db2", Verdict::Run)]);
        assert_eq!(d[0].silent_for_ms, 30_000);
        // Next seconds: one suppression recorded, then nothing more while it holds.
        let d = step(
            &mut st,
            &cluster(105_000, &[("db2", Some(35_000))]),
            105_000,
            &P,
        );
        assert_eq!(
            verdicts(&d),
            [("db2", Verdict::Suppressed(Why::WithinInterval))]
        );
        assert!(step(
            &mut st,
            &cluster(110_000, &[("db2", Some(40_000))]),
            110_000,
            &P
        )
        .is_empty());
        // One ms short of the interval: still suppressed (not recorded again); at it: run.
        assert!(step(
            &mut st,
            &cluster(700_000, &[("db2", Some(600_000))]),
            700_000,
            &P
        )
        .is_empty());
        let d = step(
            &mut st,
            &cluster(700_001, &[("db2", Some(600_000))]),
            700_001,
            &P,
        );
        assert_eq!(verdicts(&d), [("db2", Verdict::Run)]);
    }

    #[test]
    fn nothing_runs_while_the_whole_cluster_is_silent() {
        let mut st = State::default();
        // The last summary is 30.001 s old: the cluster is unreachable.
        let d = step(
            &mut st,
            &cluster(0, &[("db2", Some(60_000)), ("m1", Some(60_000))]),
            30_001,
            &P,
        );
        assert_eq!(
            verdicts(&d),
            [
                ("db2", Verdict::Suppressed(Why::ClusterUnreachable)),
                ("m1", Verdict::Suppressed(Why::ClusterUnreachable))
            ]
        );
        assert!(step(&mut st, &cluster(0, &[("db2", Some(60_000))]), 90_000, &P).is_empty());
        // The cluster is back (fresh summary) and db2 is still silent: now it runs.
        let d = step(
            &mut st,
            &cluster(95_000, &[("db2", Some(95_000))]),
            95_000,
            &P,
        );
        assert_eq!(verdicts(&d), [("db2", Verdict::Run)]);
    }

    #[test]
    fn never_reported_and_repeated_rows_and_clock_steps_are_safe() {
        let mut st = State::default();
        // Never reported: nothing to restart. Listed under two services: one decision.
        let d = step(
            &mut st,
            &cluster(
                1_000,
                &[
                    ("ghost", None),
                    ("db2", Some(40_000)),
                    ("db2", Some(40_000)),
                ],
            ),
            1_000,
            &P,
        );
        assert_eq!(verdicts(&d), [("db2", Verdict::Run)]);
        // The clock stepped back an hour: the last run is "in the future", still suppressed.
        let d = step(
            &mut st,
            &cluster(1_000, &[("db2", Some(40_000))]),
            1_000 - 3_600_000,
            &P,
        );
        assert_eq!(
            verdicts(&d),
            [("db2", Verdict::Suppressed(Why::WithinInterval))]
        );
        // A run seeded from history counts after a restart.
        let mut st = State::default();
        st.remember_run("east", "db2", 500_000);
        let d = step(
            &mut st,
            &cluster(600_000, &[("db2", Some(90_000))]),
            600_000,
            &P,
        );
        assert_eq!(
            verdicts(&d),
            [("db2", Verdict::Suppressed(Why::WithinInterval))]
        );
    }

    #[tokio::test]
    async fn a_command_gets_the_decision_in_its_environment_and_is_killed_at_its_timeout() {
        let d = Decision {
            cluster: "east".into(),
            node: "db2".into(),
            reason: "stale".into(),
            silent_for_ms: 1,
            verdict: Verdict::Run,
        };
        let argv = |s: &str| vec!["/bin/sh".to_string(), "-c".to_string(), s.to_string()];
        let out = run_command(
            &argv("echo $SR_CLUSTER/$SR_NODE/$SR_REASON"),
            Duration::from_secs(10),
            &d,
        )
        .await;
        assert_eq!(out, Outcome::Succeeded("exit 0 east/db2/stale".into()));
        let out = run_command(&argv("exit 3"), Duration::from_secs(10), &d).await;
        assert!(
            matches!(out, Outcome::Failed(ref s) if s.contains("3")),
            "{out:?}"
        );
        let out = run_command(&argv("sleep 30"), Duration::from_millis(100), &d).await;
        assert!(
            matches!(out, Outcome::Failed(ref s) if s.contains("timed out")),
            "{out:?}"
        );
        let out = run_command(
            &["/nonexistent/heal".to_string()],
            Duration::from_secs(1),
            &d,
        )
        .await;
        assert!(
            matches!(out, Outcome::Failed(ref s) if s.contains("cannot start")),
            "{out:?}"
        );
    }
}
