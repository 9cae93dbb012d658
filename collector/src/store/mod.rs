//! The collector's embedded database: SQLite (rusqlite, bundled) in `state_dir/collector.db`.
//!
//! What it holds: tokens (hashes only), reader users (argon2 hashes), nodes with their
//! pinned public keys and key-mismatch flags, the latest report per node, the boot ids
//! seen per node (replay state), and the history of status transitions.
//!
//! Durability contract (see also docs/protocol.md):
//! - The database runs in WAL mode with `synchronous = FULL`, so every committed
//!   transaction is on disk when `commit` returns, and a `kill -9` at any point leaves a
//!   database that opens to the last committed state.
//! - Pins, key-mismatch flags and transitions are written by [`Store::commit_durable`],
//!   which the ingest path awaits **before** it answers 200.
//! - The latest report per node and the replay counters are written behind, in batches,
//!   by the server's flush task at least once per second ([`crate::server::FLUSH_INTERVAL`]).
//!   After a crash the snapshot can therefore be up to one flush interval old.
//!
//! Rooms: [`outbox`] (the journal of shared rows for a PostgreSQL store), [`changes`] (what
//! other connections changed, for the running collector's memory), [`schema`] (tables and pragmas), [`tokens`] (token secrets, hashes, roles),
//! [`users`] (reader users, argon2), [`nodes`] (pins, mismatch flags, latest reports and
//! replay state, the durable batch), [`transitions`] (the status history), [`admission`]
//! (node ids held for approval, and the expiry of node ids nobody reports for). Each adds its
//! methods to the one [`Store`], which owns the connection.
//!
//! Bounds: the transitions table keeps at most [`Retention::per_node`] rows per node
//! (enforced in the same transaction as each insert) and none older than
//! [`Retention::max_age_ms`] (swept by the writer at least once a minute).
//!
//! Damage: [`Store::preflight`] (run by `collector run` and `collector validate`) refuses a
//! store that is missing, empty, holds no token or fails `PRAGMA quick_check`, and every
//! open refuses a file SQLite calls corrupt, each with a recovery path in the message.
//!
//! Nothing here logs; errors go back to the caller as [`StoreError`].

mod admission;
mod changes;
mod maintenance;
mod nodes;
mod outbox;
mod schema;
mod tokens;
mod transitions;
mod users;

pub use admission::{Approval, Held, HeldReport, PendingRow, UNREPORTED_FORGET_AFTER_MS};
pub use changes::{ChangeMarks, Changes, NodeFloors, TOUCHED_MAX};
pub use maintenance::{MaintenanceRow, WindowEvent, EVENT_TYPE as MAINTENANCE_EVENT};
pub use nodes::{
    DurableWrite, ForgetOutcome, Forgotten, LatestRow, NodeRow, PinOutcome, PinRefused, StoredNode,
    BOOTS_KEPT, TOMBSTONES_KEPT,
};
pub use outbox::{hex, SharedBoot, SharedNode, SharedRow, SharedTransition, SyncState};
pub use tokens::{token_hash, Role, TokenInfo, TOKEN_PREFIX};
pub use transitions::{HistoryFilter, HistoryRow, TransitionRow};
pub use users::verify_password;

use rusqlite::Connection;
use sr_protocol::NodeType;
use std::path::{Path, PathBuf};

/// File name of the database inside `state_dir`.
pub const DB_FILE: &str = "collector.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot generate randomness")]
    Random,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("database holds an unknown role {0:?}")]
    BadRole(String),
    #[error("the store {} is damaged: {problem}.\n{}", path.display(), recovery(path))]
    Damaged { path: PathBuf, problem: String },
}

/// What an operator does about a damaged store, named with its real paths.
fn recovery(db: &Path) -> String {
    let dir = db.parent().unwrap_or(Path::new(".")).display().to_string();
    let db = db.display();
    format!(
        "Recovery: stop the collector; move {db}, {db}-wal and {db}-shm aside (keep them for \
         analysis); then either restore those three files from a backup taken while the \
         collector was stopped, or run `status-reporter collector init --force --state-dir {dir} \
         ...` to create a new store with new tokens and run `status-reporter configure` again \
         on every node with its new token (nodes re-pin their keys on their next report)."
    )
}

/// How much transition history the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rows whose receive time is older than this are swept.
    pub max_age_ms: i64,
    /// The newest rows kept per node.
    pub per_node: usize,
    /// Nodes silent this long are forgotten by the writer's sweep ([`Store::expire_nodes`]).
    pub forget_after_ms: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age_ms: crate::config::DEFAULT_TRANSITIONS_MAX_AGE.as_millis() as i64,
            per_node: crate::config::DEFAULT_TRANSITIONS_PER_NODE,
            forget_after_ms: crate::config::DEFAULT_FORGET_AFTER.as_millis() as i64,
        }
    }
}

