//! Step 3 for a node id not admitted yet under `admission = "approve"`: the report is
//! written to the store's pending list (durably, bounded by `max_pending`) and answered
//! 202. Nothing of it reaches memory's nodes, the view or the quorum until an operator
//! runs `status-reporter nodes approve`.

use super::accept::Accepted;
use super::Refusal;
use crate::app::App;
use crate::state::Counters;
use crate::store::{Held, HeldReport};
use std::net::IpAddr;

/// Holds the report; the refusal that answers it (202 [`Refusal::HeldForApproval`] when
/// it is held).
pub(super) async fn hold(app: &App, a: Accepted, peer: Option<IpAddr>) -> Refusal {
    let key = a.verified.key.clone();
    let report = HeldReport {
        node_type: key.0,
        node_id: key.1.clone(),
        name: a.name,
        key: a.verified.key_id.clone(),
        source: peer.map(|p| p.to_canonical().to_string()),
        at_ms: a.verified.received_ms,
    };
    match app.writer.hold(report, app.cfg.max_pending).await {
        Ok(Held::New | Held::Again) => {
            app.mem.lock().pending.insert(key);
            Refusal::HeldForApproval
        }
        // Approved a moment ago; memory takes the new node at its next reload.
        Ok(Held::Approved) => Refusal::HeldForApproval,
        Ok(Held::KeyForgotten) => Refusal::KeyForgotten {
            fingerprint: a
                .verified
                .key_id
                .as_deref()
                .and_then(sr_protocol::signing::fingerprint_of_key_id)
                .unwrap_or_default(),
        },
        Ok(Held::Full) => {
            Counters::bump(&app.mem.counters.pending_refused);
            Refusal::TooManyPending {
                max_pending: app.cfg.max_pending,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store write failed");
            Refusal::StoreUnavailable
        }
    }
}
