//! Report ingest: `PUT /api/v3.1/cluster-status/{manager|db|broker}/{node_id}`.
//!
//! The order is the security argument, cheapest and least trusting first:
//! 1. size: a declared `Content-Length` over the limit is refused before any byte is read;
//! 2. content type exactly `application/json` (415);
//! 3. token: unknown or revoked 401, wrong role for the node type 403;
//! 4. path: node type and node id (`[A-Za-z0-9._-]{1,128}`, not `.`/`..`);
//! 5. the body, read under a byte limit and a deadline;
//! 6. the signature over the exact bytes, **before** the body is parsed; unsigned
//!    reports only with `allow_unsigned_legacy`, and never for a node with a pinned key;
//! 7. the pin (trust on first use) and replay state `(boot_id, seq)`;
//! 8. only then `ReportBody::decode`;
//! 9. pins and transitions are committed durably, then memory is updated and 200 sent.
//!
//! Freshness and skew use the collector's receive time only.

use crate::api::{ApiError, App};
use crate::clock::now_ms;
use crate::record::LatestReport;
use crate::rollup::rfc3339_ms;
use crate::state::{Counters, NodeEntry};
use crate::store::{DurableWrite, TransitionRow};
use axum::body::Body;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};
use sr_protocol::report::ReportBody;
use sr_protocol::signing::SignedEnvelope;
use sr_protocol::NodeType;
use std::net::IpAddr;
use std::sync::Arc;

/// A node id is 1–128 characters of `[A-Za-z0-9._-]` and not `.` or `..`: it names rows
/// and appears in paths, so nothing that could traverse or inject is accepted.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

/// Checks the request up to (not including) the body. Split out so every refusal that
/// needs no body happens before a byte of it is read.
fn check_head(
    app: &App,
    node_type: &str,
    node_id: &str,
    headers: &HeaderMap,
) -> Result<NodeType, ApiError> {
    let limit = app.cfg.max_body_bytes;
    if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
        let len = len.to_str().ok().and_then(|s| s.parse::<u64>().ok());
        match len {
            Some(n) if n > limit as u64 => {
                return Err(err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("report body of {n} bytes exceeds the {limit}-byte limit"),
                ))
            }
            Some(_) => {}
            None => {
                return Err(err(
                    StatusCode::BAD_REQUEST,
                    "bad_parameters_error",
                    "Content-Length is not a number",
                ))
            }
        }
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes());
    if ct != Some(b"application/json".as_slice()) {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be exactly application/json",
        ));
    }
    let token = headers
        .get(sr_protocol::TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            err(
                StatusCode::UNAUTHORIZED,
                "unauthorized_error",
                "missing API-Authentication-Token header",
            )
        })?;
    let role = app.mem.role_of(token).ok_or_else(|| {
        err(
            StatusCode::UNAUTHORIZED,
            "unauthorized_error",
            "invalid or revoked token",
        )
    })?;
    let node_type: NodeType =
        node_type
            .parse()
            .map_err(|e: sr_protocol::model::UnknownNodeType| {
                err(StatusCode::BAD_REQUEST, "unknown_node_type", e.to_string())
            })?;
    if role.reports_as() != Some(node_type) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "forbidden_error",
            format!("a {role} token may not report as a {node_type} node"),
        ));
    }
    if !valid_node_id(node_id) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "invalid_node_id",
            "node_id must be 1-128 characters of [A-Za-z0-9._-] and not . or ..",
        ));
    }
    Ok(node_type)
}

