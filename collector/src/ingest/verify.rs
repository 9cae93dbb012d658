//! Step 1, verify: every check that needs no node state, cheapest and least trusting
//! first: size, content type, token and role, path, the body under a limit and a
//! deadline, then the signature over the exact bytes (before any parsing).

use super::{valid_node_id, Refusal};
use crate::app::App;
use crate::state::NodeKey;
use axum::body::{Body, Bytes};
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use sr_protocol::signing::SignedEnvelope;
use sr_protocol::NodeType;

/// A request whose head, body and signature passed; nothing of the body parsed yet.
pub(super) struct Verified {
    pub key: NodeKey,
    pub bytes: Bytes,
    /// `None`: an unsigned legacy report, allowed by `allow_unsigned_legacy`.
    pub envelope: Option<SignedEnvelope>,
    /// The signing key (base64url), the identity pinned on first contact.
    pub key_id: Option<String>,
    /// Collector clock at receipt, Unix ms: the only clock freshness is judged by.
    pub received_ms: i64,
    /// SHA-256 of the role token: whose new-node budget a new node id takes from.
    pub token: [u8; 32],
}

pub(super) async fn verify(
    app: &App,
    node_type: &str,
    node_id: &str,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Verified, Refusal> {
    let (node_type, token) = check_head(app, node_type, node_id, headers)?;
    let bytes = read_body(app, body).await?;
    let received_ms = crate::clock::now_ms();
    let envelope = check_signature(app, path, headers, &bytes)?;
    Ok(Verified {
        key: (node_type, node_id.to_string()),
        key_id: envelope.as_ref().map(|e| e.key_id()),
        bytes,
        envelope,
        received_ms,
        token,
    })
}

/// Checks the request up to (not including) the body, so every refusal that needs no
/// body happens before a byte of it is read. Returns the node type and the token's hash.
fn check_head(
    app: &App,
    node_type: &str,
    node_id: &str,
    headers: &HeaderMap,
) -> Result<(NodeType, [u8; 32]), Refusal> {
    let limit = app.cfg.max_body_bytes;
    if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
        match len.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(declared) if declared > limit as u64 => {
                return Err(Refusal::DeclaredTooLarge { declared, limit })
            }
            Some(_) => {}
            None => return Err(Refusal::ContentLengthNotANumber),
        }
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes());
    if ct != Some(b"application/json".as_slice()) {
        return Err(Refusal::WrongContentType);
    }
    let token = headers
        .get(sr_protocol::TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(Refusal::MissingToken)?;
    let hash = crate::store::token_hash(token);
    let role = app.mem.role_of_hash(&hash).ok_or(Refusal::UnknownToken)?;
    let node_type: NodeType = node_type.parse().map_err(Refusal::UnknownNodeType)?;
    if role.reports_as() != Some(node_type) {
        return Err(Refusal::WrongRole { role, node_type });
    }
    if !valid_node_id(node_id) {
        return Err(Refusal::InvalidNodeId);
    }
    Ok((node_type, hash))
}

async fn read_body(app: &App, body: Body) -> Result<Bytes, Refusal> {
    let limit = app.cfg.max_body_bytes;
    let read = Limited::new(body, limit).collect();
    match tokio::time::timeout(app.cfg.body_read_timeout, read).await {
        Err(_) => Err(Refusal::BodyTimeout),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Refusal::BodyTooLarge { limit })
        }
        Ok(Err(_)) => Err(Refusal::BodyUnreadable),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The signature over the exact bytes, before any parsing of the body.
fn check_signature(
    app: &App,
    path: &str,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Option<SignedEnvelope>, Refusal> {
    match headers.get(sr_protocol::SIGNATURE_HEADER) {
        Some(v) => {
            let v = v.to_str().map_err(|_| Refusal::SignatureNotAscii)?;
            let env = SignedEnvelope::parse_header(v).map_err(Refusal::BadSignature)?;
            env.verify("PUT", path, bytes)
                .map_err(Refusal::BadSignature)?;
            Ok(Some(env))
        }
        None if !app.cfg.allow_unsigned_legacy => Err(Refusal::UnsignedNotAllowed),
        None => Ok(None),
    }
}
