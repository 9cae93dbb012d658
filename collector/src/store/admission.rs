//! Admission and expiry of node ids (issue 12): the pending list an operator approves
//! from (`admission = "approve"`), and the sweep that forgets node ids nobody reports
//! for, so ids a leaked token made up do not hold `max_nodes` forever.
//!
//! Pending rows live in their own table, never in `nodes`: a held node has no pin, no
//! latest report and no place in the view or the quorum until `nodes approve` moves it
//! (with the key it reported) into `nodes`. A key `nodes forget` or `nodes reject`
//! tombstoned cannot be held again. The list is bounded (`max_pending`); past it a new id
//! is refused and counted by ingest.

use super::nodes::{forget_row, NodeRow};
use super::{node_type_of, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use sr_protocol::NodeType;

/// A node that never completed a valid report is forgotten after this long at most.
pub const UNREPORTED_FORGET_AFTER_MS: i64 = 3_600_000;

/// A report from a node id held for approval, as ingest hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReport {
    pub node_type: NodeType,
    pub node_id: String,
    pub name: String,
    /// The signing key (base64url key id); `None` for an unsigned legacy report.
    pub key: Option<String>,
    /// The connection's peer address.
    pub source: Option<String>,
    pub at_ms: i64,
}

/// What holding a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// A new pending row.
    New,
    /// The row was there; its last-seen time and count updated.
    Again,
    /// The key was tombstoned by `nodes forget` or `nodes reject`.
    KeyForgotten,
    /// `max_pending` rows are held already.
    Full,
    /// An operator approved the id since memory last loaded the store: nothing is held,
    /// and the next report (after the reload) is accepted.
    Approved,
}

/// One row of `nodes pending`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingRow {
    pub node_type: String,
    pub node_id: String,
    pub name: String,
    pub pubkey: Option<String>,
    /// `SHA256:...` of `pubkey`, as `configure` prints it on the node.
    pub fingerprint: Option<String>,
    /// The fingerprint of a second key that reported for the same id, if any.
    pub other_fingerprint: Option<String>,
    pub source: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub reports: i64,
}

/// What `nodes approve` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Approved(PendingRow),
    NoMatch,
    /// Several pending rows have this id (across types): give `--type`.
    Ambiguous(Vec<PendingRow>),
    /// `--fingerprint` names neither key, or two keys reported and none was named.
    FingerprintNeeded(PendingRow),
}

fn fingerprint(key: Option<&str>) -> Option<String> {
    key.and_then(sr_protocol::signing::fingerprint_of_key_id)
}

