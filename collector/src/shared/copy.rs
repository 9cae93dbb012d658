//! `collector migrate-store --to postgres`: copies an existing local SQLite store into
//! the shared PostgreSQL store, through the same journal and push as the sync task
//! (every shared row journalled, then pushed in batches keyed as always), so running it
//! twice, or on every manager, writes nothing twice. `--dry-run` only counts.

use super::config::PgStore;
use super::pg::{self, SharedError};
use super::{migrate, sync};
use crate::store::Store;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Rows per shared table (status transitions only: maintenance events are copied too, not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub tokens: i64,
    pub users: i64,
    pub nodes: i64,
    pub forgotten_keys: i64,
    pub key_approvals: i64,
    pub maintenance: i64,
    pub transitions: i64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tokens {}, users {}, nodes {}, forgotten keys {}, key approvals {}, maintenance windows {}, transitions {}",
            self.tokens, self.users, self.nodes, self.forgotten_keys, self.key_approvals,
            self.maintenance, self.transitions
        )
    }
}

/// What the local store holds, per shared table.
pub fn local_counts(store: &Store) -> Result<Counts, crate::StoreError> {
    let c = |sql: &str| store.count(sql);
    Ok(Counts {
        tokens: c("SELECT count(*) FROM tokens")?,
        users: c("SELECT count(*) FROM users")?,
        nodes: c("SELECT count(*) FROM nodes")?,
        forgotten_keys: c("SELECT count(*) FROM forgotten_keys")?,
        key_approvals: c("SELECT count(*) FROM key_approvals")?,
        maintenance: c("SELECT count(*) FROM maintenance")?,
        transitions: c(&format!(
            "SELECT count(*) FROM transitions WHERE node_type != '{}'",
            crate::store::MAINTENANCE_EVENT
        ))?,
    })
}

/// What the shared store holds (live rows only).
pub async fn shared_counts(client: &tokio_postgres::Client) -> Result<Counts, SharedError> {
    let mut out = [0i64; 7];
    for (i, sql) in [
        "SELECT count(*) FROM sr_tokens",
        "SELECT count(*) FROM sr_users",
        "SELECT count(*) FROM sr_nodes WHERE deleted_ms IS NULL",
        "SELECT count(*) FROM sr_forgotten_keys",
        "SELECT count(*) FROM sr_key_approvals WHERE deleted_ms IS NULL",
        "SELECT count(*) FROM sr_maintenance WHERE deleted_ms IS NULL",
        "SELECT count(*) FROM sr_transitions WHERE node_type != 'maintenance'",
    ]
    .iter()
    .enumerate()
    {
        out[i] = client.query_one(*sql, &[]).await?.get(0);
    }
    Ok(Counts {
        tokens: out[0],
        users: out[1],
        nodes: out[2],
        forgotten_keys: out[3],
        key_approvals: out[4],
        maintenance: out[5],
        transitions: out[6],
    })
}

/// Copies the store in `state_dir` into `cfg`'s database; returns the local counts and
/// the shared store's counts afterwards.
pub async fn copy(cfg: &PgStore, state_dir: &Path) -> Result<(Counts, Counts), SharedError> {
    let dir = state_dir.to_path_buf();
    let journal_max = cfg.journal_max;
    let (store, local) = tokio::task::spawn_blocking(move || {
        let s = Store::preflight(&dir)?;
        s.enable_sharing(journal_max)?;
        s.journal_everything(Some(i64::MIN))?;
        let counts = local_counts(&s)?;
        Ok::<_, crate::StoreError>((s, counts))
    })
    .await
    .map_err(|e| SharedError::Local(e.to_string()))?
    .map_err(|e| SharedError::Local(e.to_string()))?;
    let store = Arc::new(Mutex::new(store));
    let pool = pg::pool(cfg)?;
    let mut client = pg::bounded(
        cfg.connect_timeout * cfg.hosts.len().max(1) as u32,
        pg::get(&pool),
    )
    .await?;
    pg::bounded(cfg.query_timeout * 4, migrate::migrate(&mut client)).await?;
    let origin = store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sync_state()
        .map_err(|e| SharedError::Local(e.to_string()))?
        .origin;
    let status = sync::SyncStatus::default();
    sync::push_all(cfg.query_timeout, &mut client, &store, &status, &origin).await?;
    let shared = pg::bounded(cfg.query_timeout, shared_counts(&client)).await?;
    Ok((local, shared))
}
