//! Maintenance windows an operator set on a node or a service type: durable, one per
//! target, ended by `maintenance off` or by their `until` (read-time: an expired window is
//! simply not active; it is deleted, with its `expired` event, by the next write or the
//! collector's expiry tick, [`Store::expire_maintenance`]).
//!
//! Each change (on, off, expired) is also an **event** in the transitions table, so that it
//! takes its id from the same sequence as status transitions and the event stream and
//! history resume over both with one `after` id. An event row has `node_type`
//! [`EVENT_TYPE`], `node_id` the target, `to_status` `on`/`off`, and in `reasons` the
//! window as JSON ([`WindowEvent`]); it is written in the same transaction as the window,
//! so it is durable before the API answers. Retention is the transitions' own: the age
//! sweep, and at most `transitions_per_node` events per target.

use super::{Store, StoreError};
use rusqlite::{params, Connection};

/// The `node_type` of a maintenance event in the transitions table.
pub const EVENT_TYPE: &str = "maintenance";

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

/// What a maintenance event stores in `reasons` (written by [`record_event`]): the action
/// and the window it concerns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowEvent {
    /// `on`, `off` or `expired`.
    pub action: String,
    pub reason: String,
    pub by: String,
    pub since_ms: i64,
    pub until_ms: Option<i64>,
}

/// Stores one maintenance event (inside the caller's transaction) and keeps the target's
/// newest `keep`.
fn record_event(
    conn: &Connection,
    action: &str,
    w: &MaintenanceRow,
    at_ms: i64,
    received_ms: i64,
    was_on: bool,
    keep: usize,
) -> Result<(), StoreError> {
    let body = serde_json::json!({
        "action": action,
        "reason": w.reason,
        "by": w.by,
        "since_ms": w.since_ms,
        "until_ms": w.until_ms,
    })
    .to_string();
    let to = if action == "on" { "on" } else { "off" };
    let from = if was_on { "on" } else { "off" };
    // `seq` only keeps the table's (node_type, node_id, boot_id, seq) key unique.
    conn.prepare_cached(
        "INSERT INTO transitions (node_type, node_id, boot_id, seq, at_ms, received_ms, service,
             from_status, to_status, reasons)
         SELECT ?1, ?2, '', coalesce(max(seq), 0) + 1, ?3, ?4, NULL, ?5, ?6, ?7
         FROM transitions WHERE node_type = ?1 AND node_id = ?2",
    )?
    .execute(params![
        EVENT_TYPE,
        w.target,
        at_ms,
        received_ms,
        from,
        to,
        body
    ])?;
    conn.prepare_cached(
        "DELETE FROM transitions WHERE rowid IN (
            SELECT rowid FROM transitions WHERE node_type = ?1 AND node_id = ?2
            ORDER BY id DESC LIMIT -1 OFFSET ?3)",
    )?
    .execute(params![EVENT_TYPE, w.target, keep as i64])?;
    Ok(())
}

fn read_rows(conn: &Connection, sql: &str, now_ms: i64) -> Result<Vec<MaintenanceRow>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
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

/// Ends the windows whose `until` has passed, each with its `expired` event (at its
/// `until`). Inside the caller's transaction.
fn expire_in(conn: &Connection, now_ms: i64, keep: usize) -> Result<usize, StoreError> {
    let due = read_rows(
        conn,
        "SELECT target, reason, by, since_ms, until_ms FROM maintenance
         WHERE until_ms IS NOT NULL AND until_ms <= ?1 ORDER BY until_ms, target",
        now_ms,
    )?;
    for w in &due {
        let at = w.until_ms.unwrap_or(now_ms);
        record_event(conn, "expired", w, at, now_ms, true, keep)?;
        conn.execute(
            "DELETE FROM maintenance WHERE target = ?1",
            params![w.target],
        )?;
    }
    Ok(due.len())
}

impl Store {
    /// Sets (or replaces) the window on `row.target`, ending expired ones first; its `on`
    /// event is committed with it.
    pub fn set_maintenance(&self, row: &MaintenanceRow, now_ms: i64) -> Result<(), StoreError> {
        let keep = self.retention.per_node;
        let tx = super::immediate(&self.conn)?;
        expire_in(&tx, now_ms, keep)?;
        let was_on = tx
            .prepare_cached("SELECT 1 FROM maintenance WHERE target = ?1")?
            .exists(params![row.target])?;
        tx.execute(
            "INSERT OR REPLACE INTO maintenance (target, reason, by, since_ms, until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.target, row.reason, row.by, row.since_ms, row.until_ms],
        )?;
        record_event(&tx, "on", row, now_ms, now_ms, was_on, keep)?;
        tx.commit()?;
        Ok(())
    }

