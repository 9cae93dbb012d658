//! Nodes: first-contact pins, key-mismatch flags, the latest report per node with its
//! replay state, and the durable batch ingest awaits before its 200.
//!
//! Also the two records that make `nodes forget` safe (docs/security.md, "Replay and
//! pinning"): `forgotten_keys`, a bounded tombstone of every key `nodes forget` removed,
//! which may not pin again unless the operator names it; and `key_approvals`, the one
//! fingerprint an operator allowed to pin next for a forgotten node
//! (`nodes forget NODE --accept-key FINGERPRINT`). Both are checked inside the durable
//! batch that writes the pin, so no race between reports can get around them.

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
    /// The replay floor other managers of a shared store reported: boot ids oldest first,
    /// each with the highest seq any manager accepted (empty without a shared store).
    pub floor: Vec<(String, u64)>,
}

/// A node's row with its last report time; [`node_row`] reads it.
const NODE_ROW: &str = "SELECT n.node_type, n.node_id, n.name, n.pubkey, n.key_mismatch, n.mismatch_key, n.private_ip, n.first_seen_ms, l.received_ms
     FROM nodes n LEFT JOIN latest l ON l.node_type = n.node_type AND l.node_id = n.node_id";

fn node_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRow> {
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
/// racing first contact learns which key won, or why the key may not be pinned.
pub type PinOutcome = Vec<Result<Option<String>, PinRefused>>;

/// Why a first-contact pin was not written (nor the report's transitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinRefused {
    /// The key was removed by `nodes forget` and the operator has not named it again.
    Forgotten,
    /// The operator approved another fingerprint (or the report is unsigned).
    NotApproved { expected: String },
}

/// Keys remembered as forgotten; the oldest tombstones go first. Bounded so that forget
/// cannot grow the store without limit; a key forgotten this many forgets ago could pin
/// again by trust on first use, but only with a fresh signature (a captured report is
/// refused by the send-time window), i.e. only by someone holding its private key.
pub const TOMBSTONES_KEPT: usize = 4096;

/// A node removed by `nodes forget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    pub row: NodeRow,
    /// Fingerprint of the key it had pinned, now tombstoned.
    pub fingerprint: Option<String>,
}

/// What `nodes forget` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgetOutcome {
    Forgotten(Forgotten),
    NoMatch,
    /// The selector names several nodes: nothing was removed; the operator must give the
    /// node id (and `--type` when ids repeat across types).
    Ambiguous(Vec<NodeRow>),
}

/// Boots remembered per node; older ones are dropped (a report from a forgotten boot id is
/// treated as a new boot, which is why the window is generous).
pub const BOOTS_KEPT: usize = 16;