async fn read_body(app: &App, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let limit = app.cfg.max_body_bytes;
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(app.cfg.body_read_timeout, read).await {
        Err(_) => Err(err(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "report body not received in time",
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("report body exceeds the {limit}-byte limit"),
            ))
        }
        Ok(Err(_)) => Err(err(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            "report body could not be read",
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// What the replay/pin check decided before the body is decoded.
enum Contact {
    /// No entry yet: first contact.
    New,
    /// Known node; `pin_needed` when a signed report meets an unpinned (legacy) node.
    Known { pin_needed: bool },
    /// Signed by a key other than the pinned one.
    Mismatch(ApiError),
}

/// Handles one report. Returns the 200 body or a refusal; never panics on input.
pub async fn handle(
    app: &App,
    node_type: &str,
    node_id: &str,
    path: &str,
    headers: &HeaderMap,
    body: Body,
    peer: Option<IpAddr>,
) -> Result<serde_json::Value, ApiError> {
    let result = handle_inner(app, node_type, node_id, path, headers, body, peer).await;
    match &result {
        Ok(_) => Counters::bump(&app.mem.counters.accepted),
        Err(e) => {
            Counters::bump(&app.mem.counters.rejected);
            // The token is never logged: only the outcome and the node.
            tracing::debug!(node_type, node_id = %node_id.chars().take(128).collect::<String>(), status = e.status.as_u16(), code = e.code, "report refused");
        }
    }
    result
}

async fn handle_inner(
    app: &App,
    node_type: &str,
    node_id: &str,
    path: &str,
    headers: &HeaderMap,
    body: Body,
    peer: Option<IpAddr>,
) -> Result<serde_json::Value, ApiError> {
    let node_type = check_head(app, node_type, node_id, headers)?;
    let bytes = read_body(app, body).await?;
    let received_ms = now_ms();
    let key = (node_type, node_id.to_string());

    // Signature over the exact bytes, before any parsing of the body.
    let envelope = match headers.get(sr_protocol::SIGNATURE_HEADER) {
        Some(v) => {
            let v = v.to_str().map_err(|_| {
                err(
                    StatusCode::UNAUTHORIZED,
                    "invalid_signature",
                    "signature header is not ASCII",
                )
            })?;
            let env = SignedEnvelope::parse_header(v)
                .map_err(|e| err(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string()))?;
            env.verify("PUT", path, &bytes)
                .map_err(|e| err(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string()))?;
            Some(env)
        }
        None if !app.cfg.allow_unsigned_legacy => {
            return Err(err(
                StatusCode::UNAUTHORIZED,
                "signature_required",
                "unsigned reports are not accepted (allow_unsigned_legacy = false)",
            ))
        }
        None => None,
    };
    let key_id = envelope.as_ref().map(|e| e.key_id());

    let contact = {
        let nodes = app.mem.lock();
        match nodes.map.get(&key) {
            None if nodes.map.len() >= app.cfg.max_nodes => {
                Counters::bump(&app.mem.counters.nodes_refused);
                return Err(err(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "too_many_nodes",
                    format!(
                        "the collector already tracks {} nodes (max_nodes)",
                        app.cfg.max_nodes
                    ),
                ));
            }
            None => Contact::New,
            Some(entry) => {
                match check_pin_and_replay(entry, envelope.as_ref(), key_id.as_deref()) {
                    Err(e) if e.code == "key_mismatch" => Contact::Mismatch(e),
                    Err(e) => return Err(e),
                    Ok(()) => Contact::Known {
                        pin_needed: key_id.is_some() && entry.pinned.is_none(),
                    },
                }
            }
        }
    };
    if let Contact::Mismatch(refusal) = contact {
        flag_mismatch(app, &key, key_id.as_deref()).await?;
        return Err(refusal);
    }

    let decoded = ReportBody::decode(&bytes).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            e.to_string(),
        )
    })?;
    let body = decoded.body;
    let ext = body.extension.as_ref();
    if let (Some(env), Some(ext)) = (&envelope, ext) {
        if env.boot_id != ext.boot_id || env.seq != ext.seq {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "bad_parameters_error",
                "status_reporter.boot_id/seq disagree with the signature header",
            ));
        }
    }
    let name = ext
        .map(|e| e.node_name.clone())
        .unwrap_or_else(|| node_id.to_string());
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad_parameters_error",
            "status_reporter.node_name must be non-empty without control characters",
        ));
    }
    let private_ip = match ext.and_then(|e| e.private_ip.as_deref()) {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| {
                    err(
                        StatusCode::BAD_REQUEST,
                        "bad_parameters_error",
                        "status_reporter.private_ip is not an IP address",
                    )
                })?
                .to_string(),
        ),
        None => peer.map(|p| p.to_canonical().to_string()),
    };
    let reporter_ms = match &envelope {
        Some(env) => env.sent_at_ms,
        None => decoded.reporter_time.saturating_mul(1000),
    };
    let skew_ms = reporter_ms.saturating_sub(received_ms);

    // Durable before the 200: the pin on first contact and any transitions.
    let mut durable = Vec::new();
    let pinning =
        matches!(contact, Contact::New) || matches!(contact, Contact::Known { pin_needed: true });
    if pinning {
        durable.push(DurableWrite::Pin {
            node_type,
            node_id: node_id.to_string(),
            name: name.clone(),
            key: key_id.clone(),
            private_ip: private_ip.clone(),
            at_ms: received_ms,
        });
    }
    let transitions_acked = match (ext, &envelope) {
        (Some(ext), Some(_)) if !ext.transitions.is_empty() => {
            let rows: Vec<TransitionRow> = ext
                .transitions
                .iter()
                .map(|t| TransitionRow {
                    boot_id: ext.boot_id.clone(),
                    seq: t.seq,
                    at_ms: t.at_ms,
                    service: t.service.clone(),
                    from: t.from.as_str().to_string(),
                    to: t.to.as_str().to_string(),
                    reasons_json: serde_json::to_string(&t.reasons).unwrap_or_else(|_| "[]".into()),
                })
                .collect();
            let max = rows.iter().map(|r| r.seq).max();
            durable.push(DurableWrite::Transitions {
                node_type,
                node_id: node_id.to_string(),
                received_ms,
                rows,
            });
            max
        }
        _ => None,
    };
    let pinned_after = if durable.is_empty() {
        None
    } else {
        let pins = app.writer.durable(durable).await.map_err(|e| {
            tracing::error!(error = %e, "store write failed");
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the collector could not store the report; retry later",
            )
        })?;
        pins.into_iter().next()
    };

    // Apply to memory, re-checking what may have changed while the commit ran.
    let status = body.node_status();
    let applied = {
        let mut nodes = app.mem.lock();
        let entry = nodes.map.entry(key.clone()).or_default();
        if let Some(pinned) = pinned_after {
            entry.pinned = pinned;
        }
        match check_pin_and_replay(entry, envelope.as_ref(), key_id.as_deref()) {
            Err(refusal) => Err(refusal),
            Ok(()) => {
                if let Some(env) = &envelope {
                    match entry.boots.iter_mut().find(|b| b.0 == env.boot_id) {
                        Some(b) => b.1 = env.seq,
                        None => {
                            if entry.boots.len() == crate::store::BOOTS_KEPT {
                                entry.boots.pop_front();
                            }
                            entry.boots.push_back((env.boot_id.clone(), env.seq));
                        }
                    }
                }
                entry.name = name;
                entry.private_ip = private_ip;
                entry.note_status(status, received_ms);
                entry.latest = Some(Arc::new(LatestReport {
                    body,
                    received_ms,
                    skew_ms,
                    signed: envelope.is_some(),
                }));
                entry.raw = Some(Arc::from(bytes.as_ref()));
                nodes.dirty.insert(key.clone());
                Ok(())
            }
        }
    };
    if let Err(refusal) = applied {
        if refusal.code == "key_mismatch" {
            // Lost a race for the first pin to another key: flag it like any mismatch.
            flag_mismatch(app, &key, key_id.as_deref()).await?;
        }
        return Err(refusal);
    }

    if pinning && key_id.is_some() {
        // Trust on first use is a security event: say which key was trusted for which node.
        tracing::info!(node_type = %node_type, node_id, key = key_id.as_deref().unwrap_or_default(), "first contact: node key pinned");
    }
    Ok(serde_json::json!({
        "status": "accepted",
        "node_id": node_id,
        "acked_seq": envelope.as_ref().map(|e| e.seq),
        "boot_id": envelope.as_ref().map(|e| e.boot_id.clone()),
        "transitions_acked": transitions_acked,
        "received_at": rfc3339_ms(received_ms),
        "skew_ms": skew_ms,
        "key_pinned": pinning && key_id.is_some(),
    }))
}

