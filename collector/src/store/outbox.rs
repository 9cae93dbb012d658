//! The local half of the shared store (issue 16): the journal of shared rows still to be
//! written through to PostgreSQL, the sync cursors, and applying rows pulled back.
//!
//! Triggers on the shared tables append the changed row's *key* to `shared_outbox` in the
//! same transaction as the change, whichever connection makes it (the writer thread, the
//! CLI, the API), but only while `shared_sync.enabled` is set, so a SQLite-only collector
//! pays nothing but the trigger's `WHEN`. The sync task reads each key's *current* row
//! ([`Store::outbox_batch`]), so pushing a key twice is harmless, and removes the keys once
//! PostgreSQL committed them ([`Store::outbox_done`]). Transitions are not journalled: their
//! local id is the push cursor.
//!
//! Bound: at most `journal_max` keys. Past it a trigger adds nothing, counts the overflow
//! and sets `resync`, and the sync task journals every shared row again
//! ([`Store::journal_everything`]) once PostgreSQL answers: nothing acknowledged is lost,
//! only the push grows. A node deletion also records *when* (`shared_deleted`), so a
//! forget followed by a new pin during an outage reaches PostgreSQL as both.

use super::{Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

/// The tables whose rows are shared, with their key columns (`k2` is `''` when the key
/// has one column). `tokens` is keyed by its hash (hex), never by its local id.
const SHARED: &[(&str, &str, &str)] = &[
    ("tokens", "hex(X.hash)", "''"),
    ("users", "X.name", "''"),
    ("nodes", "X.node_type", "X.node_id"),
    ("forgotten_keys", "X.fingerprint", "''"),
    ("key_approvals", "X.node_type", "X.node_id"),
    ("maintenance", "X.target", "''"),
];

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shared_sync (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    enabled INTEGER NOT NULL DEFAULT 0,
    journal_max INTEGER NOT NULL DEFAULT 100000,
    -- keys not journalled because the journal was full; a resync covers them
    overflow INTEGER NOT NULL DEFAULT 0,
    resync INTEGER NOT NULL DEFAULT 1,
    -- the highest PostgreSQL change_id applied here
    pull_cursor INTEGER NOT NULL DEFAULT 0,
    -- the highest local transitions.id written through
    pushed_transition INTEGER NOT NULL DEFAULT 0,
    -- the newest latest.received_ms whose (boot id, seq) was written through
    pushed_latest_ms INTEGER NOT NULL DEFAULT 0,
    -- this collector's name in PostgreSQL rows it writes (random, made once)
    origin TEXT NOT NULL DEFAULT (lower(hex(randomblob(8))))
);
INSERT OR IGNORE INTO shared_sync (one) VALUES (1);
CREATE TABLE IF NOT EXISTS shared_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    k1 TEXT NOT NULL,
    k2 TEXT NOT NULL,
    UNIQUE (tbl, k1, k2)
);
-- The replay floor pulled from the shared store: per node and boot, the highest seq any
-- manager accepted. Kept for known nodes only, at most BOOTS_KEPT boots each.
CREATE TABLE IF NOT EXISTS shared_floor (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    max_seq INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (node_type, node_id, boot_id),
    FOREIGN KEY (node_type, node_id) REFERENCES nodes (node_type, node_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS shared_deleted (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    deleted_ms INTEGER NOT NULL,
    PRIMARY KEY (node_type, node_id)
);
";

/// The triggers, made from [`SHARED`]: after each insert, update and delete.
pub(super) fn triggers() -> String {
    let mut sql = String::new();
    for (tbl, k1, k2) in SHARED {
        for (ev, row) in [("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")] {
            let k1 = k1.replace("X.", &format!("{row}."));
            let k2 = k2.replace("X.", &format!("{row}."));
            let deleted = if *tbl == "nodes" && ev == "DELETE" {
                "INSERT OR REPLACE INTO shared_deleted (node_type, node_id, deleted_ms)
                 VALUES (OLD.node_type, OLD.node_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));"
            } else {
                ""
            };
            sql.push_str(&format!(
                "CREATE TRIGGER IF NOT EXISTS shared_{tbl}_{ev} AFTER {ev} ON {tbl}
                 WHEN (SELECT enabled FROM shared_sync) = 1 BEGIN
                   UPDATE shared_sync SET overflow = overflow + 1, resync = 1
                     WHERE (SELECT count(*) FROM shared_outbox) >= journal_max;
                   INSERT OR REPLACE INTO shared_outbox (tbl, k1, k2) SELECT '{tbl}', {k1}, {k2}
                     WHERE (SELECT count(*) FROM shared_outbox) < (SELECT journal_max FROM shared_sync);
                   {deleted}
                 END;\n"
            ));
        }
    }
    sql
}

/// A node's shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNode {
    pub name: String,
    pub pubkey: Option<String>,
    pub key_mismatch: bool,
    pub mismatch_key: Option<String>,
    pub private_ip: Option<String>,
    pub first_seen_ms: i64,
}