impl Store {
    pub fn list_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "{NODE_ROW} ORDER BY n.node_type, n.name, n.node_id"
        ))?;
        let rows = st.query_map([], node_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The nodes of `keys` that still exist, with their latest report and boots (the
    /// reload of only what another connection changed: `changes`).
    pub fn load_nodes_of(
        &self,
        keys: &[(NodeType, String)],
    ) -> Result<Vec<StoredNode>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "{NODE_ROW} WHERE n.node_type = ?1 AND n.node_id = ?2"
        ))?;
        let mut rows = Vec::with_capacity(keys.len());
        for (t, id) in keys {
            if let Some(r) = st.query_row(params![t.as_str(), id], node_row).optional()? {
                rows.push(r);
            }
        }
        self.stored(rows)
    }

    /// Forgets every node whose id or name is `selector` (optionally only of `node_type`):
    /// its pin, key-mismatch flag, latest report and replay state. The next report pins
    /// afresh. Transition history is kept for the audit trail. Returns how many went.
    ///
    /// This is `cfy cluster remove`'s path (5.0.5 compatible: a removed manager that
    /// joins again with the same key is accepted), so it does not tombstone the key; a
    /// captured report still cannot re-pin it once the send-time window has passed. The
    /// CLI's `nodes forget` uses [`Store::forget_one`], which tombstones and refuses an
    /// ambiguous selector.
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

    /// `nodes forget`: forgets the one node `selector` names (an exact node id first,
    /// else a name) and tombstones its key. With `accept`, a fingerprint
    /// ([`sr_protocol::signing::parse_fingerprint`]'s canonical form), only a key of that
    /// fingerprint may pin next, even a tombstoned one; without it, any key that is not
    /// tombstoned (trust on first use).
    pub fn forget_one(
        &self,
        selector: &str,
        node_type: Option<NodeType>,
        accept: Option<&str>,
        now_ms: i64,
    ) -> Result<ForgetOutcome, StoreError> {
        let rows = self.nodes_matching(selector, node_type)?;
        let by_id: Vec<NodeRow> = rows
            .iter()
            .filter(|r| r.node_id == selector)
            .cloned()
            .collect();
        let mut chosen = if by_id.is_empty() { rows } else { by_id };
        let row = match chosen.len() {
            0 => return Ok(ForgetOutcome::NoMatch),
            1 => chosen.remove(0),
            _ => return Ok(ForgetOutcome::Ambiguous(chosen)),
        };
        let tx = super::immediate(&self.conn)?;
        let fingerprint = forget_row(&tx, &row, now_ms)?;
        if let Some(fp) = accept {
            tx.execute(
                "DELETE FROM forgotten_keys WHERE fingerprint = ?1",
                params![fp],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO key_approvals (node_type, node_id, fingerprint, approved_ms) VALUES (?1, ?2, ?3, ?4)",
                params![row.node_type, row.node_id, fp, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(ForgetOutcome::Forgotten(Forgotten { row, fingerprint }))
    }

    fn nodes_matching(
        &self,
        selector: &str,
        node_type: Option<NodeType>,
    ) -> Result<Vec<NodeRow>, StoreError> {
        Ok(self
            .list_nodes()?
            .into_iter()
            .filter(|r| r.node_id == selector || r.name == selector)
            .filter(|r| node_type.is_none_or(|t| t.as_str() == r.node_type))
            .collect())
    }

    /// Tombstoned fingerprints, newest first (for tests and `nodes list`).
    pub fn forgotten_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT fingerprint FROM forgotten_keys ORDER BY forgotten_ms DESC, rowid DESC",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every node with its latest report and boots, for the server's memory.
    pub fn load_nodes(&self) -> Result<Vec<StoredNode>, StoreError> {
        self.stored(self.list_nodes()?)
    }

    fn stored(&self, rows: Vec<NodeRow>) -> Result<Vec<StoredNode>, StoreError> {
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
            let floor = self.floor_of(&row.node_type, &row.node_id)?;
            out.push(StoredNode {
                row,
                node_type,
                latest,
                boots,
                floor,
            });
        }
        Ok(out)
    }

    /// Applies durable writes in one transaction (one fsync for the whole batch: group
    /// commit). Returns, for each `Pin`, the key pinned after the batch.
    pub fn commit_durable(&mut self, writes: &[DurableWrite]) -> Result<PinOutcome, StoreError> {
        // Whether the write-behind's map is true up to now (see `Written`).
        let in_step = self
            .written
            .version
            .filter(|v| v.1 == self.conn.total_changes());
        let tx = super::immediate(&self.conn)?;
        let mut pins = Vec::new();
        // Nodes whose latest pin attempt in this batch was refused: their transitions,
        // which follow the pin in the same request, are not written either.
        let mut refused: std::collections::HashSet<(NodeType, &str)> = Default::default();
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
                    if let Err(why) = may_pin(&tx, *node_type, node_id, key.as_deref())? {
                        refused.insert((*node_type, node_id.as_str()));
                        pins.push(Err(why));
                        continue;
                    }
                    refused.remove(&(*node_type, node_id.as_str()));
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
                    pins.push(Ok(pinned));
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
                    if refused.contains(&(*node_type, node_id.as_str())) {
                        continue;
                    }
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
        // A pin may create the node's row afresh (after a forget): its next flush writes
        // name, address and boot again. Nothing else here touches them.
        for w in writes {
            if let DurableWrite::Pin {
                node_type, node_id, ..
            } = w
            {
                self.written.forget(*node_type, node_id);
            }
        }
        self.written.version = in_step.map(|(v, _)| (v, self.conn.total_changes()));
        Ok(pins)
    }

    /// Writes the latest reports behind (one transaction). Rows of nodes forgotten in the
    /// meantime are skipped, so a flush never resurrects a forgotten node.
    pub fn write_latest(&mut self, rows: &[LatestRow]) -> Result<(), StoreError> {
        let tx = super::immediate(&self.conn)?;
        // Inside the write lock: no other connection can commit until ours is done.
        let version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let written = &mut self.written;
        if written.version != Some((version, tx.total_changes())) {
            written.clear();
        }
        // Until this commits, what the map says may be rolled back.
        written.version = None;
        // Per row: `Some(true)` written (first row or update), `Some(false)` node gone.
        let mut outcome: Vec<bool> = Vec::with_capacity(rows.len());
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
            // `LIMIT -1 OFFSET ?3`, not `NOT IN (... LIMIT ?3)`: SQLite plans with a bound
            // LIMIT's value, so binding it again made every execution parse the statement
            // anew (~100k instructions per new boot, BENCHMARKS.md "Instructions per report").
            let mut trim = tx.prepare_cached(
                "DELETE FROM boots WHERE rowid IN
                 (SELECT rowid FROM boots WHERE node_type = ?1 AND node_id = ?2
                  ORDER BY first_seen_ms DESC, rowid DESC LIMIT -1 OFFSET ?3)",
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
                let mut known = written.get(r.node_type, &r.node_id);
                if update.execute(values)? == 0 {
                    if !exists.exists(params![t, r.node_id])? {
                        outcome.push(false);
                        continue;
                    }
                    insert.execute(values)?;
                    // The node's first row: its `nodes` row and boots are written afresh.
                    known = None;
                }
                outcome.push(true);
                // Skipped only when the store is known to hold these values already, i.e.
                // when the statement would change nothing.
                if !known.is_some_and(|k| k.name == r.name && k.private_ip == r.private_ip) {
                    node.execute(params![t, r.node_id, r.name, r.private_ip])?;
                }
                // Boots are written only when a new one appears: the current boot's
                // sequence travels in `latest`, so a steady node costs one row per flush.
                if let Some(b) = &r.boot_id {
                    if known.and_then(|k| k.boot_id.as_deref()) != Some(b.as_str())
                        && boot.execute(params![t, r.node_id, b, r.seq as i64, r.received_ms])? == 1
                    {
                        trim.execute(params![t, r.node_id, BOOTS_KEPT as i64])?;
                    }
                }
            }
        }
        tx.commit()?;
        for (r, present) in rows.iter().zip(outcome) {
            if present {
                written.remember(r);
            } else {
                written.forget(r.node_type, &r.node_id);
            }
        }
        written.version = Some((version, self.conn.total_changes()));
        Ok(())
    }
}

