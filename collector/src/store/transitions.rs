//! The status-transition history agents report, deduplicated by `(node, boot_id, seq)`.

use super::{Store, StoreError};
use rusqlite::params;
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