/// One shared row as it travels between the local store and PostgreSQL. `None` (or a
/// `deleted_ms`) means the row is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedRow {
    Token {
        hash: Vec<u8>,
        role: String,
        created_ms: i64,
        revoked_ms: Option<i64>,
    },
    User {
        name: String,
        phc: String,
        created_ms: i64,
    },
    Node {
        node_type: String,
        node_id: String,
        /// When it was forgotten, if it was (before `state`, if both).
        deleted_ms: Option<i64>,
        state: Option<SharedNode>,
    },
    ForgottenKey {
        fingerprint: String,
        node_type: String,
        node_id: String,
        forgotten_ms: i64,
    },
    Approval {
        node_type: String,
        node_id: String,
        /// `(fingerprint, approved_ms)`; `None` once used or withdrawn.
        row: Option<(String, i64)>,
    },
    Maintenance {
        target: String,
        /// `(reason, by, since_ms, until_ms)`; `None` once ended.
        row: Option<(String, String, i64, Option<i64>)>,
    },
}

/// A transition (or a status event) as it travels to and from PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedTransition {
    pub node_type: String,
    pub node_id: String,
    pub boot_id: String,
    pub seq: i64,
    pub at_ms: i64,
    pub received_ms: i64,
    pub service: Option<String>,
    pub from: String,
    pub to: String,
    pub reasons: String,
}

/// One node's newest `(boot id, seq)` as a manager accepted it: the replay floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBoot {
    pub node_type: String,
    pub node_id: String,
    pub boot_id: String,
    pub max_seq: i64,
    pub first_seen_ms: i64,
}

/// The sync task's local state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub origin: String,
    pub pull_cursor: i64,
    pub pushed_transition: i64,
    pub pushed_latest_ms: i64,
    pub overflow: i64,
    pub resync: bool,
    pub journal_len: i64,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Removes the journal keys added after `before` (inside the caller's transaction): for
/// changes that must not be written through (rows pulled from PostgreSQL, local expiry).
pub(super) fn unjournal_since(conn: &Connection, before: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM shared_outbox WHERE id > ?1", params![before])?;
    conn.execute("DELETE FROM shared_deleted WHERE node_type || char(0) || node_id NOT IN (SELECT k1 || char(0) || k2 FROM shared_outbox WHERE tbl = 'nodes')", [])?;
    Ok(())
}

pub(super) fn journal_high(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM shared_outbox", [], |r| {
        r.get(0)
    })
}

