//! Nodes: first-contact pins, key-mismatch flags, the latest report per node with its
//! replay state, and the durable batch ingest awaits before its 200.

use super::transitions::TransitionRow;
use super::{node_type_of, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use sr_protocol::NodeType;

/// A node row as `nodes list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub node_type: String,
    pub node_id: String,
    pub name: String,
    /// base64url Ed25519 public key pinned at first contact; `None` for unsigned legacy nodes.
    pub pinned_key: Option<String>,
    pub key_mismatch: bool,
    /// The other key that was presented, for the operator to compare.
    pub mismatch_key: Option<String>,
    pub private_ip: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: Option<i64>,
}

/// The latest accepted report of a node, as written behind and restored on start.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub node_type: NodeType,
    pub node_id: String,
    pub name: String,
    pub private_ip: Option<String>,
    pub received_ms: i64,
    pub skew_ms: i64,
    pub signed: bool,
    /// The exact verified body bytes; decoded again on load.
    pub body: Vec<u8>,
    /// Replay state: current boot id and the highest sequence accepted in it.
    pub boot_id: Option<String>,
    pub seq: u64,
}

/// One node's full stored state, for restoring memory on start or after an external change.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNode {
    pub row: NodeRow,
    pub node_type: NodeType,
    pub latest: Option<LatestRow>,
    /// Boot ids seen, oldest first, with the highest seq accepted in each.
    pub boots: Vec<(String, u64)>,
}

/// Writes that must be on disk before the collector answers 200.
#[derive(Debug, Clone, PartialEq)]
pub enum DurableWrite {
    /// First contact: pin `key` (if any) to the node. Never replaces an existing pin.
    Pin {
        node_type: NodeType,
        node_id: String,
        name: String,
        key: Option<String>,
        private_ip: Option<String>,
        at_ms: i64,
    },
    /// A valid signature by a different key arrived for a pinned node.
    FlagMismatch {
        node_type: NodeType,
        node_id: String,
        key: String,
    },
    Transitions {
        node_type: NodeType,
        node_id: String,
        received_ms: i64,
        rows: Vec<TransitionRow>,
    },
}

/// Result of a durable batch: for every `Pin`, the key actually pinned afterwards, so a
/// racing first contact learns which key won.
pub type PinOutcome = Vec<Option<String>>;

/// Boots remembered per node; older ones are dropped (a report from a forgotten boot id is
/// treated as a new boot, which is why the window is generous).
pub const BOOTS_KEPT: usize = 16;