/// What the write-behind last committed of each node's `nodes` row (name, address) and
/// current boot, so that a flush skips the two statements that would change nothing: in
/// steady state they were two of the three statements a row cost (BENCHMARKS.md,
/// "Instructions per report"). Believed only while nothing else wrote: another
/// connection's commit moves `PRAGMA data_version`, and this connection's other writes
/// move its `total_changes` past the mark (only [`Store::commit_durable`] moves the mark
/// along, forgetting the nodes it pins); either empties the map before it is used.
#[derive(Default)]
pub(super) struct Written {
    /// `data_version` and `total_changes` while the map is known to be true.
    version: Option<(i64, u64)>,
    /// Per node type, by node id; at most one entry per node in the store.
    nodes: [std::collections::HashMap<String, WrittenNode>; 4],
}

#[derive(PartialEq)]
struct WrittenNode {
    name: String,
    private_ip: Option<String>,
    boot_id: Option<String>,
}

impl Written {
    fn slot(t: NodeType) -> usize {
        match t {
            NodeType::Manager => 0,
            NodeType::Db => 1,
            NodeType::Broker => 2,
            NodeType::Node => 3,
        }
    }

    fn get(&self, t: NodeType, id: &str) -> Option<&WrittenNode> {
        self.nodes[Self::slot(t)].get(id)
    }