pub struct Store {
    /// The one connection; each room's `impl Store` uses it.
    conn: Connection,
    path: PathBuf,
    retention: Retention,
    /// What the write-behind knows the store holds ([`Store::write_latest`]).
    written: nodes::Written,
}

/// A SQLite error that means the file itself is damaged (not busy, not full).
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// A transaction that takes SQLite's write lock at `BEGIN`, waiting out the busy timeout.
/// With more than one writing connection (the writer thread, the CLI, a shared store's sync
/// task), a deferred transaction that reads before it writes fails at once with
/// `SQLITE_BUSY` when another connection committed in between (the busy handler is not
/// consulted for a stale read snapshot): measured as refused reports under a shared store.
pub(crate) fn immediate(conn: &Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
}

pub(crate) fn node_type_of(s: &str) -> Result<NodeType, StoreError> {
    s.parse().map_err(|_| StoreError::BadRole(s.to_string()))
}

impl Store {
    /// Opens (creating if needed) `state_dir/collector.db`. Safe to call while a collector
    /// runs: SQLite's WAL lets the CLI read and make small writes concurrently.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        // 0700: the store holds token hashes, pins and every node's reports. An existing
        // directory (systemd's StateDirectory=) keeps the mode it was given.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(state_dir)
            .map_err(|source| StoreError::StateDir {
                path: state_dir.display().to_string(),
                source,
            })?;
        let path = state_dir.join(DB_FILE);
        // Create the file 0600 before SQLite does (it would use the umask, usually 0644);
        // SQLite gives its -wal and -shm files the main file's mode.
        match std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new().write(true).create_new(true),
            0o600,
        )
        .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(StoreError::StateDir {
                    path: path.display().to_string(),
                    source,
                })
            }
        }
        let opened = (|| -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.execute_batch(schema::SCHEMA)?;
            transitions::migrate_ids(&conn)?;
            conn.execute_batch(maintenance::SCHEMA)?;
            // The shared store's journal (issue 16); its triggers do nothing until enabled.
            conn.execute_batch(outbox::SCHEMA)?;
            conn.execute_batch(&outbox::triggers())?;
            // What this connection changes that a running collector holds in memory.
            conn.execute_batch(changes::SCHEMA)?;
            conn.execute_batch(&changes::temp_triggers())?;
            Ok(conn)
        })();
        match opened {
            Ok(conn) => Ok(Store {
                conn,
                path,
                retention: Retention::default(),
                written: nodes::Written::default(),
            }),
            Err(e) if is_corruption(&e) => Err(StoreError::Damaged {
                problem: format!("SQLite cannot read it ({e})"),
                path,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the store a configured collector expects and refuses it if it is damaged:
    /// missing or empty (a config exists, so `collector init` created it with tokens),
    /// holding no token at all, or failing `PRAGMA quick_check`. Creates nothing.
    pub fn preflight(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join(DB_FILE);
        let damaged = |problem: &str| StoreError::Damaged {
            path: path.clone(),
            problem: problem.to_string(),
        };
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(damaged(
                "it does not exist (was `status-reporter collector init` run with this state_dir?)",
            )),
            Err(e) => return Err(damaged(&format!("cannot read it: {e}"))),
            Ok(m) if !m.is_file() => return Err(damaged("it is not a regular file")),
            Ok(m) if m.len() == 0 => {
                return Err(damaged("it is empty (0 bytes), so it holds no token"))
            }
            Ok(_) => {}
        }
        let store = Store::open(state_dir)?;
        store.quick_check()?;
        let tokens: i64 = store
            .conn
            .query_row("SELECT count(*) FROM tokens", [], |r| r.get(0))?;
        if tokens == 0 {
            return Err(damaged(
                "it holds no token, so every agent and reader would be refused",
            ));
        }
        Ok(store)
    }

    /// `PRAGMA quick_check` (the structural half of `integrity_check`, O(pages)): a
    /// [`StoreError::Damaged`] naming the first problem unless the file is consistent.
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let first: rusqlite::Result<String> =
            self.conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
        match first {
            Ok(ok) if ok == "ok" => Ok(()),
            Ok(problem) => Err(StoreError::Damaged {
                path: self.path.clone(),
                problem: format!(
                    "PRAGMA quick_check: {}",
                    problem.chars().take(300).collect::<String>()
                ),
            }),
            Err(e) if is_corruption(&e) => Err(StoreError::Damaged {
                path: self.path.clone(),
                problem: format!("PRAGMA quick_check: {e}"),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets how much transition history is kept from now on.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = retention;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SQLite's `PRAGMA integrity_check`, `"ok"` when the file is consistent.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// Changes whenever *another* connection (the CLI) commits, so the running collector
    /// notices revoked tokens and forgotten nodes without a restart.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests;
