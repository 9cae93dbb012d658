//! The status-transition history agents report, deduplicated by `(node, boot_id, seq)`,
//! and its retention: a count per node and an age, both enforced here.
//!
//! Each row has an `id` (AUTOINCREMENT: increasing in commit order, never reused) that
//! readers page and resume by (ids may skip: an ignored duplicate spends one): `GET /api/v3.1/history` ([`Store::history`]) and the event
//! stream ([`Store::history`] with `after`). Rows deleted by retention are gone for them too.

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

/// What `GET /api/v3.1/history` asks for; every field narrows the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    /// A node id or node name.
    pub node: Option<String>,
    /// A service type (`manager`, `db`, `broker`) or a service a node reports (`Patroni`).
    pub service: Option<String>,
    /// Received at or after (collector clock, Unix ms).
    pub since_ms: Option<i64>,
    /// Received at or before.
    pub until_ms: Option<i64>,
    /// Only ids above this one (resume), answered oldest first.
    pub after_id: Option<i64>,
    pub limit: usize,
}

/// One stored transition with what a reader needs to show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub node_type: String,
    pub node_id: String,
    /// `None` once the node was forgotten (its transitions stay).
    pub node_name: Option<String>,
    /// `None` for the node's own status; else the service it reports.
    pub service: Option<String>,
    pub from: String,
    pub to: String,
    /// The node's clock, Unix ms.
    pub at_ms: i64,
    /// The collector's clock, Unix ms.
    pub received_ms: i64,
    pub boot_id: String,
    pub seq: u64,
    pub reasons_json: String,
}

impl Store {
    /// Transitions matching `f`: newest first, or oldest first above `f.after_id`. Maintenance
    /// events (node type `maintenance`, [`super::maintenance`]) are in it too: `node` and
    /// `service` match them by their target.
    pub fn history(&self, f: &HistoryFilter) -> Result<Vec<HistoryRow>, StoreError> {
        let service_type = f
            .service
            .as_deref()
            .and_then(|s| s.parse::<NodeType>().ok())
            .map(|t| t.as_str());
        let order = if f.after_id.is_some() { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT t.id, t.node_type, t.node_id, n.name, t.service, t.from_status, t.to_status,
                    t.at_ms, t.received_ms, t.boot_id, t.seq, t.reasons
             FROM transitions t LEFT JOIN nodes n USING (node_type, node_id)
             WHERE (?1 IS NULL OR t.node_id = ?1 OR n.name = ?1)
               AND (?2 IS NULL OR t.node_type = ?2
                    OR (t.node_type = 'maintenance' AND t.node_id = ?2))
               AND (?3 IS NULL OR ?2 IS NOT NULL OR t.service = ?3 COLLATE NOCASE
                    OR (t.node_type = 'maintenance' AND t.node_id = ?3 COLLATE NOCASE))
               AND (?4 IS NULL OR t.received_ms >= ?4)
               AND (?5 IS NULL OR t.received_ms <= ?5)
               AND (?6 IS NULL OR t.id > ?6)
             ORDER BY t.id {order} LIMIT ?7"
        );
        let mut st = self.conn.prepare_cached(&sql)?;
        let rows = st.query_map(
            params![
                f.node,
                service_type,
                f.service,
                f.since_ms,
                f.until_ms,
                f.after_id,
                f.limit as i64
            ],
            row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The events after `after_id`, oldest first, at most `limit`: what the event stream
    /// reads on every commit, once per watcher. A range on the id key alone, unlike
    /// [`Store::history`] whose optional filters (`?6 IS NULL OR id > ?6`) keep SQLite
    /// from using the key and make it scan the table (measured in BENCHMARKS.md).
    pub fn events_after(&self, after_id: i64, limit: usize) -> Result<Vec<HistoryRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT t.id, t.node_type, t.node_id, n.name, t.service, t.from_status, t.to_status,
                    t.at_ms, t.received_ms, t.boot_id, t.seq, t.reasons
             FROM transitions t LEFT JOIN nodes n USING (node_type, node_id)
             WHERE t.id > ?1 ORDER BY t.id LIMIT ?2",
        )?;
        let rows = st.query_map(params![after_id, limit as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The highest transition id ever assigned (0 before the first), deleted rows included.
    pub fn last_transition_id(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'transitions'",
                [],
                |r| r.get(0),
            )
            .or_else(|_| {
                self.conn
                    .query_row("SELECT coalesce(max(id), 0) FROM transitions", [], |r| {
                        r.get(0)
                    })
            })?)
    }
}

/// One row of the history queries' columns.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryRow> {
    Ok(HistoryRow {
        id: r.get(0)?,
        node_type: r.get(1)?,
        node_id: r.get(2)?,
        node_name: r.get(3)?,
        service: r.get(4)?,
        from: r.get(5)?,
        to: r.get(6)?,
        at_ms: r.get(7)?,
        received_ms: r.get(8)?,
        boot_id: r.get(9)?,
        seq: r.get::<_, i64>(10)? as u64,
        reasons_json: r.get(11)?,
    })
}

