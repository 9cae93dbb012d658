//! Step 2, accept: what needs the node's state, then the body. The node must fit under
//! `max_nodes`, its pin and replay state must admit the report (a key mismatch is flagged
//! durably), and only then is the body decoded and its fields checked.

use super::trust::{check_pin_and_replay, refuse_mismatch};
use super::verify::Verified;
use super::Refusal;
use crate::app::App;
use crate::state::Counters;
use sr_protocol::report::ReportBody;
use std::net::IpAddr;

/// A verified report the node's state admits, decoded and checked.
pub(super) struct Accepted {
    pub verified: Verified,
    pub body: ReportBody,
    pub name: String,
    pub private_ip: Option<String>,
    /// Reporter clock minus collector clock at receipt, ms.
    pub skew_ms: i64,
    /// First contact, or the first signed report of an unpinned (legacy) node: the key,
    /// if any, is pinned durably before the 200.
    pub pinning: bool,
}

pub(super) async fn accept(
    app: &App,
    verified: Verified,
    peer: Option<IpAddr>,
) -> Result<Accepted, Refusal> {
    let pinning = admit(app, &verified).await?;
    let decoded = ReportBody::decode(&verified.bytes).map_err(Refusal::Undecodable)?;
    let body = decoded.body;
    let ext = body.extension.as_ref();
    if let (Some(env), Some(ext)) = (&verified.envelope, ext) {
        if env.boot_id != ext.boot_id || env.seq != ext.seq {
            return Err(Refusal::EnvelopeDisagrees);
        }
    }
    let name = ext
        .map(|e| e.node_name.clone())
        .unwrap_or_else(|| verified.key.1.clone());
    if name.is_empty() || name.chars().any(sr_protocol::model::is_hidden_char) {
        return Err(Refusal::BadNodeName);
    }
    let private_ip = match ext.and_then(|e| e.private_ip.as_deref()) {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| Refusal::BadPrivateIp)?
                .to_string(),
        ),
        None => peer.map(|p| p.to_canonical().to_string()),
    };
    let reporter_ms = match &verified.envelope {
        Some(env) => env.sent_at_ms,
        None => decoded.reporter_time.saturating_mul(1000),
    };
    let skew_ms = reporter_ms.saturating_sub(verified.received_ms);
    Ok(Accepted {
        verified,
        body,
        name,
        private_ip,
        skew_ms,
        pinning,
    })
}

/// Whether the node's state admits the report; `Ok(true)` when a pin is to be written.
async fn admit(app: &App, v: &Verified) -> Result<bool, Refusal> {
    let checked = {
        let nodes = app.mem.lock();
        let entry = nodes.map.get(&v.key);
        if entry.is_none() && nodes.map.len() >= app.cfg.max_nodes {
            Counters::bump(&app.mem.counters.nodes_refused);
            return Err(Refusal::TooManyNodes {
                max_nodes: app.cfg.max_nodes,
            });
        }
        check_pin_and_replay(
            entry,
            v.envelope.as_ref(),
            v.key_id.as_deref(),
            v.received_ms,
        )
        .map(|()| entry.is_none_or(|e| v.key_id.is_some() && e.pinned.is_none()))
    };
    match checked {
        Err(Refusal::KeyMismatch) => Err(refuse_mismatch(app, &v.key, v.key_id.as_deref()).await),
        other => other,
    }
}