impl Store {
    /// Holds a report from a node id waiting for approval.
    pub fn hold_pending(&self, r: &HeldReport, max_pending: usize) -> Result<Held, StoreError> {
        let t = r.node_type.as_str();
        if let Some(fp) = fingerprint(r.key.as_deref()) {
            let forgotten: Option<i64> = self
                .conn
                .query_row(
                    "SELECT 1 FROM forgotten_keys WHERE fingerprint = ?1",
                    params![fp],
                    |row| row.get(0),
                )
                .optional()?;
            if forgotten.is_some() {
                return Ok(Held::KeyForgotten);
            }
        }
        let tx = super::immediate(&self.conn)?;
        let admitted: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM nodes WHERE node_type = ?1 AND node_id = ?2",
                params![t, r.node_id],
                |row| row.get(0),
            )
            .optional()?;
        if admitted.is_some() {
            return Ok(Held::Approved);
        }
        let known: Option<Option<String>> = tx
            .query_row(
                "SELECT pubkey FROM pending WHERE node_type = ?1 AND node_id = ?2",
                params![t, r.node_id],
                |row| row.get(0),
            )
            .optional()?;
        let held = match known {
            Some(first_key) => {
                // The first key stays; another one is remembered so approval must name one.
                let other = (first_key != r.key).then(|| r.key.clone()).flatten();
                tx.execute(
                    "UPDATE pending SET last_seen_ms = ?3, reports = reports + 1,
                     other_key = COALESCE(?4, other_key) WHERE node_type = ?1 AND node_id = ?2",
                    params![t, r.node_id, r.at_ms, other],
                )?;
                Held::Again
            }
            None => {
                let count: i64 =
                    tx.query_row("SELECT count(*) FROM pending", [], |row| row.get(0))?;
                if count as usize >= max_pending {
                    return Ok(Held::Full);
                }
                tx.execute(
                    "INSERT INTO pending (node_type, node_id, name, pubkey, source, first_seen_ms, last_seen_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![t, r.node_id, r.name, r.key, r.source, r.at_ms],
                )?;
                Held::New
            }
        };
        tx.commit()?;
        Ok(held)
    }

    /// Every node id held for approval, oldest first.
    pub fn list_pending(&self) -> Result<Vec<PendingRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT node_type, node_id, name, pubkey, other_key, source, first_seen_ms, last_seen_ms, reports
             FROM pending ORDER BY first_seen_ms, node_type, node_id",
        )?;
        let rows = st.query_map([], |r| {
            let pubkey: Option<String> = r.get(3)?;
            let other: Option<String> = r.get(4)?;
            Ok(PendingRow {
                node_type: r.get(0)?,
                node_id: r.get(1)?,
                name: r.get(2)?,
                fingerprint: fingerprint(pubkey.as_deref()),
                pubkey,
                other_fingerprint: fingerprint(other.as_deref()),
                source: r.get(5)?,
                first_seen_ms: r.get(6)?,
                last_seen_ms: r.get(7)?,
                reports: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The keys of the held node ids, for the server's memory.
    pub fn pending_keys(&self) -> Result<Vec<(NodeType, String)>, StoreError> {
        self.list_pending()?
            .into_iter()
            .map(|r| Ok((node_type_of(&r.node_type)?, r.node_id)))
            .collect()
    }

    fn pending_matching(
        &self,
        node_id: &str,
        node_type: Option<NodeType>,
    ) -> Result<Vec<PendingRow>, StoreError> {
        Ok(self
            .list_pending()?
            .into_iter()
            .filter(|r| r.node_id == node_id)
            .filter(|r| node_type.is_none_or(|t| t.as_str() == r.node_type))
            .collect())
    }

    /// `nodes approve`: moves the held id into `nodes`, pinned to the key it reported (or,
    /// when two keys reported, to the one `fingerprint` names). Its next report is
    /// accepted into the view.
    pub fn approve_pending(
        &self,
        node_id: &str,
        node_type: Option<NodeType>,
        fingerprint_given: Option<&str>,
        now_ms: i64,
    ) -> Result<Approval, StoreError> {
        let mut rows = self.pending_matching(node_id, node_type)?;
        let row = match rows.len() {
            0 => return Ok(Approval::NoMatch),
            1 => rows.remove(0),
            _ => return Ok(Approval::Ambiguous(rows)),
        };
        let other_key: Option<String> = self.conn.query_row(
            "SELECT other_key FROM pending WHERE node_type = ?1 AND node_id = ?2",
            params![row.node_type, row.node_id],
            |r| r.get(0),
        )?;
        let key = match fingerprint_given {
            Some(fp) if row.fingerprint.as_deref() == Some(fp) => row.pubkey.clone(),
            Some(fp) if row.other_fingerprint.as_deref() == Some(fp) => other_key,
            Some(_) => return Ok(Approval::FingerprintNeeded(row)),
            None if row.other_fingerprint.is_some() => return Ok(Approval::FingerprintNeeded(row)),
            None => row.pubkey.clone(),
        };
        let tx = super::immediate(&self.conn)?;
        tx.execute(
            "INSERT OR IGNORE INTO nodes (node_type, node_id, name, pubkey, private_ip, first_seen_ms)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
            params![row.node_type, row.node_id, row.name, key, now_ms],
        )?;
        tx.execute(
            "DELETE FROM pending WHERE node_type = ?1 AND node_id = ?2",
            params![row.node_type, row.node_id],
        )?;
        tx.commit()?;
        Ok(Approval::Approved(PendingRow {
            fingerprint: fingerprint(key.as_deref()),
            pubkey: key,
            ..row
        }))
    }

    /// `nodes reject`: drops the held id and tombstones every key it reported, so those
    /// keys cannot be held or pinned again unless an operator names them.
    pub fn reject_pending(
        &self,
        node_id: &str,
        node_type: Option<NodeType>,
        now_ms: i64,
    ) -> Result<Vec<PendingRow>, StoreError> {
        let rows = self.pending_matching(node_id, node_type)?;
        if rows.len() != 1 {
            return Ok(rows);
        }
        let tx = super::immediate(&self.conn)?;
        for row in &rows {
            tx.execute(
                "DELETE FROM pending WHERE node_type = ?1 AND node_id = ?2",
                params![row.node_type, row.node_id],
            )?;
            for fp in [&row.fingerprint, &row.other_fingerprint]
                .into_iter()
                .flatten()
            {
                tx.execute(
                    "INSERT OR REPLACE INTO forgotten_keys (fingerprint, node_type, node_id, forgotten_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![fp, row.node_type, row.node_id, now_ms],
                )?;
            }
        }
        tx.commit()?;
        Ok(rows)
    }

    /// Forgets nodes silent for `forget_after_ms` (by their last accepted report), nodes
    /// that never completed a valid report within `min(forget_after_ms, 1 h)` of first
    /// contact, and pending rows silent for `forget_after_ms`. Keys are not tombstoned: a
    /// real node that comes back after the silence pins again by its next fresh report.
    /// Returns the nodes removed (pending rows aside).
    pub fn expire_nodes(
        &self,
        now_ms: i64,
        forget_after_ms: i64,
    ) -> Result<Vec<NodeRow>, StoreError> {
        let silent = now_ms.saturating_sub(forget_after_ms);
        let unreported = now_ms.saturating_sub(forget_after_ms.min(UNREPORTED_FORGET_AFTER_MS));
        let gone: Vec<NodeRow> = self
            .list_nodes()?
            .into_iter()
            .filter(|r| match r.last_seen_ms {
                Some(seen) => seen < silent,
                None => r.first_seen_ms < unreported,
            })
            .collect();
        let tx = super::immediate(&self.conn)?;
        // Expiry is each collector's own housekeeping: a node silent *here* is not
        // forgotten for the other managers of a shared store.
        let journalled = super::outbox::journal_high(&tx)?;
        for r in &gone {
            tx.execute(
                "DELETE FROM nodes WHERE node_type = ?1 AND node_id = ?2",
                params![r.node_type, r.node_id],
            )?;
        }
        tx.execute(
            "DELETE FROM pending WHERE last_seen_ms < ?1",
            params![silent],
        )?;
        super::outbox::unjournal_since(&tx, journalled)?;
        tx.commit()?;
        Ok(gone)
    }

    /// `nodes forget` in bulk: forgets each of `rows` as [`Store::forget_one`] does
    /// (tombstoning its key), in one transaction.
    pub fn forget_rows(&self, rows: &[NodeRow], now_ms: i64) -> Result<(), StoreError> {
        let tx = super::immediate(&self.conn)?;
        for r in rows {
            forget_row(&tx, r, now_ms)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DurableWrite;

    fn held(id: &str, key: Option<&str>, at_ms: i64) -> HeldReport {
        HeldReport {
            node_type: NodeType::Db,
            node_id: id.into(),
            name: format!("name-{id}"),
            key: key.map(str::to_string),
            source: Some("10.0.0.9".into()),
            at_ms,
        }
    }

    fn key_id() -> String {
        let k = sr_protocol::signing::NodeKey::from_pkcs8(
            &sr_protocol::signing::NodeKey::generate_pkcs8().unwrap(),
        )
        .unwrap();
        k.key_id()
    }

    #[test]
    fn pending_rows_are_bounded_approved_with_their_key_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (k1, k2) = (key_id(), key_id());
        assert_eq!(
            store.hold_pending(&held("a", Some(&k1), 1), 2).unwrap(),
            Held::New
        );
        assert_eq!(
            store.hold_pending(&held("a", Some(&k1), 2), 2).unwrap(),
            Held::Again
        );
        assert_eq!(
            store.hold_pending(&held("b", Some(&k2), 3), 2).unwrap(),
            Held::New
        );
        assert_eq!(
            store.hold_pending(&held("c", None, 4), 2).unwrap(),
            Held::Full
        );
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let rows = store.list_pending().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].reports, rows[0].last_seen_ms), (2, 2));
        assert_eq!(rows[0].source.as_deref(), Some("10.0.0.9"));
        let fp1 = rows[0].fingerprint.clone().unwrap();
        assert!(fp1.starts_with("SHA256:"));
        // A fingerprint that is not the reported key's approves nothing.
        let wrong = rows[1].fingerprint.clone().unwrap();
        assert!(matches!(
            store.approve_pending("a", None, Some(&wrong), 10).unwrap(),
            Approval::FingerprintNeeded(_)
        ));
        match store.approve_pending("a", None, Some(&fp1), 10).unwrap() {
            Approval::Approved(r) => assert_eq!(r.pubkey.as_deref(), Some(k1.as_str())),
            other => panic!("{other:?}"),
        }
        let nodes = store.list_nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].pinned_key.as_deref(), Some(k1.as_str()));
        assert_eq!(
            store.pending_keys().unwrap(),
            vec![(NodeType::Db, "b".to_string())]
        );
        assert_eq!(
            store.approve_pending("zz", None, None, 10).unwrap(),
            Approval::NoMatch
        );
        // A report that raced the approval is not held again.
        assert_eq!(
            store.hold_pending(&held("a", Some(&k1), 11), 2).unwrap(),
            Held::Approved
        );
        assert_eq!(store.pending_keys().unwrap().len(), 1);
    }

    #[test]
    fn a_second_key_needs_a_fingerprint_and_a_rejected_key_is_not_held_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (real, evil) = (key_id(), key_id());
        store.hold_pending(&held("a", Some(&real), 1), 10).unwrap();
        store.hold_pending(&held("a", Some(&evil), 2), 10).unwrap();
        let row = store.list_pending().unwrap().remove(0);
        assert!(row.other_fingerprint.is_some());
        assert!(matches!(
            store.approve_pending("a", None, None, 5).unwrap(),
            Approval::FingerprintNeeded(_)
        ));
        assert_eq!(store.reject_pending("a", None, 6).unwrap().len(), 1);
        assert!(store.list_pending().unwrap().is_empty());
        assert_eq!(
            store.hold_pending(&held("a2", Some(&evil), 7), 10).unwrap(),
            Held::KeyForgotten
        );
    }

    #[test]
    fn silent_and_never_reported_nodes_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let pin = |id: &str, at_ms: i64| DurableWrite::Pin {
            node_type: NodeType::Db,
            node_id: id.into(),
            name: id.into(),
            key: None,
            private_ip: None,
            at_ms,
        };
        let day = 86_400_000;
        store
            .commit_durable(&[
                pin("silent", 0),
                pin("fresh", 0),
                pin("never", 0),
                pin("new", 29 * day),
            ])
            .unwrap();
        let latest = |id: &str, at: i64| crate::store::LatestRow {
            node_type: NodeType::Db,
            node_id: id.into(),
            name: id.into(),
            private_ip: None,
            received_ms: at,
            skew_ms: 0,
            signed: false,
            body: b"{}".to_vec(),
            boot_id: None,
            seq: 0,
        };
        store
            .write_latest(&[latest("silent", day), latest("fresh", 30 * day)])
            .unwrap();
        store.hold_pending(&held("p-old", None, 0), 10).unwrap();
        store
            .hold_pending(&held("p-new", None, 30 * day), 10)
            .unwrap();
        let gone = store.expire_nodes(31 * day, 7 * day).unwrap();
        let mut ids: Vec<&str> = gone.iter().map(|r| r.node_id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["never", "new", "silent"]);
        let left: Vec<String> = store
            .list_nodes()
            .unwrap()
            .into_iter()
            .map(|r| r.node_id)
            .collect();
        assert_eq!(left, ["fresh"]);
        assert_eq!(
            store.pending_keys().unwrap(),
            vec![(NodeType::Db, "p-new".to_string())]
        );
    }
}
