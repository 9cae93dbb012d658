//! What another connection changed that the running collector's memory holds, so the
//! write-behind reloads only that: a generation counter per table for the small ones
//! (`tokens`, `pending`) and the keys of the nodes touched (their row, or only their
//! shared replay floor).
//!
//! Why: `PRAGMA data_version` says only *that* another connection committed. With a shared
//! store the sync task commits every round, so memory used to reload every node (each
//! latest report decoded again) every flush, a cost that grew with the fleet (BENCHMARKS.md,
//! "The reload after a pull"). Now the signal says *what* changed.
//!
//! How: TEMP triggers, made on every connection when the store is opened, append to
//! [`SCHEMA`]'s tables; the writer drops them on its own connection
//! ([`Store::quiet_own_changes`]), so, as with `data_version`, its own commits do not
//! reload what it already holds. Bounded: past [`TOUCHED_MAX`] keys a trigger bumps the
//! `nodes` generation instead, and the writer reloads every node once.

use super::{node_type_of, Store, StoreError};
use rusqlite::params;
use sr_protocol::NodeType;

/// Nodes with their shared replay floor (boot ids oldest first, each with its highest seq).
pub type NodeFloors = Vec<((NodeType, String), Vec<(String, u64)>)>;

/// Node keys held before the journal gives way to one full reload.
pub const TOUCHED_MAX: i64 = 20_000;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mem_gen (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    tokens INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    -- bumped when mem_touched is full: every node is reloaded
    nodes INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO mem_gen (one) VALUES (1);
CREATE TABLE IF NOT EXISTS mem_touched (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    -- 1: the node's row (pin, flags, name, deletion); 0: its shared replay floor only
    whole INTEGER NOT NULL,
    PRIMARY KEY (node_type, node_id)
);
";

/// The TEMP triggers of one connection.
pub(super) fn temp_triggers() -> String {
    let mut sql = String::new();
    let events = [("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")];
    for (tbl, counter) in [("tokens", "tokens"), ("pending", "pending")] {
        for (ev, _) in events {
            sql.push_str(&format!(
                "CREATE TEMP TRIGGER IF NOT EXISTS mem_{tbl}_{ev} AFTER {ev} ON main.{tbl} BEGIN
                   UPDATE mem_gen SET {counter} = {counter} + 1;
                 END;\n"
            ));
        }
    }
    for (tbl, whole, conflict) in [
        ("nodes", 1, "DO UPDATE SET whole = 1"),
        ("shared_floor", 0, "DO NOTHING"),
    ] {
        for (ev, row) in events {
            sql.push_str(&format!(
                "CREATE TEMP TRIGGER IF NOT EXISTS mem_{tbl}_{ev} AFTER {ev} ON main.{tbl} BEGIN
                   UPDATE mem_gen SET nodes = nodes + 1
                     WHERE (SELECT count(*) FROM mem_touched) >= {TOUCHED_MAX};
                   INSERT INTO mem_touched (node_type, node_id, whole)
                     SELECT {row}.node_type, {row}.node_id, {whole}
                     WHERE (SELECT count(*) FROM mem_touched) < {TOUCHED_MAX}
                     ON CONFLICT (node_type, node_id) {conflict};
                 END;\n"
            ));
        }
    }
    sql
}

/// The generations last seen; compared with the store's by [`Store::take_changes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeMarks {
    pub tokens: i64,
    pub pending: i64,
    pub nodes: i64,
}