    fn remember(&mut self, r: &LatestRow) {
        let map = &mut self.nodes[Self::slot(r.node_type)];
        match map.get_mut(r.node_id.as_str()) {
            Some(k)
                if k.name == r.name && k.private_ip == r.private_ip && k.boot_id == r.boot_id => {}
            Some(k) => {
                k.name.clone_from(&r.name);
                k.private_ip.clone_from(&r.private_ip);
                k.boot_id.clone_from(&r.boot_id);
            }
            None => {
                map.insert(
                    r.node_id.clone(),
                    WrittenNode {
                        name: r.name.clone(),
                        private_ip: r.private_ip.clone(),
                        boot_id: r.boot_id.clone(),
                    },
                );
            }
        }
    }

    fn forget(&mut self, t: NodeType, id: &str) {
        self.nodes[Self::slot(t)].remove(id);
    }

    fn clear(&mut self) {
        self.nodes.iter_mut().for_each(|m| m.clear());
    }
}

/// Whether `key` may be pinned to the node: the operator's approval, if any, decides;
/// otherwise any key that is not tombstoned. An approval is used up by the pin it allows.
fn may_pin(
    tx: &rusqlite::Transaction<'_>,
    node_type: NodeType,
    node_id: &str,
    key: Option<&str>,
) -> Result<Result<(), PinRefused>, StoreError> {
    let fingerprint = key.and_then(sr_protocol::signing::fingerprint_of_key_id);
    let approved: Option<String> = tx
        .prepare_cached(
            "SELECT fingerprint FROM key_approvals WHERE node_type = ?1 AND node_id = ?2",
        )?
        .query_row(params![node_type.as_str(), node_id], |r| r.get(0))
        .optional()?;
    if let Some(expected) = approved {
        if fingerprint.as_deref() != Some(expected.as_str()) {
            return Ok(Err(PinRefused::NotApproved { expected }));
        }
        tx.prepare_cached("DELETE FROM key_approvals WHERE node_type = ?1 AND node_id = ?2")?
            .execute(params![node_type.as_str(), node_id])?;
        return Ok(Ok(()));
    }
    let Some(fp) = fingerprint else {
        return Ok(Ok(()));
    };
    let forgotten = tx
        .prepare_cached("SELECT 1 FROM forgotten_keys WHERE fingerprint = ?1")?
        .exists(params![fp])?;
    Ok(if forgotten {
        Err(PinRefused::Forgotten)
    } else {
        Ok(())
    })
}

/// Deletes the node (its latest report and boots go with it) and tombstones its pinned
/// key, trimming the tombstones to [`TOMBSTONES_KEPT`]. Returns the key's fingerprint.
pub(super) fn forget_row(
    tx: &rusqlite::Transaction<'_>,
    row: &NodeRow,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    tx.execute(
        "DELETE FROM nodes WHERE node_type = ?1 AND node_id = ?2",
        params![row.node_type, row.node_id],
    )?;
    // A stale approval must not outlive the node it was given for.
    tx.execute(
        "DELETE FROM key_approvals WHERE node_type = ?1 AND node_id = ?2",
        params![row.node_type, row.node_id],
    )?;
    let fingerprint = row
        .pinned_key
        .as_deref()
        .and_then(sr_protocol::signing::fingerprint_of_key_id);
    if let Some(fp) = &fingerprint {
        tx.execute(
            "INSERT OR REPLACE INTO forgotten_keys (fingerprint, node_type, node_id, forgotten_ms) VALUES (?1, ?2, ?3, ?4)",
            params![fp, row.node_type, row.node_id, now_ms],
        )?;
        tx.execute(
            "DELETE FROM forgotten_keys WHERE fingerprint NOT IN
             (SELECT fingerprint FROM forgotten_keys ORDER BY forgotten_ms DESC, rowid DESC LIMIT ?1)",
            params![TOMBSTONES_KEPT as i64],
        )?;
    }
    Ok(fingerprint)
}

