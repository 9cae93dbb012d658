//! `PUT /api/tier2/v1/clusters/{name}`: a tier-1 collector's summary, checked in the node
//! reports' order: length and content type → token (role `cluster`) → name → body under
//! its limit and deadline → signature over the exact bytes (before any parsing) → pin
//! and replay ([`super::trust`]) → decode → the cluster cap → the row committed to SQLite
//! → memory → 200. Every refusal is one [`Refusal`] variant, mapped to its status, code
//! and message in one place.

use super::trust::{self, Distrust, Pin};
use super::{Entry, Fleet};
use crate::app::App;
use crate::error::ApiError;
use crate::store::Role;
use axum::body::{Body, Bytes};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use sr_protocol::signing::SignedEnvelope;
use sr_protocol::summary::{summary_path, valid_cluster_name, Summary};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoFleet,
    TooLarge { limit: usize },
    ContentType,
    NoToken,
    UnknownToken,
    WrongRole,
    BadName,
    Timeout,
    Unreadable,
    SignatureRequired,
    BadSignature(String),
    Distrust(Distrust),
    Decode(String),
    TooManyClusters { max: usize },
    Store,
}

impl Refusal {
    pub fn to_error(&self) -> ApiError {
        use StatusCode as S;
        let (s, code, msg): (S, &'static str, String) = match self {
            Refusal::NoFleet => (S::NOT_FOUND, "not_found_error", "this collector has no [fleet] table: it is not a tier-2 collector".into()),
            Refusal::TooLarge { limit } => (S::PAYLOAD_TOO_LARGE, "payload_too_large", format!("summary body over {limit} bytes")),
            Refusal::ContentType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Content-Type must be application/json".into()),
            Refusal::NoToken => (S::UNAUTHORIZED, "unauthorized_error", "API-Authentication-Token required".into()),
            Refusal::UnknownToken => (S::UNAUTHORIZED, "unauthorized_error", "invalid or revoked token".into()),
            Refusal::WrongRole => (S::FORBIDDEN, "forbidden_error", "only a token of role \"cluster\" may push summaries".into()),
            Refusal::BadName => (S::BAD_REQUEST, "invalid_cluster_name", "cluster name must be 1-64 of A-Z a-z 0-9 . _ -".into()),
            Refusal::Timeout => (S::REQUEST_TIMEOUT, "request_timeout", "summary body not received in time".into()),
            Refusal::Unreadable => (S::BAD_REQUEST, "bad_parameters_error", "summary body could not be read".into()),
            Refusal::SignatureRequired => (S::UNAUTHORIZED, "signature_required", format!("summaries must be signed ({})", sr_protocol::SIGNATURE_HEADER)),
            Refusal::BadSignature(m) => (S::UNAUTHORIZED, "invalid_signature", m.clone()),
            Refusal::Distrust(Distrust::KeyMismatch) => (S::FORBIDDEN, "key_mismatch", "signed by another key than the one pinned for this cluster".into()),
            Refusal::Distrust(Distrust::SeqAlreadySeen { seq, last }) => (S::CONFLICT, "replayed_report", format!("sequence {seq} already seen (last accepted {last})")),
            Refusal::Distrust(Distrust::OlderBoot) => (S::CONFLICT, "replayed_report", "a boot older than the cluster's newest summary".into()),
            Refusal::Distrust(Distrust::StaleSignature { skew_ms }) => (S::CONFLICT, "stale_signature", format!("a new boot's send time is {skew_ms} ms from this collector's clock (limit ±5 min)")),
            Refusal::Decode(m) => (S::BAD_REQUEST, "bad_parameters_error", m.clone()),
            Refusal::TooManyClusters { max } => (S::INSUFFICIENT_STORAGE, "too_many_clusters", format!("{max} clusters are tracked (max_clusters)")),
            Refusal::Store => (S::SERVICE_UNAVAILABLE, "store_unavailable", "the summary could not be stored".into()),
        };
        ApiError::new(s, code, msg)
    }
}