/// What changed since the last [`Store::take_changes`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub tokens: bool,
    pub pending: bool,
    /// Every node must be reloaded (the key journal overflowed).
    pub all_nodes: bool,
    /// Nodes whose row changed (or went).
    pub nodes: Vec<(NodeType, String)>,
    /// Nodes whose replay floor alone changed.
    pub floors: Vec<(NodeType, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

impl Store {
    /// Drops this connection's change triggers: the writer's own commits are already in
    /// memory.
    pub fn quiet_own_changes(&self) -> Result<(), StoreError> {
        let mut sql = String::new();
        for tbl in ["tokens", "pending", "nodes", "shared_floor"] {
            for ev in ["INSERT", "UPDATE", "DELETE"] {
                sql.push_str(&format!("DROP TRIGGER IF EXISTS temp.mem_{tbl}_{ev};\n"));
            }
        }
        self.conn.execute_batch(&sql)?;
        Ok(())
    }

    /// Empties the node journal and returns the generations: called just before memory is
    /// loaded whole, which covers everything journalled so far.
    pub fn reset_changes(&self) -> Result<ChangeMarks, StoreError> {
        self.conn.execute("DELETE FROM mem_touched", [])?;
        self.marks()
    }

    fn marks(&self) -> Result<ChangeMarks, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT tokens, pending, nodes FROM mem_gen", [], |r| {
                Ok(ChangeMarks {
                    tokens: r.get(0)?,
                    pending: r.get(1)?,
                    nodes: r.get(2)?,
                })
            })?)
    }

    /// What changed since `seen` (which moves on), the node journal drained.
    pub fn take_changes(&self, seen: &mut ChangeMarks) -> Result<Changes, StoreError> {
        let tx = super::immediate(&self.conn)?;
        let now = self.marks()?;
        let mut out = Changes {
            tokens: now.tokens != seen.tokens,
            pending: now.pending != seen.pending,
            all_nodes: now.nodes != seen.nodes,
            ..Changes::default()
        };
        let keys: Vec<(String, String, bool)> = {
            let mut st = tx.prepare_cached("SELECT node_type, node_id, whole FROM mem_touched")?;
            let rows =
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))?;
            rows.collect::<Result<_, _>>()?
        };
        if !keys.is_empty() {
            tx.execute("DELETE FROM mem_touched", [])?;
        }
        tx.commit()?;
        *seen = now;
        if !out.all_nodes {
            for (t, id, whole) in keys {
                let key = (node_type_of(&t)?, id);
                match whole {
                    true => out.nodes.push(key),
                    false => out.floors.push(key),
                }
            }
        }
        Ok(out)
    }

    /// The shared replay floor of each node of `keys` (oldest boot first).
    pub fn floors_of(&self, keys: &[(NodeType, String)]) -> Result<NodeFloors, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for (t, id) in keys {
            out.push(((*t, id.clone()), self.floor_of(t.as_str(), id)?));
        }
        Ok(out)
    }

    pub(super) fn floor_of(
        &self,
        node_type: &str,
        node_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT boot_id, max_seq FROM shared_floor WHERE node_type = ?1 AND node_id = ?2 ORDER BY first_seen_ms, boot_id",
        )?;
        let rows = st.query_map(params![node_type, node_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DurableWrite, Role, SharedBoot};

    fn pin(id: &str) -> DurableWrite {
        DurableWrite::Pin {
            node_type: NodeType::Db,
            node_id: id.into(),
            name: id.into(),
            key: Some(format!("KEY_{id}")),
            private_ip: None,
            at_ms: 1,
        }
    }

    #[test]
    fn another_connections_changes_are_named_and_the_writers_own_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Store::open(dir.path()).unwrap();
        writer.quiet_own_changes().unwrap();
        let mut seen = writer.reset_changes().unwrap();
        // The writer's own pin: nothing to reload.
        writer.commit_durable(&[pin("w1")]).unwrap();
        assert!(writer.take_changes(&mut seen).unwrap().is_empty());

        // Another connection (the CLI, the sync task): a token, a pin, a floor.
        let mut other = Store::open(dir.path()).unwrap();
        other.create_token(Role::Db).unwrap();
        other.commit_durable(&[pin("o1")]).unwrap();
        other
            .apply_pulled(
                &[],
                &[],
                &[SharedBoot {
                    node_type: "db".into(),
                    node_id: "w1".into(),
                    boot_id: "b".into(),
                    max_seq: 7,
                    first_seen_ms: 1,
                }],
                1,
            )
            .unwrap();
        let c = writer.take_changes(&mut seen).unwrap();
        assert!(c.tokens && !c.pending && !c.all_nodes, "{c:?}");
        assert_eq!(c.nodes, vec![(NodeType::Db, "o1".to_string())]);
        assert_eq!(c.floors, vec![(NodeType::Db, "w1".to_string())]);
        assert_eq!(
            writer.floors_of(&c.floors).unwrap()[0].1,
            vec![("b".to_string(), 7)]
        );
        // Drained: asked again, nothing.
        assert!(writer.take_changes(&mut seen).unwrap().is_empty());
        // A forget elsewhere names the node; it is gone from the store.
        other.forget_node("o1", None).unwrap();
        let c = writer.take_changes(&mut seen).unwrap();
        assert_eq!(c.nodes, vec![(NodeType::Db, "o1".to_string())]);
        assert!(writer.load_nodes_of(&c.nodes).unwrap().is_empty());
    }

    #[test]
    fn a_full_journal_asks_for_one_whole_reload() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Store::open(dir.path()).unwrap();
        writer.quiet_own_changes().unwrap();
        let mut seen = writer.reset_changes().unwrap();
        let other = Store::open(dir.path()).unwrap();
        other
            .conn
            .execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
                 INSERT INTO nodes (node_type, node_id, name, first_seen_ms)
                 SELECT 'db', 'n' || i, 'n' || i, 1 FROM n;",
                TOUCHED_MAX + 5
            ))
            .unwrap();
        let c = writer.take_changes(&mut seen).unwrap();
        assert!(c.all_nodes, "overflow asks for everything");
        assert!(c.nodes.is_empty() && c.floors.is_empty());
        let left: i64 = writer
            .conn
            .query_row("SELECT count(*) FROM mem_touched", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "and the journal is emptied");
    }
}