impl Store {
    pub fn list_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT n.node_type, n.node_id, n.name, n.pubkey, n.key_mismatch, n.mismatch_key, n.private_ip, n.first_seen_ms, l.received_ms
             FROM nodes n LEFT JOIN latest l ON l.node_type = n.node_type AND l.node_id = n.node_id
             ORDER BY n.node_type, n.name, n.node_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(NodeRow {
                node_type: r.get(0)?,
                node_id: r.get(1)?,
                name: r.get(2)?,
                pinned_key: r.get(3)?,
                key_mismatch: r.get::<_, i64>(4)? != 0,
                mismatch_key: r.get(5)?,
                private_ip: r.get(6)?,
                first_seen_ms: r.get(7)?,
                last_seen_ms: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets every node whose id or name is `selector` (optionally only of `node_type`):
    /// its pin, key-mismatch flag, latest report and replay state. The next report pins
    /// afresh. Transition history is kept for the audit trail. Returns how many went.
    pub fn forget_node(
        &self,
        selector: &str,
        node_type: Option<NodeType>,
    ) -> Result<usize, StoreError> {
        let t = node_type.map(|t| t.as_str().to_string());
        Ok(self.conn.execute(
            "DELETE FROM nodes WHERE (node_id = ?1 OR name = ?1) AND (?2 IS NULL OR node_type = ?2)",
            params![selector, t],
        )?)
    }

    /// Every node with its latest report and boots, for the server's memory.
    pub fn load_nodes(&self) -> Result<Vec<StoredNode>, StoreError> {
        let rows = self.list_nodes()?;
        let mut latest_st = self.conn.prepare(
            "SELECT received_ms, skew_ms, signed, body, boot_id, seq FROM latest WHERE node_type = ?1 AND node_id = ?2",
        )?;
        let mut boots_st =
            self.conn.prepare("SELECT boot_id, first_seq FROM boots WHERE node_type = ?1 AND node_id = ?2 ORDER BY first_seen_ms, rowid")?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let node_type = node_type_of(&row.node_type)?;
            let mut boots: Vec<(String, u64)> = boots_st
                .query_map(params![row.node_type, row.node_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<_, _>>()?;
            let latest = latest_st
                .query_row(params![row.node_type, row.node_id], |r| {
                    Ok(LatestRow {
                        node_type,
                        node_id: row.node_id.clone(),
                        name: row.name.clone(),
                        private_ip: row.private_ip.clone(),
                        received_ms: r.get(0)?,
                        skew_ms: r.get(1)?,
                        signed: r.get::<_, i64>(2)? != 0,
                        body: r.get(3)?,
                        boot_id: r.get(4)?,
                        seq: r.get::<_, i64>(5)? as u64,
                    })
                })
                .optional()?;
            // The current boot's sequence lives with the latest report (written every
            // flush); the boots table only orders earlier boots, whose reports are refused.
            if let Some(l) = &latest {
                if let Some(b) = &l.boot_id {
                    match boots.iter_mut().find(|x| &x.0 == b) {
                        Some(x) => x.1 = l.seq,
                        None => boots.push((b.clone(), l.seq)),
                    }
                }
            }
            out.push(StoredNode {
                row,
                node_type,
                latest,
                boots,
            });
        }
        Ok(out)
    }

    /// Applies durable writes in one transaction (one fsync for the whole batch: group
    /// commit). Returns, for each `Pin`, the key pinned after the batch.
    pub fn commit_durable(&mut self, writes: &[DurableWrite]) -> Result<PinOutcome, StoreError> {
        let tx = self.conn.transaction()?;
        let mut pins = Vec::new();
        for w in writes {
            match w {
                DurableWrite::Pin {
                    node_type,
                    node_id,
                    name,
                    key,
                    private_ip,
                    at_ms,
                } => {
                    // Cached statements: a first-contact wave pins thousands of nodes, and
                    // parsing the SQL again for each one showed in the benchmark.
                    tx.prepare_cached(
                        "INSERT INTO nodes (node_type, node_id, name, pubkey, private_ip, first_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (node_type, node_id) DO UPDATE SET pubkey = COALESCE(nodes.pubkey, excluded.pubkey)",
                    )?
                    .execute(params![node_type.as_str(), node_id, name, key, private_ip, at_ms])?;
                    let pinned: Option<String> = tx
                        .prepare_cached(
                            "SELECT pubkey FROM nodes WHERE node_type = ?1 AND node_id = ?2",
                        )?
                        .query_row(params![node_type.as_str(), node_id], |r| r.get(0))?;
                    pins.push(pinned);
                }
                DurableWrite::FlagMismatch {
                    node_type,
                    node_id,
                    key,
                } => {
                    tx.execute(
                        "UPDATE nodes SET key_mismatch = 1, mismatch_key = ?3 WHERE node_type = ?1 AND node_id = ?2",
                        params![node_type.as_str(), node_id, key],
                    )?;
                }
                DurableWrite::Transitions {
                    node_type,
                    node_id,
                    received_ms,
                    rows,
                } => {
                    let mut st = tx.prepare_cached(
                        "INSERT OR IGNORE INTO transitions (node_type, node_id, boot_id, seq, at_ms, received_ms, service, from_status, to_status, reasons)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?;
                    for t in rows {
                        st.execute(params![
                            node_type.as_str(),
                            node_id,
                            t.boot_id,
                            t.seq as i64,
                            t.at_ms,
                            received_ms,
                            t.service,
                            t.from,
                            t.to,
                            t.reasons_json
                        ])?;
                    }
                    drop(st);
                    super::transitions::keep_newest(
                        &tx,
                        *node_type,
                        node_id,
                        self.retention.per_node,
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(pins)
    }

    /// Writes the latest reports behind (one transaction). Rows of nodes forgotten in the
    /// meantime are skipped, so a flush never resurrects a forgotten node.
    pub fn write_latest(&mut self, rows: &[LatestRow]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            // Steady state is one UPDATE per row (measured cheaper than an upsert); only a
            // node's first row is inserted, after checking that the node still exists (it
            // may have been forgotten since its report was accepted).
            let mut update = tx.prepare_cached(
                "UPDATE latest SET received_ms = ?3, skew_ms = ?4, signed = ?5, body = ?6, boot_id = ?7, seq = ?8
                 WHERE node_type = ?1 AND node_id = ?2",
            )?;
            let mut exists =
                tx.prepare_cached("SELECT 1 FROM nodes WHERE node_type = ?1 AND node_id = ?2")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO latest (node_type, node_id, received_ms, skew_ms, signed, body, boot_id, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut node = tx.prepare_cached(
                "UPDATE nodes SET name = ?3, private_ip = ?4 WHERE node_type = ?1 AND node_id = ?2
                 AND (name IS NOT ?3 OR private_ip IS NOT ?4)",
            )?;
            let mut boot = tx.prepare_cached(
                "INSERT OR IGNORE INTO boots (node_type, node_id, boot_id, first_seq, first_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut trim = tx.prepare_cached(
                "DELETE FROM boots WHERE node_type = ?1 AND node_id = ?2 AND boot_id NOT IN
                 (SELECT boot_id FROM boots WHERE node_type = ?1 AND node_id = ?2 ORDER BY first_seen_ms DESC, rowid DESC LIMIT ?3)",
            )?;
            for r in rows {
                let t = r.node_type.as_str();
                let values = params![
                    t,
                    r.node_id,
                    r.received_ms,
                    r.skew_ms,
                    r.signed as i64,
                    r.body,
                    r.boot_id,
                    r.seq as i64
                ];
                if update.execute(values)? == 0 {
                    if !exists.exists(params![t, r.node_id])? {
                        continue;
                    }
                    insert.execute(values)?;
                }
                node.execute(params![t, r.node_id, r.name, r.private_ip])?;
                // Boots are written only when a new one appears: the current boot's
                // sequence travels in `latest`, so a steady node costs one row per flush.
                if let Some(b) = &r.boot_id {
                    if boot.execute(params![t, r.node_id, b, r.seq as i64, r.received_ms])? == 1 {
                        trim.execute(params![t, r.node_id, BOOTS_KEPT as i64])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}
