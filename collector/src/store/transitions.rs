//! The status-transition history agents report, deduplicated by `(node, boot_id, seq)`,
//! and its retention: a count per node and an age, both enforced here.

use super::{Store, StoreError};
use rusqlite::{params, Connection};
use sr_protocol::NodeType;

/// An agent-reported status transition, deduplicated by `(node, boot_id, seq)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionRow {
    pub boot_id: String,
    pub seq: u64,
    pub at_ms: i64,
    pub service: Option<String>,
    pub from: String,
    pub to: String,
    pub reasons_json: String,
}

impl Store {
    /// Transition history of one node, newest first, at most `limit` rows.
    pub fn transitions(
        &self,
        node_type: NodeType,
        node_id: &str,
        limit: usize,
    ) -> Result<Vec<TransitionRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT boot_id, seq, at_ms, service, from_status, to_status, reasons FROM transitions
             WHERE node_type = ?1 AND node_id = ?2 ORDER BY received_ms DESC, seq DESC LIMIT ?3",
        )?;
        let rows = st.query_map(params![node_type.as_str(), node_id, limit as i64], |r| {
            Ok(TransitionRow {
                boot_id: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                at_ms: r.get(2)?,
                service: r.get(3)?,
                from: r.get(4)?,
                to: r.get(5)?,
                reasons_json: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Deletes `node`'s transitions beyond the newest `keep` (the order [`Store::transitions`]
/// lists them in). Runs inside the transaction that inserted, so the table never holds
/// more than `keep` rows of a node after a commit.
pub(super) fn keep_newest(
    conn: &Connection,
    node_type: NodeType,
    node_id: &str,
    keep: usize,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM transitions WHERE rowid IN (
            SELECT rowid FROM transitions WHERE node_type = ?1 AND node_id = ?2
            ORDER BY received_ms DESC, seq DESC LIMIT -1 OFFSET ?3)",
    )?
    .execute(params![node_type.as_str(), node_id, keep as i64])?;
    Ok(())
}

impl Store {
    /// Deletes transitions received before `now_ms - max_age`. Returns how many.
    pub fn sweep_old_transitions(&self, now_ms: i64) -> Result<usize, StoreError> {
        let cutoff = now_ms.saturating_sub(self.retention.max_age_ms);
        Ok(self.conn.execute(
            "DELETE FROM transitions WHERE received_ms < ?1",
            params![cutoff],
        )?)
    }

    /// Rows in the transitions table, all nodes.
    pub fn transition_count(&self) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM transitions", [], |r| {
                r.get::<_, i64>(0)
            })? as usize)
    }
}
