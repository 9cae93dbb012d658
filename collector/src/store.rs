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
//! Nothing here logs; errors go back to the caller as [`StoreError`].

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension};
use sr_protocol::NodeType;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File name of the database inside `state_dir`.
pub const DB_FILE: &str = "collector.db";
/// Prefix of every token we issue, so a leaked one is recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "srt_";

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

/// What a token may do. Reporter roles may PUT only their own node type and GET
/// `/managers`; `admin` may read everything and may not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Manager,
    Db,
    Broker,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Manager, Role::Db, Role::Broker, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Db => "db",
            Role::Broker => "broker",
            Role::Admin => "admin",
        }
    }

    /// The node type this role may report as, if any.
    pub fn reports_as(self) -> Option<NodeType> {
        match self {
            Role::Manager => Some(NodeType::Manager),
            Role::Db => Some(NodeType::Db),
            Role::Broker => Some(NodeType::Broker),
            Role::Admin => None,
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected manager, db, broker or admin"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as `tokens list` shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub id: i64,
    pub role: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

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
}

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
/// racing first contact learns which key won.
pub type PinOutcome = Vec<Option<String>>;

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    role TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    phc TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    pubkey TEXT,
    key_mismatch INTEGER NOT NULL DEFAULT 0,
    mismatch_key TEXT,
    private_ip TEXT,
    first_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (node_type, node_id)
);
CREATE TABLE IF NOT EXISTS latest (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    skew_ms INTEGER NOT NULL,
    signed INTEGER NOT NULL,
    body BLOB NOT NULL,
    boot_id TEXT,
    seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_type, node_id),
    FOREIGN KEY (node_type, node_id) REFERENCES nodes (node_type, node_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS boots (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (node_type, node_id, boot_id),
    FOREIGN KEY (node_type, node_id) REFERENCES nodes (node_type, node_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS transitions (
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
    PRIMARY KEY (node_type, node_id, boot_id, seq)
);
";

/// Boots remembered per node; older ones are dropped (a report from a forgotten boot id is
/// treated as a new boot, which is why the window is generous).
pub const BOOTS_KEPT: usize = 16;

/// Tokens are 256 random bits, so a fast hash is enough: nobody can brute-force a 2^256
/// preimage, and a slow KDF (argon2) would cost milliseconds of CPU on each of the
/// thousands of reports per second. Passwords are low-entropy, so users get argon2.
pub fn token_hash(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().try_into().expect("SHA-256 digests are 32 bytes")
}

fn node_type_of(s: &str) -> Result<NodeType, StoreError> {
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
        conn.execute_batch(SCHEMA)?;
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

    // ---- tokens -------------------------------------------------------------------

    /// Creates a token for `role` and returns its secret. Only the SHA-256 is stored:
    /// print the secret once and forget it.
    pub fn create_token(&self, role: Role) -> Result<String, StoreError> {
        self.create_token_with_id(role).map(|(_, secret)| secret)
    }

    /// Like [`Store::create_token`], also returning the id `tokens list|revoke` use.
    pub fn create_token_with_id(&self, role: Role) -> Result<(i64, String), StoreError> {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| StoreError::Random)?;
        let secret = format!("{TOKEN_PREFIX}{}", B64.encode(raw));
        self.conn.execute(
            "INSERT INTO tokens (role, hash, created_ms) VALUES (?1, ?2, ?3)",
            params![
                role.as_str(),
                &token_hash(&secret)[..],
                crate::clock::now_ms()
            ],
        )?;
        Ok((self.conn.last_insert_rowid(), secret))
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT id, role, created_ms, revoked_ms FROM tokens ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(TokenInfo {
                id: r.get(0)?,
                role: r.get(1)?,
                created_ms: r.get(2)?,
                revoked_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes token `id`; false when there is no such active token.
    pub fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            params![id, crate::clock::now_ms()],
        )?;
        Ok(n == 1)
    }

    /// The role of an active token, or `None` for an unknown or revoked one.
    pub fn lookup_token(&self, secret: &str) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = self
            .conn
            .query_row(
                "SELECT role FROM tokens WHERE hash = ?1 AND revoked_ms IS NULL",
                params![&token_hash(secret)[..]],
                |r| r.get(0),
            )
            .optional()?;
        role.map(|r| r.parse().map_err(|_| StoreError::BadRole(r)))
            .transpose()
    }

    /// Hashes and roles of every active token, for the server's in-memory cache.
    pub fn active_token_hashes(&self) -> Result<Vec<([u8; 32], Role)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT hash, role FROM tokens WHERE revoked_ms IS NULL")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, role) = row?;
            let role: Role = role.parse().map_err(|_| StoreError::BadRole(role))?;
            if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                out.push((hash, role));
            }
        }
        Ok(out)
    }

    // ---- users --------------------------------------------------------------------

    /// Creates or replaces reader `name` with an argon2id hash of `password`.
    pub fn set_user(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| StoreError::Random)?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Hash(e.to_string()))?;
        let phc = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| StoreError::Hash(e.to_string()))?
            .to_string();
        self.conn.execute(
            "INSERT INTO users (name, phc, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET phc = excluded.phc",
            params![name, phc, crate::clock::now_ms()],
        )?;
        Ok(())
    }

    /// The stored argon2 PHC string of `name`, for verification off the store's thread.
    pub fn user_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT phc FROM users WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether `password` matches `name`'s stored hash. Unknown users are simply `false`.
    pub fn verify_user(&self, name: &str, password: &str) -> Result<bool, StoreError> {
        Ok(self
            .user_hash(name)?
            .is_some_and(|phc| verify_password(&phc, password)))
    }

    // ---- nodes --------------------------------------------------------------------

    pub fn list_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT n.node_type, n.node_id, n.name, n.pubkey, n.key_mismatch, n.mismatch_key, n.private_ip, n.first_seen_ms, l.received_ms
             FROM nodes n LEFT JOIN latest l ON l.node_type = n.node_type AND l.node_id = n.node_id
             ORDER BY n.node_type, n.name, n.node_id",
        )?;
        let rows = st.query_map([], |r| {
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
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets every node whose id or name is `selector` (optionally only of `node_type`):
    /// its pin, key-mismatch flag, latest report and replay state. The next report pins
    /// afresh. Transition history is kept for the audit trail. Returns how many went.
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

    /// Every node with its latest report and boots, for the server's memory.
    pub fn load_nodes(&self) -> Result<Vec<StoredNode>, StoreError> {
        let rows = self.list_nodes()?;
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
            out.push(StoredNode {
                row,
                node_type,
                latest,
                boots,
            });
        }
        Ok(out)
    }

    /// Applies durable writes in one transaction (one fsync for the whole batch: group
    /// commit). Returns, for each `Pin`, the key pinned after the batch.
    pub fn commit_durable(&mut self, writes: &[DurableWrite]) -> Result<PinOutcome, StoreError> {
        let tx = self.conn.transaction()?;
        let mut pins = Vec::new();
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
                    pins.push(pinned);
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
                }
            }
        }
        tx.commit()?;
        Ok(pins)
    }

    /// Writes the latest reports behind (one transaction). Rows of nodes forgotten in the
    /// meantime are skipped, so a flush never resurrects a forgotten node.
    pub fn write_latest(&mut self, rows: &[LatestRow]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
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
            let mut trim = tx.prepare_cached(
                "DELETE FROM boots WHERE node_type = ?1 AND node_id = ?2 AND boot_id NOT IN
                 (SELECT boot_id FROM boots WHERE node_type = ?1 AND node_id = ?2 ORDER BY first_seen_ms DESC, rowid DESC LIMIT ?3)",
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
                if update.execute(values)? == 0 {
                    if !exists.exists(params![t, r.node_id])? {
                        continue;
                    }
                    insert.execute(values)?;
                }
                node.execute(params![t, r.node_id, r.name, r.private_ip])?;
                // Boots are written only when a new one appears: the current boot's
                // sequence travels in `latest`, so a steady node costs one row per flush.
                if let Some(b) = &r.boot_id {
                    if boot.execute(params![t, r.node_id, b, r.seq as i64, r.received_ms])? == 1 {
                        trim.execute(params![t, r.node_id, BOOTS_KEPT as i64])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

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

/// Constant-time argon2 verification of `password` against a PHC string.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn the_store_and_its_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state");
        let s = Store::open(&dir).unwrap();
        s.create_token(Role::Db).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(s.path()), 0o600);
        let wal = dir.join(format!("{DB_FILE}-wal"));
        assert_eq!(
            mode(&wal),
            0o600,
            "SQLite's WAL file follows the store's mode"
        );
    }

    #[test]
    fn tokens_are_stored_as_hashes_and_revocable() {
        let (dir, s) = store();
        let (id, secret) = s.create_token_with_id(Role::Db).unwrap();
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() > 40);
        assert_eq!(s.lookup_token(&secret).unwrap(), Some(Role::Db));
        assert_eq!(s.lookup_token("srt_nope").unwrap(), None);
        let raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        let wal = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))).unwrap_or_default();
        let needle = secret.as_bytes();
        for bytes in [&raw, &wal] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "secret stored in clear"
            );
        }
        assert!(s.revoke_token(id).unwrap());
        assert!(!s.revoke_token(id).unwrap(), "second revoke is a no-op");
        assert_eq!(s.lookup_token(&secret).unwrap(), None);
        let listed = s.list_tokens().unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_ms.is_some());
    }

    #[test]
    fn users_verify_with_argon2() {
        let (_d, s) = store();
        s.set_user("admin", "correct horse").unwrap();
        assert!(s.verify_user("admin", "correct horse").unwrap());
        assert!(!s.verify_user("admin", "wrong").unwrap());
        assert!(!s.verify_user("nobody", "correct horse").unwrap());
        assert!(s
            .user_hash("admin")
            .unwrap()
            .unwrap()
            .starts_with("$argon2"));
    }

    fn pin(id: &str, key: &str) -> DurableWrite {
        DurableWrite::Pin {
            node_type: NodeType::Db,
            node_id: id.into(),
            name: format!("{id}-name"),
            key: Some(key.into()),
            private_ip: None,
            at_ms: 1,
        }
    }

    #[test]
    fn a_pin_is_never_replaced_and_forget_clears_it() {
        let (_d, mut s) = store();
        assert_eq!(
            s.commit_durable(&[pin("n1", "A")]).unwrap(),
            vec![Some("A".to_string())]
        );
        assert_eq!(
            s.commit_durable(&[pin("n1", "B")]).unwrap(),
            vec![Some("A".to_string())]
        );
        s.commit_durable(&[DurableWrite::FlagMismatch {
            node_type: NodeType::Db,
            node_id: "n1".into(),
            key: "B".into(),
        }])
        .unwrap();
        let n = &s.list_nodes().unwrap()[0];
        assert!(n.key_mismatch);
        assert_eq!(n.mismatch_key.as_deref(), Some("B"));
        assert_eq!(s.forget_node("n1-name", Some(NodeType::Broker)).unwrap(), 0);
        assert_eq!(s.forget_node("n1-name", None).unwrap(), 1);
        assert_eq!(
            s.commit_durable(&[pin("n1", "B")]).unwrap(),
            vec![Some("B".to_string())]
        );
        assert!(!s.list_nodes().unwrap()[0].key_mismatch);
    }

    #[test]
    fn transitions_are_deduplicated_by_boot_and_seq() {
        let (_d, mut s) = store();
        s.commit_durable(&[pin("n1", "A")]).unwrap();
        let t = |seq| TransitionRow {
            boot_id: "b1".into(),
            seq,
            at_ms: 5,
            service: None,
            from: "OK".into(),
            to: "Fail".into(),
            reasons_json: "[]".into(),
        };
        let w = DurableWrite::Transitions {
            node_type: NodeType::Db,
            node_id: "n1".into(),
            received_ms: 9,
            rows: vec![t(1), t(2)],
        };
        s.commit_durable(std::slice::from_ref(&w)).unwrap();
        s.commit_durable(&[w]).unwrap();
        assert_eq!(s.transitions(NodeType::Db, "n1", 10).unwrap().len(), 2);
    }

    #[test]
    fn latest_is_written_behind_and_restored_with_replay_state() {
        let (d, mut s) = store();
        s.commit_durable(&[pin("n1", "A")]).unwrap();
        let mut row = LatestRow {
            node_type: NodeType::Db,
            node_id: "n1".into(),
            name: "db1".into(),
            private_ip: Some("10.0.0.1".into()),
            received_ms: 100,
            skew_ms: -3,
            signed: true,
            body: b"{}".to_vec(),
            boot_id: Some("b1".into()),
            seq: 7,
        };
        s.write_latest(std::slice::from_ref(&row)).unwrap();
        row.boot_id = Some("b2".into());
        row.seq = 2;
        row.received_ms = 200;
        s.write_latest(std::slice::from_ref(&row)).unwrap();
        // A node that is not pinned (forgotten meanwhile) is not resurrected.
        s.write_latest(&[LatestRow {
            node_id: "ghost".into(),
            ..row.clone()
        }])
        .unwrap();
        drop(s);
        let s = Store::open(d.path()).unwrap();
        let nodes = s.load_nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(
            nodes[0].boots,
            vec![("b1".to_string(), 7), ("b2".to_string(), 2)]
        );
        assert_eq!(nodes[0].latest.as_ref().unwrap(), &row);
        assert_eq!(nodes[0].row.name, "db1");
        assert_eq!(s.integrity_check().unwrap(), "ok");
    }

    #[test]
    fn a_forgotten_node_with_a_latest_row_is_not_resurrected_until_pinned_again() {
        let (_d, mut s) = store();
        s.commit_durable(&[pin("n1", "A")]).unwrap();
        let row = LatestRow {
            node_type: NodeType::Db,
            node_id: "n1".into(),
            name: "db1".into(),
            private_ip: None,
            received_ms: 100,
            skew_ms: 0,
            signed: true,
            body: b"{}".to_vec(),
            boot_id: Some("b1".into()),
            seq: 1,
        };
        s.write_latest(std::slice::from_ref(&row)).unwrap();
        assert_eq!(s.forget_node("n1", Some(NodeType::Db)).unwrap(), 1);
        // The flush after the forget: the update finds no row and the node is gone.
        s.write_latest(std::slice::from_ref(&row)).unwrap();
        assert!(s.load_nodes().unwrap().is_empty());
        // First contact again: the next flush inserts the row afresh.
        s.commit_durable(&[pin("n1", "B")]).unwrap();
        s.write_latest(std::slice::from_ref(&row)).unwrap();
        let nodes = s.load_nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].latest.as_ref(), Some(&row));
        assert_eq!(nodes[0].row.pinned_key.as_deref(), Some("B"));
    }
}