#[cfg(test)]
mod forget_tests {
    use super::*;
    use sr_protocol::signing::NodeKey;

    fn key_id() -> String {
        NodeKey::from_pkcs8(&NodeKey::generate_pkcs8().unwrap())
            .unwrap()
            .key_id()
    }

    fn pin(id: &str, name: &str, key: &str) -> DurableWrite {
        DurableWrite::Pin {
            node_type: NodeType::Db,
            node_id: id.into(),
            name: name.into(),
            key: Some(key.into()),
            private_ip: None,
            at_ms: 1,
        }
    }

    fn fp(key: &str) -> String {
        sr_protocol::signing::fingerprint_of_key_id(key).unwrap()
    }

    #[test]
    fn a_forgotten_key_cannot_pin_again_unless_the_operator_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let (old, new) = (key_id(), key_id());
        s.commit_durable(&[pin("n1", "db1", &old)]).unwrap();
        let out = s.forget_one("db1", None, None, 5).unwrap();
        assert!(
            matches!(&out, ForgetOutcome::Forgotten(f) if f.fingerprint.as_deref() == Some(fp(&old).as_str()))
        );
        assert_eq!(s.forgotten_keys().unwrap(), vec![fp(&old)]);
        assert_eq!(
            s.commit_durable(&[pin("n1", "db1", &old)]).unwrap(),
            vec![Err(PinRefused::Forgotten)]
        );
        assert!(
            s.list_nodes().unwrap().is_empty(),
            "a refused pin writes no node"
        );
        // Trust on first use still works for a key never forgotten.
        assert_eq!(
            s.commit_durable(&[pin("n1", "db1", &new)]).unwrap(),
            vec![Ok(Some(new.clone()))]
        );
        // Naming the old key again lets it (and only it) pin.
        s.forget_one("n1", Some(NodeType::Db), Some(&fp(&old)), 6)
            .unwrap();
        assert_eq!(
            s.commit_durable(&[pin("n1", "db1", &new)]).unwrap(),
            vec![Err(PinRefused::NotApproved { expected: fp(&old) })]
        );
        assert_eq!(
            s.commit_durable(&[pin("n1", "db1", &old)]).unwrap(),
            vec![Ok(Some(old.clone()))]
        );
        assert!(!s.forgotten_keys().unwrap().contains(&fp(&old)));
    }

    #[test]
    fn forget_refuses_a_name_shared_by_several_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.commit_durable(&[pin("real", "dbA", &key_id()), pin("fake", "dbA", &key_id())])
            .unwrap();
        match s.forget_one("dbA", None, None, 5).unwrap() {
            ForgetOutcome::Ambiguous(rows) => assert_eq!(rows.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.list_nodes().unwrap().len(), 2, "nothing was removed");
        // The node id picks exactly one.
        assert!(matches!(
            s.forget_one("fake", None, None, 5).unwrap(),
            ForgetOutcome::Forgotten(f) if f.row.node_id == "fake"
        ));
        assert_eq!(
            s.forget_one("nobody", None, None, 5).unwrap(),
            ForgetOutcome::NoMatch
        );
    }

    #[test]
    fn tombstones_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        // Insert directly past the bound, then one forget trims to it.
        for i in 0..TOMBSTONES_KEPT + 3 {
            s.conn
                .execute(
                    "INSERT INTO forgotten_keys (fingerprint, node_type, node_id, forgotten_ms) VALUES (?1, 'db', 'x', ?2)",
                    params![format!("SHA256:{i}"), i as i64],
                )
                .unwrap();
        }
        s.commit_durable(&[pin("n1", "db1", &key_id())]).unwrap();
        s.forget_one("n1", None, None, i64::MAX).unwrap();
        assert_eq!(s.forgotten_keys().unwrap().len(), TOMBSTONES_KEPT);
    }
}