/// Gives a store made before transition ids their `id` column: the table is rebuilt with
/// ids in receive order, inside one `BEGIN IMMEDIATE` (which also serialises two processes
/// opening the same old store: the second finds the column and does nothing).
pub(super) fn migrate_ids(conn: &Connection) -> rusqlite::Result<()> {
    let has_id = |c: &Connection| -> rusqlite::Result<bool> {
        c.prepare("SELECT 1 FROM pragma_table_info('transitions') WHERE name = 'id'")?
            .exists([])
    };
    if has_id(conn)? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        if has_id(conn)? {
            return Ok(());
        }
        conn.execute_batch(
            "CREATE TABLE transitions_with_ids (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                node_type TEXT NOT NULL,
                node_id TEXT NOT NULL,
                boot_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                at_ms INTEGER NOT NULL,
                received_ms INTEGER NOT NULL,
                service TEXT,
                from_status TEXT NOT NULL,
                to_status TEXT NOT NULL,
                reasons TEXT NOT NULL,
                UNIQUE (node_type, node_id, boot_id, seq)
            );
            INSERT INTO transitions_with_ids (node_type, node_id, boot_id, seq, at_ms,
                received_ms, service, from_status, to_status, reasons)
            SELECT node_type, node_id, boot_id, seq, at_ms, received_ms, service,
                from_status, to_status, reasons
            FROM transitions ORDER BY received_ms, node_type, node_id, seq;
            DROP TABLE transitions;
            ALTER TABLE transitions_with_ids RENAME TO transitions;
            CREATE INDEX IF NOT EXISTS transitions_received ON transitions (received_ms);",
        )
    })();
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DurableWrite, Retention};

    fn rows(node_id: &str, received_ms: i64, seqs: std::ops::Range<u64>) -> DurableWrite {
        DurableWrite::Transitions {
            node_type: NodeType::Db,
            node_id: node_id.into(),
            received_ms,
            rows: seqs
                .map(|seq| TransitionRow {
                    boot_id: "b1".into(),
                    seq,
                    at_ms: received_ms,
                    service: (seq % 2 == 0).then(|| "Patroni".to_string()),
                    from: "OK".into(),
                    to: "Fail".into(),
                    reasons_json: "[]".into(),
                })
                .collect(),
        }
    }

    fn all(s: &Store) -> Vec<HistoryRow> {
        s.history(&HistoryFilter {
            after_id: Some(0),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn a_store_made_before_ids_is_migrated_in_receive_order_and_keeps_deduplicating() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(crate::store::DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE transitions (node_type TEXT NOT NULL, node_id TEXT NOT NULL,
                    boot_id TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,
                    received_ms INTEGER NOT NULL, service TEXT, from_status TEXT NOT NULL,
                    to_status TEXT NOT NULL, reasons TEXT NOT NULL,
                    PRIMARY KEY (node_type, node_id, boot_id, seq));
                 INSERT INTO transitions VALUES ('db','n1','b1',2,0,200,NULL,'OK','Fail','[]');
                 INSERT INTO transitions VALUES ('db','n1','b1',1,0,100,NULL,'Fail','OK','[]');",
            )
            .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        let got = all(&s);
        assert_eq!(
            got.iter().map(|r| (r.id, r.seq)).collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
        s.commit_durable(&[rows("n1", 300, 2..4)]).unwrap();
        let got = all(&s);
        // Ids increase in commit order; they may skip (an ignored duplicate spends one).
        assert_eq!(
            got.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3],
            "seq 2 again is ignored"
        );
        assert!(got[2].id > 2);
        // A second open finds the column and changes nothing.
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(all(&s).len(), 3);
    }

    #[test]
    fn ids_are_never_reused_after_retention_deletes_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.set_retention(Retention {
            max_age_ms: 1000,
            per_node: 1000,
            ..Retention::default()
        });
        s.commit_durable(&[rows("n1", 10, 1..4)]).unwrap();
        assert_eq!(s.last_transition_id().unwrap(), 3);
        assert_eq!(s.sweep_old_transitions(1_000_000).unwrap(), 3);
        s.commit_durable(&[rows("n1", 1_000_000, 4..5)]).unwrap();
        assert_eq!(all(&s).iter().map(|r| r.id).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn history_filters_by_node_name_service_time_and_pages_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.commit_durable(&[
            DurableWrite::Pin {
                node_type: NodeType::Db,
                node_id: "id-1".into(),
                name: "db-one".into(),
                key: None,
                private_ip: None,
                at_ms: 1,
            },
            rows("id-1", 100, 1..5),
            rows("id-2", 200, 1..3),
        ])
        .unwrap();
        let q = |f: HistoryFilter| {
            s.history(&HistoryFilter { limit: 100, ..f })
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(HistoryFilter::default()),
            [6, 5, 4, 3, 2, 1],
            "newest first"
        );
        let by_name = q(HistoryFilter {
            node: Some("db-one".into()),
            ..Default::default()
        });
        assert_eq!(by_name, [4, 3, 2, 1]);
        assert_eq!(
            by_name,
            q(HistoryFilter {
                node: Some("id-1".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            q(HistoryFilter {
                service: Some("patroni".into()),
                ..Default::default()
            }),
            [6, 4, 2]
        );
        assert_eq!(
            q(HistoryFilter {
                service: Some("db".into()),
                ..Default::default()
            })
            .len(),
            6
        );
        assert_eq!(
            q(HistoryFilter {
                service: Some("broker".into()),
                ..Default::default()
            }),
            Vec::<i64>::new()
        );
        assert_eq!(
            q(HistoryFilter {
                since_ms: Some(150),
                ..Default::default()
            }),
            [6, 5]
        );
        assert_eq!(
            q(HistoryFilter {
                until_ms: Some(150),
                ..Default::default()
            }),
            [4, 3, 2, 1]
        );
        assert_eq!(
            q(HistoryFilter {
                after_id: Some(4),
                ..Default::default()
            }),
            [5, 6],
            "oldest first after an id"
        );
        assert_eq!(
            s.events_after(4, 100).unwrap(),
            s.history(&HistoryFilter {
                after_id: Some(4),
                limit: 100,
                ..Default::default()
            })
            .unwrap(),
            "the stream's read is the history's"
        );
        assert_eq!(s.events_after(0, 2).unwrap().len(), 2);
        assert_eq!(
            s.history(&HistoryFilter {
                limit: 2,
                ..Default::default()
            })
            .unwrap()
            .len(),
            2
        );
    }
}
