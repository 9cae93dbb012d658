//! Maintenance windows an operator set on a node or a service type: durable, one per
//! target, ended by `maintenance off` or by their `until` (read-time: an expired window is
//! simply not active; it is deleted by the next write).

use super::{Store, StoreError};
use rusqlite::params;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS maintenance (
    target TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    until_ms INTEGER
);";

/// One window: `target` is a node id or name, or a service type (`manager`, `db`, `broker`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MaintenanceRow {
    pub target: String,
    pub reason: String,
    pub by: String,
    pub since_ms: i64,
    pub until_ms: Option<i64>,
}

impl MaintenanceRow {
    pub fn active(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|u| u > now_ms)
    }
}

impl Store {
    /// Sets (or replaces) the window on `row.target`, dropping expired ones.
    pub fn set_maintenance(&self, row: &MaintenanceRow, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM maintenance WHERE until_ms IS NOT NULL AND until_ms <= ?1",
            params![now_ms],
        )?;
        self.conn.execute(
            "INSERT OR REPLACE INTO maintenance (target, reason, by, since_ms, until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.target, row.reason, row.by, row.since_ms, row.until_ms],
        )?;
        Ok(())
    }

    /// Ends the window on `target`; the row it removed, if it was active.
    pub fn clear_maintenance(
        &self,
        target: &str,
        now_ms: i64,
    ) -> Result<Option<MaintenanceRow>, StoreError> {
        let found = self
            .maintenance(now_ms)?
            .into_iter()
            .find(|r| r.target == target);
        self.conn
            .execute("DELETE FROM maintenance WHERE target = ?1", params![target])?;
        Ok(found)
    }

    /// The windows active at `now_ms`.
    pub fn maintenance(&self, now_ms: i64) -> Result<Vec<MaintenanceRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT target, reason, by, since_ms, until_ms FROM maintenance
             WHERE until_ms IS NULL OR until_ms > ?1 ORDER BY target",
        )?;
        let rows = st.query_map(params![now_ms], |r| {
            Ok(MaintenanceRow {
                target: r.get(0)?,
                reason: r.get(1)?,
                by: r.get(2)?,
                since_ms: r.get(3)?,
                until_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_kept_replaced_cleared_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let w = |target: &str, until_ms: Option<i64>| MaintenanceRow {
            target: target.into(),
            reason: "r".into(),
            by: "alice".into(),
            since_ms: 100,
            until_ms,
        };
        s.set_maintenance(&w("db1", None), 100).unwrap();
        s.set_maintenance(&w("db", Some(200)), 100).unwrap();
        assert_eq!(s.maintenance(150).unwrap().len(), 2);
        assert_eq!(
            s.maintenance(200).unwrap(),
            vec![w("db1", None)],
            "ended at until"
        );
        s.set_maintenance(
            &MaintenanceRow {
                reason: "again".into(),
                ..w("db1", None)
            },
            300,
        )
        .unwrap();
        assert_eq!(s.maintenance(300).unwrap()[0].reason, "again", "replaced");
        assert_eq!(
            s.clear_maintenance("db1", 300).unwrap().map(|r| r.target),
            Some("db1".into())
        );
        assert_eq!(s.clear_maintenance("db1", 300).unwrap(), None);
        assert_eq!(
            s.clear_maintenance("db", 300).unwrap(),
            None,
            "an expired window is not active"
        );
    }
}