/// Refuses a report whose key differs from the pin, or whose `(boot_id, seq)` is not new.
fn check_pin_and_replay(
    entry: &NodeEntry,
    env: Option<&SignedEnvelope>,
    key_id: Option<&str>,
) -> Result<(), ApiError> {
    match (env, &entry.pinned) {
        (None, Some(_)) => {
            return Err(err(StatusCode::UNAUTHORIZED, "signature_required", "this node has a pinned key; unsigned reports are refused"))
        }
        (Some(_), Some(pinned)) if Some(pinned.as_str()) != key_id => {
            return Err(err(StatusCode::FORBIDDEN, "key_mismatch", "report signed by a key other than the one pinned for this node; an operator must run `status-reporter nodes forget` to accept a new key"))
        }
        _ => {}
    }
    if let Some(env) = env {
        if let Some(pos) = entry.boots.iter().position(|b| b.0 == env.boot_id) {
            if pos + 1 != entry.boots.len() {
                return Err(err(
                    StatusCode::CONFLICT,
                    "replayed_report",
                    "report from an earlier boot of this node",
                ));
            }
            let max = entry.boots[pos].1;
            if env.seq <= max {
                return Err(err(
                    StatusCode::CONFLICT,
                    "replayed_report",
                    format!("sequence {} already seen (last accepted {max})", env.seq),
                ));
            }
        }
    }
    Ok(())
}

/// Records a key mismatch durably (so it survives a restart) and in memory, outside the
/// memory lock; a no-op when already flagged.
async fn flag_mismatch(
    app: &App,
    key: &crate::state::NodeKey,
    key_id: Option<&str>,
) -> Result<(), ApiError> {
    let Some(key_id) = key_id else { return Ok(()) };
    let needs_flag = {
        let nodes = app.mem.lock();
        nodes
            .map
            .get(key)
            .is_some_and(|e| e.pinned.as_deref().is_some_and(|p| p != key_id) && !e.key_mismatch)
    };
    if needs_flag {
        app.writer
            .durable(vec![DurableWrite::FlagMismatch {
                node_type: key.0,
                node_id: key.1.clone(),
                key: key_id.to_string(),
            }])
            .await
            .map_err(|_| {
                err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the collector could not store the report; retry later",
                )
            })?;
        if let Some(e) = app.mem.lock().map.get_mut(key) {
            e.key_mismatch = true;
        }
        tracing::warn!(node_type = %key.0, node_id = %key.1, presented_key = key_id, "key mismatch: report signed by an unpinned key refused");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_node_id;

    #[test]
    fn node_ids_with_path_tricks_are_refused() {
        for ok in ["3d5d-uuid", "db1.example.com", "a_b", &"x".repeat(128)] {
            assert!(valid_node_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "a%2Fb",
            "a b",
            "é",
            &"x".repeat(129),
            "a\0b",
            "a\\b",
        ] {
            assert!(!valid_node_id(bad), "{bad:?}");
        }
    }
}
