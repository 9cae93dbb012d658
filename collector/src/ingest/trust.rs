//! The pin (trust on first use) and replay rules, checked when a report is accepted and
//! re-checked when it is committed (the node may have changed while the commit ran).

use super::Refusal;
use crate::app::App;
use crate::state::{NodeEntry, NodeKey};
use crate::store::DurableWrite;
use sr_protocol::signing::SignedEnvelope;

/// Refuses a report whose key differs from the pin, or whose `(boot_id, seq)` is not new.
pub(super) fn check_pin_and_replay(
    entry: &NodeEntry,
    env: Option<&SignedEnvelope>,
    key_id: Option<&str>,
) -> Result<(), Refusal> {
    match (env, &entry.pinned) {
        (None, Some(_)) => return Err(Refusal::UnsignedForPinnedNode),
        (Some(_), Some(pinned)) if Some(pinned.as_str()) != key_id => {
            return Err(Refusal::KeyMismatch)
        }
        _ => {}
    }
    if let Some(env) = env {
        if let Some(pos) = entry.boots.iter().position(|b| b.0 == env.boot_id) {
            if pos + 1 != entry.boots.len() {
                return Err(Refusal::EarlierBoot);
            }
            let last = entry.boots[pos].1;
            if env.seq <= last {
                return Err(Refusal::SeqAlreadySeen { seq: env.seq, last });
            }
        }
    }
    Ok(())
}

/// Records a key mismatch durably (so it survives a restart) and in memory, outside the
/// memory lock; a no-op when already flagged. Then refuses the report as a mismatch.
pub(super) async fn refuse_mismatch(app: &App, key: &NodeKey, key_id: Option<&str>) -> Refusal {
    match flag_mismatch(app, key, key_id).await {
        Ok(()) => Refusal::KeyMismatch,
        Err(store_refusal) => store_refusal,
    }
}

async fn flag_mismatch(app: &App, key: &NodeKey, key_id: Option<&str>) -> Result<(), Refusal> {
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
            .map_err(|_| Refusal::StoreUnavailable)?;
        if let Some(e) = app.mem.lock().map.get_mut(key) {
            e.key_mismatch = true;
        }
        tracing::warn!(node_type = %key.0, node_id = %key.1, presented_key = key_id, "key mismatch: report signed by an unpinned key refused");
    }
    Ok(())
}
