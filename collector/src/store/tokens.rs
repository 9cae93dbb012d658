//! Tokens: roles, secret generation, and the SHA-256 hashes that are all the store keeps.

use super::{Store, StoreError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, OptionalExtension};
use sr_protocol::NodeType;
use std::str::FromStr;

/// Prefix of every token we issue, so a leaked one is recognisable in a secret scanner.
pub const TOKEN_PREFIX: &str = "srt_";

/// What a token may do. Reporter roles may PUT only their own node type and GET
/// `/managers`; `admin` may read everything and may not report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Manager,
    Db,
    Broker,
    Admin,
    /// Reports as node type `node` (a host that feeds only stack services). Not in
    /// [`Role::ALL`]: `collector init` issues no such token; `tokens create --role node` does.
    Node,
    /// A tier-1 collector pushing its cluster's summary to this tier-2 collector (issue 16):
    /// `PUT /api/tier2/v1/clusters/NAME` only. Not in [`Role::ALL`]: `tokens create --role cluster`.
    Cluster,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Manager, Role::Db, Role::Broker, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Db => "db",
            Role::Broker => "broker",
            Role::Admin => "admin",
            Role::Node => "node",
            Role::Cluster => "cluster",
        }
    }

    /// The node type this role may report as, if any.
    pub fn reports_as(self) -> Option<NodeType> {
        match self {
            Role::Manager => Some(NodeType::Manager),
            Role::Db => Some(NodeType::Db),
            Role::Broker => Some(NodeType::Broker),
            Role::Admin => None,
            Role::Node => Some(NodeType::Node),
            Role::Cluster => None,
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .chain([Role::Node, Role::Cluster])
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?}: expected manager, db, broker, admin, node or cluster")
            })
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

/// Tokens are 256 random bits, so a fast hash is enough: nobody can brute-force a 2^256
/// preimage, and a slow KDF (argon2) would cost milliseconds of CPU on each of the
/// thousands of reports per second. Passwords are low-entropy, so users get argon2.
pub fn token_hash(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().try_into().expect("SHA-256 digests are 32 bytes")
}

impl Store {
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
}
