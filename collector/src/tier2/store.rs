//! The tier-2 rows of the collector's SQLite store, through a connection of their own
//! (WAL lets it write beside the writer thread; every write is one IMMEDIATE
//! transaction): the latest summary per cluster with its pin and replay state, written
//! before the summary is acknowledged, and the heal decisions, the newest
//! [`HEAL_ROWS_KEPT`] kept.

use super::trust::Pin;
use rusqlite::{params, Connection};
use std::path::Path;
use std::sync::Mutex;

pub const HEAL_ROWS_KEPT: i64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tier2_clusters (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sent_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    summary BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tier2_heal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    cluster TEXT NOT NULL,
    node TEXT NOT NULL,
    decision TEXT NOT NULL,
    why TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tier2_heal_node ON tier2_heal (cluster, node, id);
";

/// A stored cluster row.
pub struct Row {
    pub name: String,
    pub pin: Pin,
    pub received_ms: i64,
    pub summary: Vec<u8>,
}

/// One heal history row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HealRow {
    pub id: i64,
    pub at: Option<String>,
    pub at_ms: i64,
    pub cluster: String,
    pub node: String,
    pub decision: String,
    pub why: String,
    pub detail: String,
}

#[derive(Default)]
pub struct Tier2Store {
    conn: Mutex<Option<Connection>>,
}

impl Tier2Store {
    /// Runs `f` on the connection, opening it (and the tables) first if needed; a failed
    /// call drops the connection so the next one reopens it. Blocking.
    fn with<T>(
        &self,
        state_dir: &Path,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let conn = Connection::open(state_dir.join(crate::store::DB_FILE))?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(SCHEMA)?;
            *guard = Some(conn);
        }
        let r = f(guard.as_mut().expect("opened above"));
        if r.is_err() {
            *guard = None;
        }
        r
    }

    pub fn load(&self, state_dir: &Path) -> rusqlite::Result<Vec<Row>> {
        self.with(state_dir, |c| {
            let mut st = c.prepare(
                "SELECT name, key_id, boot_id, seq, sent_ms, received_ms, summary FROM tier2_clusters",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Row {
                    name: r.get(0)?,
                    pin: Pin {
                        key_id: r.get(1)?,
                        boot_id: r.get(2)?,
                        seq: r.get::<_, i64>(3)? as u64,
                        sent_ms: r.get(4)?,
                    },
                    received_ms: r.get(5)?,
                    summary: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Durable before the summary is acknowledged.
    pub fn put(&self, state_dir: &Path, row: &Row) -> rusqlite::Result<()> {
        self.with(state_dir, |c| {
            let tx = crate::store::immediate(c)?;
            tx.execute(
                "INSERT INTO tier2_clusters (name, key_id, boot_id, seq, sent_ms, received_ms, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET key_id = ?2, boot_id = ?3, seq = ?4,
                   sent_ms = ?5, received_ms = ?6, summary = ?7",
                params![
                    row.name,
                    row.pin.key_id,
                    row.pin.boot_id,
                    row.pin.seq as i64,
                    row.pin.sent_ms,
                    row.received_ms,
                    row.summary
                ],
            )?;
            tx.commit()
        })
    }

    /// Forgets a cluster: its pin goes, so its next summary pins a key afresh.
    pub fn forget(&self, state_dir: &Path, name: &str) -> rusqlite::Result<bool> {
        self.with(state_dir, |c| {
            Ok(c.execute("DELETE FROM tier2_clusters WHERE name = ?1", [name])? > 0)
        })
    }

    pub fn record_heal(&self, state_dir: &Path, r: &HealRow) -> rusqlite::Result<i64> {
        self.with(state_dir, |c| {
            let tx = crate::store::immediate(c)?;
            tx.execute(
                "INSERT INTO tier2_heal (at_ms, cluster, node, decision, why, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.at_ms, r.cluster, r.node, r.decision, r.why, r.detail],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "DELETE FROM tier2_heal WHERE id <= ?1",
                [id - HEAL_ROWS_KEPT],
            )?;
            tx.commit()?;
            Ok(id)
        })
    }

    /// Newest first, optionally of one cluster and node.
    pub fn heal_history(
        &self,
        state_dir: &Path,
        cluster: Option<&str>,
        node: Option<&str>,
        limit: usize,
    ) -> rusqlite::Result<Vec<HealRow>> {
        self.with(state_dir, |c| {
            let mut st = c.prepare(
                "SELECT id, at_ms, cluster, node, decision, why, detail FROM tier2_heal
                 WHERE (?1 IS NULL OR cluster = ?1) AND (?2 IS NULL OR node = ?2)
                 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = st.query_map(params![cluster, node, limit as i64], |r| {
                let at_ms: i64 = r.get(1)?;
                Ok(HealRow {
                    id: r.get(0)?,
                    at: crate::rollup::rfc3339_ms(at_ms),
                    at_ms,
                    cluster: r.get(2)?,
                    node: r.get(3)?,
                    decision: r.get(4)?,
                    why: r.get(5)?,
                    detail: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The last run per node, to seed the policy after a restart.
    pub fn last_runs(&self, state_dir: &Path) -> rusqlite::Result<Vec<(String, String, i64)>> {
        self.with(state_dir, |c| {
            let mut st = c.prepare(
                "SELECT cluster, node, MAX(at_ms) FROM tier2_heal WHERE decision = 'run'
                 GROUP BY cluster, node",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_reopen_and_the_heal_history_is_bounded_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Tier2Store::default();
        let row = Row {
            name: "east".into(),
            pin: Pin {
                key_id: "k".into(),
                boot_id: "b".into(),
                seq: 7,
                sent_ms: 5,
            },
            received_ms: 9,
            summary: b"{}".to_vec(),
        };
        s.put(dir.path(), &row).unwrap();
        let heal = |node: &str, decision: &str| HealRow {
            id: 0,
            at: None,
            at_ms: 100,
            cluster: "east".into(),
            node: node.into(),
            decision: decision.into(),
            why: String::new(),
            detail: String::new(),
        };
        s.record_heal(dir.path(), &heal("db2", "run")).unwrap();
        s.record_heal(dir.path(), &heal("db3", "suppressed"))
            .unwrap();
        let s2 = Tier2Store::default();
        let rows = s2.load(dir.path()).unwrap();
        assert_eq!((rows.len(), rows[0].pin.seq), (1, 7));
        let h = s2
            .heal_history(dir.path(), Some("east"), Some("db2"), 10)
            .unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(
            s2.last_runs(dir.path()).unwrap(),
            [("east".into(), "db2".into(), 100)]
        );
        assert!(s2.forget(dir.path(), "east").unwrap());
        assert!(s2.load(dir.path()).unwrap().is_empty());
    }
}