    /// Ends the window on `target`; the row it removed, if it was active. Its `off` event
    /// is committed with it.
    pub fn clear_maintenance(
        &self,
        target: &str,
        now_ms: i64,
    ) -> Result<Option<MaintenanceRow>, StoreError> {
        let keep = self.retention.per_node;
        let tx = super::immediate(&self.conn)?;
        expire_in(&tx, now_ms, keep)?;
        let found = read_rows(
            &tx,
            "SELECT target, reason, by, since_ms, until_ms FROM maintenance
             WHERE until_ms IS NULL OR until_ms > ?1",
            now_ms,
        )?
        .into_iter()
        .find(|r| r.target == target);
        if let Some(w) = &found {
            tx.execute("DELETE FROM maintenance WHERE target = ?1", params![target])?;
            record_event(&tx, "off", w, now_ms, now_ms, true, keep)?;
        }
        tx.commit()?;
        Ok(found)
    }

    /// Ends every window whose `until` has passed, with its `expired` event. How many.
    pub fn expire_maintenance(&self, now_ms: i64) -> Result<usize, StoreError> {
        let due: bool = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM maintenance WHERE until_ms IS NOT NULL AND until_ms <= ?1",
            )?
            .exists(params![now_ms])?;
        if !due {
            return Ok(0);
        }
        let tx = super::immediate(&self.conn)?;
        let n = expire_in(&tx, now_ms, self.retention.per_node)?;
        tx.commit()?;
        Ok(n)
    }

    /// The windows active at `now_ms`.
    pub fn maintenance(&self, now_ms: i64) -> Result<Vec<MaintenanceRow>, StoreError> {
        read_rows(
            &self.conn,
            "SELECT target, reason, by, since_ms, until_ms FROM maintenance
             WHERE until_ms IS NULL OR until_ms > ?1 ORDER BY target",
            now_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window on `target` set at 100 by alice.
    fn w(target: &str, until_ms: Option<i64>) -> MaintenanceRow {
        MaintenanceRow {
            target: target.into(),
            reason: "r".into(),
            by: "alice".into(),
            since_ms: 100,
            until_ms,
        }
    }

    #[test]
    fn windows_are_kept_replaced_cleared_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
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

    /// The events of one store: (id, node type, target, "from->to", action, at).
    fn events(s: &Store) -> Vec<(i64, String, String, String, String, i64)> {
        s.history(&crate::store::HistoryFilter {
            after_id: Some(0),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| {
            let action = serde_json::from_str::<WindowEvent>(&r.reasons_json)
                .map(|w| w.action)
                .unwrap_or_default();
            let change = format!("{}->{}", r.from, r.to);
            (r.id, r.node_type, r.node_id, change, action, r.at_ms)
        })
        .collect()
    }

    #[test]
    fn each_change_is_one_event_in_the_transitions_sequence() {
        use crate::store::{DurableWrite, TransitionRow};
        use sr_protocol::NodeType;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let transition = |seq: u64| DurableWrite::Transitions {
            node_type: NodeType::Db,
            node_id: "db1".into(),
            received_ms: 50,
            rows: vec![TransitionRow {
                boot_id: "b".into(),
                seq,
                at_ms: 50,
                service: None,
                from: "OK".into(),
                to: "Fail".into(),
                reasons_json: "[]".into(),
            }],
        };
        s.commit_durable(&[transition(1)]).unwrap();
        s.set_maintenance(&w("db1", None), 100).unwrap();
        s.set_maintenance(&w("db1", None), 110).unwrap();
        s.set_maintenance(&w("galera", Some(200)), 120).unwrap();
        s.commit_durable(&[transition(2)]).unwrap();
        assert_eq!(s.expire_maintenance(150).unwrap(), 0, "not yet");
        assert!(s.clear_maintenance("db1", 160).unwrap().is_some());
        assert!(s.clear_maintenance("db1", 170).unwrap().is_none());
        // Past `until`: ended once, with its event at the `until`, not at the tick.
        assert_eq!(s.expire_maintenance(250).unwrap(), 1);
        assert_eq!(s.expire_maintenance(260).unwrap(), 0);
        let got = events(&s);
        let shape: Vec<_> = got
            .iter()
            .map(|e| (e.1.as_str(), e.2.as_str(), e.3.as_str(), e.4.as_str()))
            .collect();
        assert_eq!(
            shape,
            [
                ("db", "db1", "OK->Fail", ""),
                ("maintenance", "db1", "off->on", "on"),
                ("maintenance", "db1", "on->on", "on"),
                ("maintenance", "galera", "off->on", "on"),
                ("db", "db1", "OK->Fail", ""),
                ("maintenance", "db1", "on->off", "off"),
                ("maintenance", "galera", "on->off", "expired"),
            ]
        );
        assert!(
            got.windows(2).all(|p| p[0].0 < p[1].0),
            "one increasing sequence"
        );
        assert_eq!(got[6].5, 200, "an expiry happens at its until");
        assert_eq!(s.last_transition_id().unwrap(), got[6].0);
        // Filters find them by target.
        let by = |f: crate::store::HistoryFilter| {
            s.history(&crate::store::HistoryFilter { limit: 100, ..f })
                .unwrap()
                .len()
        };
        let node = by(crate::store::HistoryFilter {
            node: Some("db1".into()),
            ..Default::default()
        });
        assert_eq!(node, 5);
        let galera = by(crate::store::HistoryFilter {
            service: Some("galera".into()),
            ..Default::default()
        });
        assert_eq!(galera, 2);
    }
}