impl Store {
    /// `SELECT count(*) ...` for `migrate-store`'s counts.
    pub fn count(&self, sql: &str) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
    }

    /// Turns journalling on (idempotent) with `journal_max`, and returns the sync state.
    pub fn enable_sharing(&self, journal_max: usize) -> Result<SyncState, StoreError> {
        self.conn.execute(
            "UPDATE shared_sync SET enabled = 1, journal_max = ?1",
            params![journal_max as i64],
        )?;
        self.sync_state()
    }

    pub fn sync_state(&self) -> Result<SyncState, StoreError> {
        Ok(self.conn.query_row(
            "SELECT origin, pull_cursor, pushed_transition, overflow, resync,
                    (SELECT count(*) FROM shared_outbox), pushed_latest_ms FROM shared_sync",
            [],
            |r| {
                Ok(SyncState {
                    origin: r.get(0)?,
                    pull_cursor: r.get(1)?,
                    pushed_transition: r.get(2)?,
                    overflow: r.get(3)?,
                    resync: r.get::<_, i64>(4)? != 0,
                    journal_len: r.get(5)?,
                    pushed_latest_ms: r.get(6)?,
                })
            },
        )?)
    }

    /// Journals every shared row, and with `transitions_from_ms` rewinds the transitions
    /// cursor to the first one received since then: the full resync after an overflow
    /// (`None`), after an outage (recent transitions), and what `migrate-store` pushes
    /// (`Some(i64::MIN)`: all). Not bounded by `journal_max` (the tables bound it).
    pub fn journal_everything(&self, transitions_from_ms: Option<i64>) -> Result<(), StoreError> {
        let tx = super::immediate(&self.conn)?;
        for (tbl, k1, k2) in SHARED {
            let (k1, k2) = (k1.replace("X.", ""), k2.replace("X.", ""));
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO shared_outbox (tbl, k1, k2) SELECT '{tbl}', {k1}, {k2} FROM {tbl}"
                ),
                [],
            )?;
        }
        tx.execute("UPDATE shared_sync SET resync = 0", [])?;
        if let Some(from) = transitions_from_ms {
            tx.execute(
                "UPDATE shared_sync SET pushed_transition = min(pushed_transition,
                   (SELECT coalesce(min(id), (SELECT coalesce(max(id), 0) + 1 FROM transitions)) - 1
                    FROM transitions WHERE received_ms >= ?1))",
                params![from],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The oldest `limit` journal keys with their rows' current state.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<(i64, SharedRow)>, StoreError> {
        let keys: Vec<(i64, String, String, String)> = {
            let mut st = self
                .conn
                .prepare_cached("SELECT id, tbl, k1, k2 FROM shared_outbox ORDER BY id LIMIT ?1")?;
            let rows = st.query_map(params![limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(keys.len());
        for (id, tbl, k1, k2) in keys {
            if let Some(row) = self.read_shared(&tbl, &k1, &k2)? {
                out.push((id, row));
            } else {
                // A key of a table we do not share (a future version's): drop it.
                self.conn
                    .execute("DELETE FROM shared_outbox WHERE id = ?1", params![id])?;
            }
        }
        Ok(out)
    }

    fn read_shared(&self, tbl: &str, k1: &str, k2: &str) -> Result<Option<SharedRow>, StoreError> {
        let c = &self.conn;
        Ok(Some(match tbl {
            "tokens" => {
                let Some(hash) = unhex(k1) else {
                    return Ok(None);
                };
                c.query_row(
                    "SELECT role, created_ms, revoked_ms FROM tokens WHERE hash = ?1",
                    params![hash],
                    |r| {
                        Ok(SharedRow::Token {
                            hash: hash.clone(),
                            role: r.get(0)?,
                            created_ms: r.get(1)?,
                            revoked_ms: r.get(2)?,
                        })
                    },
                )
                .optional()?
                // Tokens are never deleted; a vanished row has nothing to share.
                .unwrap_or(SharedRow::Token {
                    hash,
                    role: String::new(),
                    created_ms: 0,
                    revoked_ms: None,
                })
            }
            "users" => match c
                .query_row(
                    "SELECT phc, created_ms FROM users WHERE name = ?1",
                    params![k1],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
            {
                Some((phc, created_ms)) => SharedRow::User {
                    name: k1.into(),
                    phc,
                    created_ms,
                },
                None => return Ok(None),
            },
            "nodes" => {
                let state = c
                    .query_row(
                        "SELECT name, pubkey, key_mismatch, mismatch_key, private_ip, first_seen_ms
                         FROM nodes WHERE node_type = ?1 AND node_id = ?2",
                        params![k1, k2],
                        |r| {
                            Ok(SharedNode {
                                name: r.get(0)?,
                                pubkey: r.get(1)?,
                                key_mismatch: r.get::<_, i64>(2)? != 0,
                                mismatch_key: r.get(3)?,
                                private_ip: r.get(4)?,
                                first_seen_ms: r.get(5)?,
                            })
                        },
                    )
                    .optional()?;
                let deleted_ms = c
                    .query_row(
                        "SELECT deleted_ms FROM shared_deleted WHERE node_type = ?1 AND node_id = ?2",
                        params![k1, k2],
                        |r| r.get(0),
                    )
                    .optional()?;
                SharedRow::Node {
                    node_type: k1.into(),
                    node_id: k2.into(),
                    deleted_ms,
                    state,
                }
            }
            "forgotten_keys" => match c
                .query_row(
                    "SELECT node_type, node_id, forgotten_ms FROM forgotten_keys WHERE fingerprint = ?1",
                    params![k1],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?
            {
                Some((node_type, node_id, forgotten_ms)) => SharedRow::ForgottenKey {
                    fingerprint: k1.into(),
                    node_type,
                    node_id,
                    forgotten_ms,
                },
                // Trimmed locally: tombstones only accumulate in the shared store.
                None => return Ok(None),
            },
            "key_approvals" => SharedRow::Approval {
                node_type: k1.into(),
                node_id: k2.into(),
                row: c
                    .query_row(
                        "SELECT fingerprint, approved_ms FROM key_approvals WHERE node_type = ?1 AND node_id = ?2",
                        params![k1, k2],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?,
            },
            "maintenance" => SharedRow::Maintenance {
                target: k1.into(),
                row: c
                    .query_row(
                        "SELECT reason, by, since_ms, until_ms FROM maintenance WHERE target = ?1",
                        params![k1],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?,
            },
            _ => return Ok(None),
        }))
    }

    /// Removes journal keys PostgreSQL committed. A key journalled again since (a newer
    /// change) has a new id and stays.
    pub fn outbox_done(&self, ids: &[i64]) -> Result<(), StoreError> {
        let tx = super::immediate(&self.conn)?;
        {
            let mut del = tx.prepare_cached("DELETE FROM shared_outbox WHERE id = ?1")?;
            for id in ids {
                del.execute(params![id])?;
            }
        }
        tx.execute("DELETE FROM shared_deleted WHERE node_type || char(0) || node_id NOT IN (SELECT k1 || char(0) || k2 FROM shared_outbox WHERE tbl = 'nodes')", [])?;
        tx.commit()?;
        Ok(())
    }

    /// Transitions after local id `cursor`, oldest first. This manager's own maintenance
    /// events (boot id `''`, a per-collector numbering) get a shared key: boot id `origin`
    /// (this store's sync origin) and seq their local id, which is never reused; events
    /// pulled from other managers (boot id theirs) are in PostgreSQL already and skipped.
    /// Returns the rows and the highest id looked at, the next cursor.
    pub fn transitions_after(
        &self,
        cursor: i64,
        limit: usize,
        origin: &str,
    ) -> Result<(Vec<SharedTransition>, i64), StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, node_type, node_id, boot_id, seq, at_ms, received_ms, service, from_status, to_status, reasons
             FROM transitions WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let mut high = cursor;
        let mut out = Vec::new();
        let rows = st.query_map(params![cursor, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                SharedTransition {
                    node_type: r.get(1)?,
                    node_id: r.get(2)?,
                    boot_id: r.get(3)?,
                    seq: r.get(4)?,
                    at_ms: r.get(5)?,
                    received_ms: r.get(6)?,
                    service: r.get(7)?,
                    from: r.get(8)?,
                    to: r.get(9)?,
                    reasons: r.get(10)?,
                },
            ))
        })?;
        for row in rows {
            let (id, mut t) = row?;
            high = high.max(id);
            if t.node_type != super::MAINTENANCE_EVENT {
                out.push(t);
            } else if t.boot_id.is_empty() {
                t.boot_id = origin.to_string();
                t.seq = id;
                out.push(t);
            }
        }
        Ok((out, high))
    }

    /// Each node's current `(boot id, seq)` from latest reports received after `after_ms`.
    pub fn boots_after(&self, after_ms: i64) -> Result<Vec<SharedBoot>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT l.node_type, l.node_id, l.boot_id, l.seq, coalesce(b.first_seen_ms, l.received_ms), l.received_ms
             FROM latest l LEFT JOIN boots b
               ON b.node_type = l.node_type AND b.node_id = l.node_id AND b.boot_id = l.boot_id
             WHERE l.received_ms > ?1 AND l.boot_id IS NOT NULL",
        )?;
        let rows = st.query_map(params![after_ms], |r| {
            Ok(SharedBoot {
                node_type: r.get(0)?,
                node_id: r.get(1)?,
                boot_id: r.get(2)?,
                max_seq: r.get(3)?,
                first_seen_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_pushed_latest_ms(&self, ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE shared_sync SET pushed_latest_ms = max(pushed_latest_ms, ?1)",
            params![ms],
        )?;
        Ok(())
    }

    pub fn set_pushed_transition(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE shared_sync SET pushed_transition = max(pushed_transition, ?1)",
            params![id],
        )?;
        Ok(())
    }

    /// Applies rows pulled from PostgreSQL and the new cursor in one transaction; the
    /// journal keys the apply itself adds are removed (no echo). The writer thread sees the
    /// change through `data_version` and reloads tokens and nodes.
    pub fn apply_pulled(
        &self,
        rows: &[SharedRow],
        transitions: &[SharedTransition],
        boots: &[SharedBoot],
        cursor: i64,
    ) -> Result<(), StoreError> {
        // This manager's own maintenance events come back under its origin: it holds
        // them already (boot id '').
        let own = self.sync_state()?.origin;
        let tx = super::immediate(&self.conn)?;
        let before = journal_high(&tx)?;
        for row in rows {
            apply_row(&tx, row)?;
        }
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO transitions (node_type, node_id, boot_id, seq, at_ms, received_ms, service, from_status, to_status, reasons)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for t in transitions {
                if t.node_type == super::MAINTENANCE_EVENT && t.boot_id == own {
                    continue;
                }
                ins.execute(params![
                    t.node_type,
                    t.node_id,
                    t.boot_id,
                    t.seq,
                    t.at_ms,
                    t.received_ms,
                    t.service,
                    t.from,
                    t.to,
                    t.reasons
                ])?;
            }
        }
        {
            let mut floor = tx.prepare_cached(
                "INSERT INTO shared_floor (node_type, node_id, boot_id, max_seq, first_seen_ms)
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM nodes WHERE node_type = ?1 AND node_id = ?2)
                 ON CONFLICT (node_type, node_id, boot_id) DO UPDATE SET max_seq = max(max_seq, excluded.max_seq)",
            )?;
            let mut trim = tx.prepare_cached(
                "DELETE FROM shared_floor WHERE node_type = ?1 AND node_id = ?2 AND boot_id NOT IN
                 (SELECT boot_id FROM shared_floor WHERE node_type = ?1 AND node_id = ?2
                  ORDER BY first_seen_ms DESC, boot_id DESC LIMIT ?3)",
            )?;
            for b in boots {
                let v = params![
                    b.node_type,
                    b.node_id,
                    b.boot_id,
                    b.max_seq,
                    b.first_seen_ms
                ];
                if floor.execute(v)? == 1 {
                    trim.execute(params![b.node_type, b.node_id, super::BOOTS_KEPT as i64])?;
                }
            }
        }
        unjournal_since(&tx, before)?;
        tx.execute(
            "UPDATE shared_sync SET pull_cursor = max(pull_cursor, ?1)",
            params![cursor],
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn apply_row(tx: &Connection, row: &SharedRow) -> Result<(), StoreError> {
    match row {
        SharedRow::Token {
            hash,
            role,
            created_ms,
            revoked_ms,
        } => {
            // A revoke is never undone: the earliest revocation stays.
            tx.execute(
                "INSERT INTO tokens (role, hash, created_ms, revoked_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (hash) DO UPDATE SET revoked_ms =
                   coalesce(min(tokens.revoked_ms, excluded.revoked_ms), tokens.revoked_ms, excluded.revoked_ms)",
                params![role, hash, created_ms, revoked_ms],
            )?;
        }
        SharedRow::User {
            name,
            phc,
            created_ms,
        } => {
            tx.execute(
                "INSERT INTO users (name, phc, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET phc = excluded.phc",
                params![name, phc, created_ms],
            )?;
        }
        SharedRow::Node {
            node_type,
            node_id,
            deleted_ms,
            state,
        } => {
            if let Some(d) = deleted_ms {
                // A pin made here after the forget survives it (it is pushed in turn).
                tx.execute(
                    "DELETE FROM nodes WHERE node_type = ?1 AND node_id = ?2 AND first_seen_ms <= ?3",
                    params![node_type, node_id, d],
                )?;
            }
            if let Some(s) = state {
                // The shared pin wins; a different local pin becomes the mismatch.
                tx.execute(
                    "INSERT INTO nodes (node_type, node_id, name, pubkey, key_mismatch, mismatch_key, private_ip, first_seen_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (node_type, node_id) DO UPDATE SET
                       key_mismatch = CASE WHEN nodes.pubkey IS NOT NULL AND excluded.pubkey IS NOT NULL
                                            AND nodes.pubkey != excluded.pubkey THEN 1
                                      ELSE max(nodes.key_mismatch, excluded.key_mismatch) END,
                       mismatch_key = CASE WHEN nodes.pubkey IS NOT NULL AND excluded.pubkey IS NOT NULL
                                            AND nodes.pubkey != excluded.pubkey THEN nodes.pubkey
                                      ELSE coalesce(nodes.mismatch_key, excluded.mismatch_key) END,
                       pubkey = coalesce(excluded.pubkey, nodes.pubkey)",
                    params![
                        node_type,
                        node_id,
                        s.name,
                        s.pubkey,
                        s.key_mismatch as i64,
                        s.mismatch_key,
                        s.private_ip,
                        s.first_seen_ms
                    ],
                )?;
            }
        }
        SharedRow::ForgottenKey {
            fingerprint,
            node_type,
            node_id,
            forgotten_ms,
        } => {
            tx.execute(
                "INSERT OR REPLACE INTO forgotten_keys (fingerprint, node_type, node_id, forgotten_ms) VALUES (?1, ?2, ?3, ?4)",
                params![fingerprint, node_type, node_id, forgotten_ms],
            )?;
        }
        SharedRow::Approval {
            node_type,
            node_id,
            row,
        } => match row {
            Some((fp, at)) => {
                tx.execute(
                    "INSERT OR REPLACE INTO key_approvals (node_type, node_id, fingerprint, approved_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![node_type, node_id, fp, at],
                )?;
            }
            None => {
                tx.execute(
                    "DELETE FROM key_approvals WHERE node_type = ?1 AND node_id = ?2",
                    params![node_type, node_id],
                )?;
            }
        },
        SharedRow::Maintenance { target, row } => match row {
            Some((reason, by, since, until)) => {
                tx.execute(
                    "INSERT OR REPLACE INTO maintenance (target, reason, by, since_ms, until_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![target, reason, by, since, until],
                )?;
            }
            None => {
                tx.execute("DELETE FROM maintenance WHERE target = ?1", params![target])?;
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DurableWrite, Role};
    use sr_protocol::NodeType;

    fn pin(id: &str, key: &str, at: i64) -> DurableWrite {
        DurableWrite::Pin {
            node_type: NodeType::Db,
            node_id: id.into(),
            name: id.into(),
            key: Some(key.into()),
            private_ip: None,
            at_ms: at,
        }
    }

    #[test]
    fn nothing_is_journalled_until_sharing_is_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.create_token(Role::Db).unwrap();
        assert_eq!(s.sync_state().unwrap().journal_len, 0);
        s.enable_sharing(100).unwrap();
        s.create_token(Role::Db).unwrap();
        s.set_user("alice", "pw").unwrap();
        let batch = s.outbox_batch(10).unwrap();
        assert_eq!(batch.len(), 2);
        assert!(matches!(&batch[0].1, SharedRow::Token { role, .. } if role == "db"));
        assert!(matches!(&batch[1].1, SharedRow::User { name, .. } if name == "alice"));
    }

    #[test]
    fn the_journal_is_bounded_and_its_overflow_asks_for_a_full_resync() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.enable_sharing(100).unwrap();
        s.journal_everything(None).unwrap();
        assert!(!s.sync_state().unwrap().resync);
        for _ in 0..130 {
            s.create_token(Role::Broker).unwrap();
        }
        let st = s.sync_state().unwrap();
        assert_eq!(st.journal_len, 100, "bounded");
        assert_eq!(st.overflow, 30, "every key past the bound is counted");
        assert!(st.resync);
        // Nothing was refused, and the resync journals every token again.
        assert_eq!(s.list_tokens().unwrap().len(), 130);
        s.journal_everything(None).unwrap();
        let st = s.sync_state().unwrap();
        assert_eq!(st.journal_len, 130);
        assert!(!st.resync);
    }

    #[test]
    fn a_key_changed_again_while_pushing_stays_journalled() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.enable_sharing(100).unwrap();
        let (id, _) = s.create_token_with_id(Role::Db).unwrap();
        let batch = s.outbox_batch(10).unwrap();
        // Revoked after the batch was read, before PostgreSQL committed it.
        s.revoke_token(id).unwrap();
        s.outbox_done(&batch.iter().map(|b| b.0).collect::<Vec<_>>())
            .unwrap();
        let again = s.outbox_batch(10).unwrap();
        assert_eq!(again.len(), 1);
        assert!(matches!(
            &again[0].1,
            SharedRow::Token {
                revoked_ms: Some(_),
                ..
            }
        ));
        s.outbox_done(&[again[0].0]).unwrap();
        assert!(s.outbox_batch(10).unwrap().is_empty());
    }

    #[test]
    fn pulled_rows_apply_idempotently_and_are_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.enable_sharing(100).unwrap();
        s.commit_durable(&[pin("n1", "KEY_LOCAL", 10)]).unwrap();
        s.outbox_done(
            &s.outbox_batch(10)
                .unwrap()
                .iter()
                .map(|b| b.0)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let rows = vec![
            SharedRow::Token {
                hash: vec![7; 32],
                role: "admin".into(),
                created_ms: 1,
                revoked_ms: None,
            },
            // Another manager pinned n1 first: its key wins here, ours is the mismatch.
            SharedRow::Node {
                node_type: "db".into(),
                node_id: "n1".into(),
                deleted_ms: None,
                state: Some(SharedNode {
                    name: "n1".into(),
                    pubkey: Some("KEY_SHARED".into()),
                    key_mismatch: false,
                    mismatch_key: None,
                    private_ip: None,
                    first_seen_ms: 5,
                }),
            },
        ];
        let t = SharedTransition {
            node_type: "db".into(),
            node_id: "n1".into(),
            boot_id: "b".into(),
            seq: 1,
            at_ms: 1,
            received_ms: 2,
            service: None,
            from: "OK".into(),
            to: "Fail".into(),
            reasons: "[]".into(),
        };
        for _ in 0..2 {
            s.apply_pulled(&rows, std::slice::from_ref(&t), &[], 42)
                .unwrap();
        }
        assert_eq!(s.sync_state().unwrap().journal_len, 0, "no echo");
        assert_eq!(s.sync_state().unwrap().pull_cursor, 42);
        assert_eq!(s.active_token_hashes().unwrap().len(), 1);
        let n = &s.list_nodes().unwrap()[0];
        assert_eq!(n.pinned_key.as_deref(), Some("KEY_SHARED"));
        assert!(n.key_mismatch);
        assert_eq!(n.mismatch_key.as_deref(), Some("KEY_LOCAL"));
        assert_eq!(s.transitions(NodeType::Db, "n1", 10).unwrap().len(), 1);
        // A forget pulled from elsewhere removes the node pinned before it...
        let forget = SharedRow::Node {
            node_type: "db".into(),
            node_id: "n1".into(),
            deleted_ms: Some(20),
            state: None,
        };
        s.apply_pulled(std::slice::from_ref(&forget), &[], &[], 43)
            .unwrap();
        assert!(s.list_nodes().unwrap().is_empty());
        // ...but not a pin made here after it.
        s.commit_durable(&[pin("n1", "KEY_NEW", 30)]).unwrap();
        s.apply_pulled(&[forget], &[], &[], 44).unwrap();
        assert_eq!(s.list_nodes().unwrap().len(), 1);
    }

    #[test]
    fn a_local_forget_then_a_new_pin_journals_both() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.enable_sharing(100).unwrap();
        s.commit_durable(&[pin("n1", "K1", 10)]).unwrap();
        s.forget_node("n1", None).unwrap();
        s.commit_durable(&[pin("n1", "K2", i64::MAX / 2)]).unwrap();
        let batch = s.outbox_batch(10).unwrap();
        let node = batch
            .iter()
            .find_map(|(_, r)| match r {
                SharedRow::Node {
                    deleted_ms, state, ..
                } => Some((*deleted_ms, state.clone())),
                _ => None,
            })
            .unwrap();
        assert!(node.0.is_some(), "the forget is remembered with its time");
        assert_eq!(node.1.unwrap().pubkey.as_deref(), Some("K2"));
        s.outbox_done(&batch.iter().map(|b| b.0).collect::<Vec<_>>())
            .unwrap();
        let deleted: i64 = s
            .conn
            .query_row("SELECT count(*) FROM shared_deleted", [], |r| r.get(0))
            .unwrap();
        assert_eq!(deleted, 0);
    }
}