fn fleet(app: &App) -> Result<&Fleet, Refusal> {
    app.tier2.fleet.as_ref().ok_or(Refusal::NoFleet)
}

/// The checks before the body is read.
pub fn check_head(app: &App, name: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    let f = fleet(app)?;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > f.cfg.max_summary_bytes as u64) {
        return Err(Refusal::TooLarge {
            limit: f.cfg.max_summary_bytes,
        });
    }
    if headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        != Some(b"application/json")
    {
        return Err(Refusal::ContentType);
    }
    let token = headers
        .get(sr_protocol::TOKEN_HEADER)
        .ok_or(Refusal::NoToken)?;
    let role = token
        .to_str()
        .ok()
        .and_then(|t| app.mem.role_of(t))
        .ok_or(Refusal::UnknownToken)?;
    if role != Role::Cluster {
        return Err(Refusal::WrongRole);
    }
    if !valid_cluster_name(name) {
        return Err(Refusal::BadName);
    }
    Ok(())
}

async fn read_body(
    body: Body,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, Refusal> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(deadline, limited.collect()).await {
        Err(_) => Err(Refusal::Timeout),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Refusal::TooLarge { limit })
        }
        Ok(Err(_)) => Err(Refusal::Unreadable),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// One summary, all the way to the answer.
pub async fn handle(
    app: &Arc<App>,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Value, Refusal> {
    check_head(app, name, headers)?;
    let f = fleet(app)?;
    let bytes = read_body(body, f.cfg.max_summary_bytes, app.cfg.body_read_timeout).await?;
    let header = headers
        .get(sr_protocol::SIGNATURE_HEADER)
        .ok_or(Refusal::SignatureRequired)?
        .to_str()
        .map_err(|_| Refusal::BadSignature("signature header is not text".into()))?;
    let env =
        SignedEnvelope::parse_header(header).map_err(|e| Refusal::BadSignature(e.to_string()))?;
    env.verify("PUT", &summary_path(name), &bytes)
        .map_err(|e| Refusal::BadSignature(e.to_string()))?;
    // From here on one summary at a time: judge and commit must not interleave.
    let _one = f.commit.lock().await;
    let received_ms = crate::clock::now_ms();
    let known = f.entry(name);
    let pins = trust::judge(known.as_ref().map(|e| &e.pin), &env, received_ms)
        .map_err(Refusal::Distrust)?;
    let summary = Summary::decode(&bytes, name).map_err(|e| Refusal::Decode(e.to_string()))?;
    if known.is_none() {
        let n = f.clusters.lock().unwrap_or_else(|e| e.into_inner()).len();
        if n >= f.cfg.max_clusters {
            return Err(Refusal::TooManyClusters {
                max: f.cfg.max_clusters,
            });
        }
    }
    let pin = Pin {
        key_id: env.key_id(),
        boot_id: env.boot_id.clone(),
        seq: env.seq,
        sent_ms: env.sent_at_ms,
    };
    let row = super::store::Row {
        name: name.to_string(),
        pin: pin.clone(),
        received_ms,
        // Stored as decoded (bounded), so what is read back is what was judged.
        summary: summary.encode(),
    };
    let app2 = app.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let f = app2.tier2.fleet.as_ref().expect("checked above");
        f.store.put(&app2.cfg.state_dir, &row)
    })
    .await;
    if !matches!(stored, Ok(Ok(()))) {
        return Err(Refusal::Store);
    }
    if pins {
        tracing::info!(cluster = %name, key = %sr_protocol::signing::key_fingerprint(&env.public_key), "tier 2: first summary of a cluster; its key is pinned");
    }
    f.clusters.lock().unwrap_or_else(|e| e.into_inner()).insert(
        name.to_string(),
        Entry {
            pin,
            received_ms,
            summary: Arc::new(summary),
        },
    );
    Ok(serde_json::json!({
        "status": "accepted",
        "cluster": name,
        "acked_seq": env.seq,
        "key_pinned": pins,
    }))
}
