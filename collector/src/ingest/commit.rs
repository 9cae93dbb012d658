//! Step 3, commit: the pin on first contact and any transitions are written durably
//! (through the writer thread), then memory takes the report, after re-checking the pin
//! and replay state that may have changed while the durable write ran.

use super::accept::Accepted;
use super::trust::{check_pin_and_replay, refuse_mismatch};
use super::Refusal;
use crate::app::App;
use crate::record::LatestReport;
use crate::store::{DurableWrite, PinRefused, TransitionRow};
use std::sync::Arc;

/// What the 200 answer reports about a committed report.
pub(super) struct Committed {
    pub node_id: String,
    pub boot_id: Option<String>,
    pub acked_seq: Option<u64>,
    /// Highest transition seq made durable by this report, if it carried any.
    pub transitions_acked: Option<u64>,
    pub received_ms: i64,
    pub skew_ms: i64,
    pub key_pinned: bool,
}

pub(super) async fn commit(app: &App, a: Accepted) -> Result<Committed, Refusal> {
    let (durable, transitions_acked) = durable_writes(&a);
    let pinned_after = if durable.is_empty() {
        None
    } else {
        let pins = app.writer.durable(durable).await.map_err(|e| {
            tracing::error!(error = %e, "store write failed");
            Refusal::StoreUnavailable
        })?;
        match pins.into_iter().next() {
            Some(Err(refused)) => return Err(pin_refusal(refused, a.verified.key_id.as_deref())),
            Some(Ok(pinned)) => Some(pinned),
            None => None,
        }
    };

    let Accepted {
        verified: v,
        body,
        name,
        private_ip,
        skew_ms,
        pinning,
        held: _,
    } = a;
    let status = body.node_status();
    let applied = {
        let mut guard = app.mem.lock();
        let nodes = &mut *guard;
        let entry = nodes.map.entry(v.key.clone()).or_default();
        if let Some(pinned) = pinned_after {
            entry.pinned = pinned;
        }
        check_pin_and_replay(
            Some(entry),
            v.envelope.as_ref(),
            v.key_id.as_deref(),
            v.received_ms,
        )
        .map(|()| {
            if let Some(env) = &v.envelope {
                entry.sent_high_ms = entry.sent_high_ms.max(Some(env.sent_at_ms));
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
            entry.note_status(status, v.received_ms);
            entry.latest = Some(Arc::new(LatestReport {
                body,
                received_ms: v.received_ms,
                skew_ms,
                signed: v.envelope.is_some(),
            }));
            entry.raw = Some(Arc::from(v.bytes.as_ref()));
            nodes.dirty.insert(v.key.clone());
        })
    };
    match applied {
        // Lost a race for the first pin to another key: flag it like any mismatch.
        Err(Refusal::KeyMismatch) => {
            return Err(refuse_mismatch(app, &v.key, v.key_id.as_deref()).await)
        }
        Err(refusal) => return Err(refusal),
        Ok(()) => {}
    }

    let key_pinned = pinning && v.key_id.is_some();
    if key_pinned {
        // Trust on first use is a security event: say which key was trusted for which node.
        tracing::info!(node_type = %v.key.0, node_id = v.key.1, key = v.key_id.as_deref().unwrap_or_default(), "first contact: node key pinned");
    }
    Ok(Committed {
        node_id: v.key.1,
        boot_id: v.envelope.as_ref().map(|e| e.boot_id.clone()),
        acked_seq: v.envelope.as_ref().map(|e| e.seq),
        transitions_acked,
        received_ms: v.received_ms,
        skew_ms,
        key_pinned,
    })
}

/// Why the store would not pin the key, as the refusal the reporter gets.
fn pin_refusal(refused: PinRefused, key_id: Option<&str>) -> Refusal {
    let fingerprint = key_id.and_then(sr_protocol::signing::fingerprint_of_key_id);
    match refused {
        PinRefused::Forgotten => Refusal::KeyForgotten {
            fingerprint: fingerprint.unwrap_or_default(),
        },
        PinRefused::NotApproved { expected } => Refusal::KeyNotApproved {
            fingerprint,
            expected,
        },
    }
}

/// The writes that must be durable before the 200: the pin on first contact and the
/// report's transitions (signed reports only). Also the highest transition seq written.
fn durable_writes(a: &Accepted) -> (Vec<DurableWrite>, Option<u64>) {
    let v = &a.verified;
    let (node_type, node_id) = (v.key.0, &v.key.1);
    let mut durable = Vec::new();
    if a.pinning {
        durable.push(DurableWrite::Pin {
            node_type,
            node_id: node_id.clone(),
            name: a.name.clone(),
            key: v.key_id.clone(),
            private_ip: a.private_ip.clone(),
            at_ms: v.received_ms,
        });
    }
    let transitions_acked = match (a.body.extension.as_ref(), &v.envelope) {
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
                node_id: node_id.clone(),
                received_ms: v.received_ms,
                rows,
            });
            max
        }
        _ => None,
    };
    (durable, transitions_acked)
}
