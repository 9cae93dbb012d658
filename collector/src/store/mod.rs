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
//! Rooms: [`schema`] (tables and pragmas), [`tokens`] (token secrets, hashes, roles),
//! [`users`] (reader users, argon2), [`nodes`] (pins, mismatch flags, latest reports and
//! replay state, the durable batch), [`transitions`] (the status history). Each adds its
//! methods to the one [`Store`], which owns the connection.
//!
//! Nothing here logs; errors go back to the caller as [`StoreError`].

mod nodes;
mod schema;
mod tokens;
mod transitions;
mod users;

pub use nodes::{
    DurableWrite, ForgetOutcome, Forgotten, LatestRow, NodeRow, PinOutcome, PinRefused, StoredNode,
    BOOTS_KEPT, TOMBSTONES_KEPT,
};
pub use tokens::{token_hash, Role, TokenInfo, TOKEN_PREFIX};
pub use transitions::TransitionRow;
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
}

pub struct Store {
    /// The one connection; each room's `impl Store` uses it.
    conn: Connection,
    path: PathBuf,
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
        let conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(schema::SCHEMA)?;
        Ok(Store { conn, path })
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
