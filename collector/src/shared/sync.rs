//! The sync task: writes the local journal through to PostgreSQL and pulls the other
//! managers' changes back, in rounds, forever; the only code that talks to PostgreSQL
//! while the collector runs.
//!
//! A round: take a pooled connection (failover happens here: a new connection goes to
//! the read-write host), migrate once per process, push journal keys and transitions in
//! batches (each batch one PostgreSQL transaction with one `change_id`, then the local
//! keys removed), then pull every change after the local cursor and apply it locally in
//! one SQLite transaction. Any error ends the round, drops the connection and waits
//! (capped backoff) before the next; the journal keeps everything meanwhile. Nothing here
//! blocks ingest: the local store is opened on its own connection and used from
//! `spawn_blocking`.

use super::config::PgStore;
use super::migrate;
use super::pg::{self, SharedError};
use crate::store::{SharedBoot, SharedNode, SharedRow, SharedTransition, Store};
use deadpool_postgres::Pool;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::Client;

/// How often a round runs while PostgreSQL answers.
pub const ROUND_EVERY: Duration = Duration::from_millis(250);
/// Longest wait between rounds while it does not.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Transitions received this long before the last good round are written through again
/// after an outage (see `exchange`).
pub const REWIND_MARGIN_MS: i64 = 60_000;
/// Journal keys, or transitions, pushed per PostgreSQL transaction.
pub const PUSH_BATCH: usize = 500;
/// Change ids pulled per step (at most this many push batches' rows at once).
pub const PULL_WINDOW: i64 = 50;

/// What the sync task reports, for `/metrics`, the logs and the tests.
#[derive(Debug, Default)]
pub struct SyncStatus {
    /// The last round reached PostgreSQL and finished.
    pub connected: AtomicBool,
    pub rounds_ok: AtomicU64,
    pub rounds_failed: AtomicU64,
    pub rows_pushed: AtomicU64,
    pub transitions_pushed: AtomicU64,
    pub rows_pulled: AtomicU64,
    /// Rows deleted by retention runs this collector made (`super::trim`).
    pub rows_trimmed: AtomicU64,
    /// Journal keys waiting (as of the last round).
    pub journal_len: AtomicI64,
    /// Keys not journalled because the journal was full (a full resync covers them).
    pub journal_overflow: AtomicI64,
    pub pull_cursor: AtomicI64,
    pub last_error: Mutex<Option<String>>,
}

/// The local store, on the sync task's own connection.
pub type Local = Arc<Mutex<Store>>;

async fn local<T: Send + 'static>(
    store: &Local,
    f: impl FnOnce(&mut Store) -> Result<T, crate::StoreError> + Send + 'static,
) -> Result<T, SharedError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s).map_err(|e| SharedError::Local(e.to_string()))
    })
    .await
    .map_err(|e| SharedError::Local(e.to_string()))?
}

/// Starts the sync task; it ends when `closing` turns true, after the round in progress.
pub fn spawn(
    cfg: PgStore,
    state_dir: PathBuf,
    retention: crate::store::Retention,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> (Arc<SyncStatus>, tokio::task::JoinHandle<()>) {
    let status = Arc::new(SyncStatus::default());
    let st = status.clone();
    let handle = tokio::spawn(async move {
        let opened = tokio::task::spawn_blocking(move || {
            let s = Store::open(&state_dir)?;
            s.enable_sharing(cfg.journal_max)?;
            Ok::<_, crate::StoreError>(s)
        })
        .await;
        let store = match opened {
            Ok(Ok(s)) => Arc::new(Mutex::new(s)),
            other => {
                let e = match other {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => unreachable!(),
                };
                tracing::error!(error = %e, "shared store: cannot open the local store; not syncing");
                *st.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
        };
        let pool = match pg::pool(&cfg) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "shared store: not syncing");
                *st.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                return;
            }
        };
        let mut migrated = false;
        let mut backoff = ROUND_EVERY;
        // Set by a failed round: the last time a round succeeded (the first round counts
        // as after an outage of unknown length: a restart may follow a failover).
        let mut rewind: Option<i64> = Some(crate::clock::now_ms());
        let mut last_ok = crate::clock::now_ms();
        let mut last_trim: Option<tokio::time::Instant> = None;
        loop {
            let started = crate::clock::now_ms();
            let result = round(&cfg, &pool, &store, &st, &mut migrated, &mut rewind).await;
            match &result {
                Ok(()) => last_ok = started,
                Err(_) => rewind = Some(rewind.map_or(last_ok, |r| r.min(last_ok))),
            }
            let was = st.connected.swap(result.is_ok(), Ordering::Relaxed);
            match result {
                Ok(()) => {
                    st.rounds_ok.fetch_add(1, Ordering::Relaxed);
                    if !was {
                        tracing::info!("shared store: connected, journal written through");
                    }
                    backoff = ROUND_EVERY;
                    if last_trim.is_none_or(|t| t.elapsed() >= super::trim::TRIM_EVERY) {
                        last_trim = Some(tokio::time::Instant::now());
                        trim_once(&cfg, &pool, &st, retention).await;
                    }
                }
                Err(e) => {
                    st.rounds_failed.fetch_add(1, Ordering::Relaxed);
                    // Logged on the change only: an outage is one line, not one per round.
                    if was || st.rounds_failed.load(Ordering::Relaxed) == 1 {
                        tracing::warn!(error = %e, "shared store: PostgreSQL unreachable; journalling locally");
                    }
                    *st.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = closing.wait_for(|c| *c) => break,
            }
        }
        // One last round so that what was acknowledged just before the stop is written
        // through now rather than at the next start (best effort, bounded).
        let _ = tokio::time::timeout(
            cfg.query_timeout * 2,
            round(&cfg, &pool, &store, &st, &mut migrated, &mut rewind),
        )
        .await;
    });
    (status, handle)
}

/// One retention run (`super::trim`) on its own pooled connection; a failure is logged
/// and waits for the next turn (sync rounds go on meanwhile).
async fn trim_once(
    cfg: &PgStore,
    pool: &Pool,
    st: &SyncStatus,
    retention: crate::store::Retention,
) {
    let connect = cfg.connect_timeout * cfg.hosts.len().max(1) as u32 + cfg.query_timeout;
    let mut obj = match pg::bounded(connect, pg::get(pool)).await {
        Ok(o) => o,
        Err(e) => return tracing::warn!(error = %e, "shared store: retention run skipped"),
    };
    let run = pg::bounded(
        super::trim::TRIM_BUDGET,
        super::trim::trim(
            cfg.query_timeout,
            &mut obj,
            retention,
            crate::clock::now_ms(),
        ),
    )
    .await;
    match run {
        Ok(Some(t)) => {
            st.rows_trimmed.fetch_add(t.total(), Ordering::Relaxed);
            if t.total() > 0 {
                tracing::info!(
                    transitions = t.transitions,
                    boots = t.boots,
                    tombstones = t.tombstones,
                    "shared store: retention run"
                );
            }
        }
        Ok(None) => tracing::debug!("shared store: another collector holds the retention lock"),
        Err(e) => {
            // Dropping the session also releases the advisory lock.
            pg::discard(obj);
            tracing::warn!(error = %e, "shared store: retention run failed");
        }
    }
}

async fn round(
    cfg: &PgStore,
    pool: &Pool,
    store: &Local,
    st: &SyncStatus,
    migrated: &mut bool,
    rewind: &mut Option<i64>,
) -> Result<(), SharedError> {
    let connect = cfg.connect_timeout * cfg.hosts.len().max(1) as u32 + cfg.query_timeout;
    let mut obj = pg::bounded(connect, pg::get(pool)).await?;
    let result = exchange(cfg, &mut obj, store, st, migrated, rewind).await;
    if result.is_err() {
        pg::discard(obj);
    }
    result
}

async fn exchange(
    cfg: &PgStore,
    client: &mut Client,
    store: &Local,
    st: &SyncStatus,
    migrated: &mut bool,
    rewind: &mut Option<i64>,
) -> Result<(), SharedError> {
    let q = cfg.query_timeout;
    if !*migrated {
        let applied = pg::bounded(q * 4, migrate::migrate(client)).await?;
        if !applied.is_empty() {
            tracing::info!(versions = ?applied, "shared store: schema migrated");
        }
        *migrated = true;
    }
    let state = local(store, |s| s.sync_state()).await?;
    if state.resync {
        local(store, |s| s.journal_everything(None)).await?;
    }
    if let Some(since) = *rewind {
        // After an outage or a failover, write through again what may not have survived
        // it: PostgreSQL replicates asynchronously, so a commit acknowledged by the old
        // leader just before it died can be missing on the new one. Idempotent.
        local(store, move |s| {
            s.journal_everything(Some(since - REWIND_MARGIN_MS))
        })
        .await?;
        *rewind = None;
    }
    let origin = state.origin.clone();
    push_all(q, client, store, st, &origin).await?;
    push_floor(q, client, store).await?;
    pull_all(q, client, store, st).await?;
    let state = local(store, |s| s.sync_state()).await?;
    st.journal_len.store(state.journal_len, Ordering::Relaxed);
    st.journal_overflow.store(state.overflow, Ordering::Relaxed);
    st.pull_cursor.store(state.pull_cursor, Ordering::Relaxed);
    Ok(())
}

/// Pushes the journal and the transitions until both are empty.
pub async fn push_all(
    q: Duration,
    client: &mut Client,
    store: &Local,
    st: &SyncStatus,
    origin: &str,
) -> Result<(), SharedError> {
    loop {
        let own = origin.to_string();
        let (keys, (transitions, high)) = local(store, move |s| {
            let cursor = s.sync_state()?.pushed_transition;
            Ok((
                s.outbox_batch(PUSH_BATCH)?,
                s.transitions_after(cursor, PUSH_BATCH, &own)?,
            ))
        })
        .await?;
        if keys.is_empty() && transitions.is_empty() {
            // Only pulled maintenance events (not pushed back) may be left: move past them.
            local(store, move |s| s.set_pushed_transition(high)).await?;
            return Ok(());
        }
        let rows: Vec<SharedRow> = keys.iter().map(|k| k.1.clone()).collect();
        pg::bounded(q, push(client, origin, &rows, &transitions)).await?;
        st.rows_pushed
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        st.transitions_pushed
            .fetch_add(transitions.len() as u64, Ordering::Relaxed);
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        local(store, move |s| {
            s.outbox_done(&ids)?;
            s.set_pushed_transition(high)
        })
        .await?;
    }
}

/// Reports accepted up to this long before the floor cursor are looked at again: the
/// write-behind may store a report received just before the previous round after it.
const FLOOR_OVERLAP_MS: i64 = 2000;

/// Pushes each node's newest `(boot id, seq)` accepted here since the last round; a seq
/// is raised only upwards, and a row that raises nothing takes no new `change_id`.
async fn push_floor(q: Duration, client: &mut Client, store: &Local) -> Result<(), SharedError> {
    let now = crate::clock::now_ms();
    let boots = local(store, |s| {
        let after = s.sync_state()?.pushed_latest_ms - FLOOR_OVERLAP_MS;
        s.boots_after(after)
    })
    .await?;
    if boots.is_empty() {
        return Ok(());
    }
    pg::bounded(q, push_boots(client, &boots)).await?;
    local(store, move |s| s.set_pushed_latest_ms(now)).await
}

async fn push_boots(client: &mut Client, boots: &[SharedBoot]) -> Result<(), SharedError> {
    let tx = client.transaction().await?;
    let cid: i64 = tx
        .query_one("UPDATE sr_change_seq SET n = n + 1 RETURNING n", &[])
        .await?
        .get(0);
    let col = |f: fn(&SharedBoot) -> String| boots.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&SharedBoot) -> i64| boots.iter().map(f).collect::<Vec<_>>();
    tx.execute(
        "INSERT INTO sr_boots (node_type, node_id, boot_id, max_seq, first_seen_ms, change_id)
         SELECT *, $6::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
         ON CONFLICT (node_type, node_id, boot_id) DO UPDATE SET max_seq = excluded.max_seq,
           change_id = excluded.change_id
         WHERE sr_boots.max_seq < excluded.max_seq",
        &[
            &col(|b| b.node_type.clone()),
            &col(|b| b.node_id.clone()),
            &col(|b| b.boot_id.clone()),
            &num(|b| b.max_seq),
            &num(|b| b.first_seen_ms),
            &cid,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Writes one batch in one PostgreSQL transaction with one new `change_id`.
pub async fn push(
    client: &mut Client,
    origin: &str,
    rows: &[SharedRow],
    transitions: &[SharedTransition],
) -> Result<i64, SharedError> {
    let tx = client.transaction().await?;
    let cid: i64 = tx
        .query_one("UPDATE sr_change_seq SET n = n + 1 RETURNING n", &[])
        .await?
        .get(0);
    let now = crate::clock::now_ms();
    for row in rows {
        match row {
            SharedRow::Token {
                hash,
                role,
                created_ms,
                revoked_ms,
            } => {
                if role.is_empty() || hash.len() != 32 {
                    continue;
                }
                tx.execute(
                    "INSERT INTO sr_tokens (hash, role, created_ms, revoked_ms, change_id) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (hash) DO UPDATE SET revoked_ms = LEAST(sr_tokens.revoked_ms, excluded.revoked_ms),
                       change_id = excluded.change_id
                     WHERE sr_tokens.revoked_ms IS DISTINCT FROM LEAST(sr_tokens.revoked_ms, excluded.revoked_ms)",
                    &[hash, role, created_ms, revoked_ms, &cid],
                )
                .await?;
            }
            SharedRow::User {
                name,
                phc,
                created_ms,
            } => {
                tx.execute(
                    "INSERT INTO sr_users (name, phc, created_ms, change_id) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO UPDATE SET phc = excluded.phc, change_id = excluded.change_id
                     WHERE sr_users.phc IS DISTINCT FROM excluded.phc",
                    &[name, phc, created_ms, &cid],
                )
                .await?;
            }
            SharedRow::Node {
                node_type,
                node_id,
                deleted_ms,
                state,
            } => {
                if let Some(d) = deleted_ms {
                    // The forget, at the time it was made: it removes pins made before it.
                    tx.execute(
                        "UPDATE sr_nodes SET deleted_ms = $3, change_id = $4
                         WHERE node_type = $1 AND node_id = $2 AND first_seen_ms <= $3
                           AND (deleted_ms IS NULL OR deleted_ms < $3)",
                        &[node_type, node_id, d, &cid],
                    )
                    .await?;
                }
                if let Some(s) = state {
                    push_node(&tx, node_type, node_id, s, cid).await?;
                }
            }
            SharedRow::ForgottenKey {
                fingerprint,
                node_type,
                node_id,
                forgotten_ms,
            } => {
                tx.execute(
                    "INSERT INTO sr_forgotten_keys (fingerprint, node_type, node_id, forgotten_ms, change_id)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (fingerprint) DO NOTHING",
                    &[fingerprint, node_type, node_id, forgotten_ms, &cid],
                )
                .await?;
            }
            SharedRow::Approval {
                node_type,
                node_id,
                row,
            } => {
                let (fp, at) = match row {
                    Some((fp, at)) => (Some(fp.as_str()), Some(*at)),
                    None => (None, None),
                };
                let deleted = row.is_none().then_some(now);
                tx.execute(
                    "INSERT INTO sr_key_approvals (node_type, node_id, fingerprint, approved_ms, deleted_ms, change_id)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (node_type, node_id) DO UPDATE SET fingerprint = excluded.fingerprint,
                       approved_ms = excluded.approved_ms, deleted_ms = excluded.deleted_ms, change_id = excluded.change_id",
                    &[node_type, node_id, &fp, &at, &deleted, &cid],
                )
                .await?;
            }
            SharedRow::Maintenance { target, row } => {
                let (reason, by, since, until) = match row {
                    Some((r, b, s, u)) => (Some(r.as_str()), Some(b.as_str()), Some(*s), *u),
                    None => (None, None, None, None),
                };
                let deleted = row.is_none().then_some(now);
                tx.execute(
                    "INSERT INTO sr_maintenance (target, reason, by_whom, since_ms, until_ms, deleted_ms, change_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (target) DO UPDATE SET reason = excluded.reason, by_whom = excluded.by_whom,
                       since_ms = excluded.since_ms, until_ms = excluded.until_ms, deleted_ms = excluded.deleted_ms,
                       change_id = excluded.change_id",
                    &[target, &reason, &by, &since, &until, &deleted, &cid],
                )
                .await?;
            }
        }
    }
    if !transitions.is_empty() {
        push_transitions(&tx, origin, transitions, cid).await?;
    }
    tx.commit().await?;
    Ok(cid)
}

/// The first pin in PostgreSQL wins; a pin made after a forget replaces the tombstone;
/// a stale upsert never brings a forgotten node back.
async fn push_node(
    tx: &tokio_postgres::Transaction<'_>,
    node_type: &str,
    node_id: &str,
    s: &SharedNode,
    cid: i64,
) -> Result<(), SharedError> {
    tx.execute(
        "INSERT INTO sr_nodes (node_type, node_id, name, pubkey, key_mismatch, mismatch_key, private_ip, first_seen_ms, change_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (node_type, node_id) DO UPDATE SET
           pubkey = CASE WHEN sr_nodes.deleted_ms IS NOT NULL THEN excluded.pubkey
                         ELSE coalesce(sr_nodes.pubkey, excluded.pubkey) END,
           key_mismatch = CASE WHEN sr_nodes.deleted_ms IS NOT NULL THEN excluded.key_mismatch
                         ELSE sr_nodes.key_mismatch OR excluded.key_mismatch END,
           mismatch_key = CASE WHEN sr_nodes.deleted_ms IS NOT NULL THEN excluded.mismatch_key
                         ELSE coalesce(excluded.mismatch_key, sr_nodes.mismatch_key) END,
           first_seen_ms = CASE WHEN sr_nodes.deleted_ms IS NOT NULL THEN excluded.first_seen_ms
                         ELSE sr_nodes.first_seen_ms END,
           name = excluded.name, private_ip = excluded.private_ip,
           deleted_ms = NULL, change_id = excluded.change_id
         WHERE (sr_nodes.deleted_ms IS NULL OR excluded.first_seen_ms > sr_nodes.deleted_ms)
           AND (sr_nodes.deleted_ms IS NOT NULL
                OR sr_nodes.pubkey IS DISTINCT FROM coalesce(sr_nodes.pubkey, excluded.pubkey)
                OR sr_nodes.key_mismatch IS DISTINCT FROM (sr_nodes.key_mismatch OR excluded.key_mismatch)
                OR sr_nodes.name IS DISTINCT FROM excluded.name
                OR sr_nodes.private_ip IS DISTINCT FROM excluded.private_ip)",
        &[
            &node_type,
            &node_id,
            &s.name,
            &s.pubkey,
            &s.key_mismatch,
            &s.mismatch_key,
            &s.private_ip,
            &s.first_seen_ms,
            &cid,
        ],
    )
    .await?;
    Ok(())
}

/// One statement for the batch (arrays unnested), keyed by `(node, boot id, seq)`: a row
/// written before (by this manager's earlier attempt or another manager's copy) is kept.
async fn push_transitions(
    tx: &tokio_postgres::Transaction<'_>,
    origin: &str,
    ts: &[SharedTransition],
    cid: i64,
) -> Result<(), SharedError> {
    let col = |f: fn(&SharedTransition) -> String| ts.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&SharedTransition) -> i64| ts.iter().map(f).collect::<Vec<_>>();
    let services: Vec<Option<String>> = ts.iter().map(|t| t.service.clone()).collect();
    tx.execute(
        "INSERT INTO sr_transitions (node_type, node_id, boot_id, seq, at_ms, received_ms, service,
             from_status, to_status, reasons, origin, change_id)
         SELECT *, $11::text, $12::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
             $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[])
         ON CONFLICT (node_type, node_id, boot_id, seq) DO NOTHING",
        &[
            &col(|t| t.node_type.clone()),
            &col(|t| t.node_id.clone()),
            &col(|t| t.boot_id.clone()),
            &num(|t| t.seq),
            &num(|t| t.at_ms),
            &num(|t| t.received_ms),
            &services,
            &col(|t| t.from.clone()),
            &col(|t| t.to.clone()),
            &col(|t| t.reasons.clone()),
            &origin,
            &cid,
        ],
    )
    .await?;
    Ok(())
}

/// Pulls and applies every committed change after the local cursor.
async fn pull_all(
    q: Duration,
    client: &mut Client,
    store: &Local,
    st: &SyncStatus,
) -> Result<(), SharedError> {
    loop {
        let cursor = local(store, |s| Ok(s.sync_state()?.pull_cursor)).await?;
        let (rows, transitions, boots, upto, high) = pg::bounded(q, pull(client, cursor)).await?;
        let n = rows.len() + transitions.len() + boots.len();
        if upto > cursor {
            local(store, move |s| {
                s.apply_pulled(&rows, &transitions, &boots, upto)
            })
            .await?;
        }
        st.rows_pulled.fetch_add(n as u64, Ordering::Relaxed);
        if upto >= high {
            return Ok(());
        }
    }
}

/// The rows with `cursor < change_id <= upto`, `upto` at most [`PULL_WINDOW`] ahead and at
/// most the committed counter (every change up to it is committed: see `migrate`).
/// Returns the rows, the transitions, the replay floor, `upto` and the counter.
#[allow(clippy::type_complexity)]
pub async fn pull(
    client: &mut Client,
    cursor: i64,
) -> Result<
    (
        Vec<SharedRow>,
        Vec<SharedTransition>,
        Vec<SharedBoot>,
        i64,
        i64,
    ),
    SharedError,
> {
    let high: i64 = client
        .query_one("SELECT n FROM sr_change_seq", &[])
        .await?
        .get(0);
    let upto = high.min(cursor + PULL_WINDOW);
    if upto <= cursor {
        return Ok((Vec::new(), Vec::new(), Vec::new(), cursor, high));
    }
    let range: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&cursor, &upto];
    let mut rows = Vec::new();
    for r in client
        .query("SELECT hash, role, created_ms, revoked_ms FROM sr_tokens WHERE change_id > $1 AND change_id <= $2", &range)
        .await?
    {
        rows.push(SharedRow::Token {
            hash: r.get(0),
            role: r.get(1),
            created_ms: r.get(2),
            revoked_ms: r.get(3),
        });
    }
    for r in client
        .query(
            "SELECT name, phc, created_ms FROM sr_users WHERE change_id > $1 AND change_id <= $2",
            &range,
        )
        .await?
    {
        rows.push(SharedRow::User {
            name: r.get(0),
            phc: r.get(1),
            created_ms: r.get(2),
        });
    }
    // Tombstones before nodes: a pulled forget and the key it tombstoned apply together.
    for r in client
        .query("SELECT fingerprint, node_type, node_id, forgotten_ms FROM sr_forgotten_keys WHERE change_id > $1 AND change_id <= $2", &range)
        .await?
    {
        rows.push(SharedRow::ForgottenKey {
            fingerprint: r.get(0),
            node_type: r.get(1),
            node_id: r.get(2),
            forgotten_ms: r.get(3),
        });
    }
    for r in client
        .query("SELECT node_type, node_id, name, pubkey, key_mismatch, mismatch_key, private_ip, first_seen_ms, deleted_ms
                FROM sr_nodes WHERE change_id > $1 AND change_id <= $2", &range)
        .await?
    {
        let deleted_ms: Option<i64> = r.get(8);
        rows.push(SharedRow::Node {
            node_type: r.get(0),
            node_id: r.get(1),
            deleted_ms,
            state: deleted_ms.is_none().then(|| SharedNode {
                name: r.get(2),
                pubkey: r.get(3),
                key_mismatch: r.get(4),
                mismatch_key: r.get(5),
                private_ip: r.get(6),
                first_seen_ms: r.get(7),
            }),
        });
    }
    for r in client
        .query("SELECT node_type, node_id, fingerprint, approved_ms, deleted_ms FROM sr_key_approvals WHERE change_id > $1 AND change_id <= $2", &range)
        .await?
    {
        let fp: Option<String> = r.get(2);
        let at: Option<i64> = r.get(3);
        let deleted: Option<i64> = r.get(4);
        rows.push(SharedRow::Approval {
            node_type: r.get(0),
            node_id: r.get(1),
            row: fp.zip(at).filter(|_| deleted.is_none()),
        });
    }
    for r in client
        .query("SELECT target, reason, by_whom, since_ms, until_ms, deleted_ms FROM sr_maintenance WHERE change_id > $1 AND change_id <= $2", &range)
        .await?
    {
        let deleted: Option<i64> = r.get(5);
        let reason: Option<String> = r.get(1);
        let by: Option<String> = r.get(2);
        let since: Option<i64> = r.get(3);
        rows.push(SharedRow::Maintenance {
            target: r.get(0),
            row: match (reason, by, since, deleted) {
                (Some(reason), Some(by), Some(since), None) => Some((reason, by, since, r.get(4))),
                _ => None,
            },
        });
    }
    let mut transitions = Vec::new();
    for r in client
        .query("SELECT node_type, node_id, boot_id, seq, at_ms, received_ms, service, from_status, to_status, reasons
                FROM sr_transitions WHERE change_id > $1 AND change_id <= $2", &range)
        .await?
    {
        transitions.push(SharedTransition {
            node_type: r.get(0),
            node_id: r.get(1),
            boot_id: r.get(2),
            seq: r.get(3),
            at_ms: r.get(4),
            received_ms: r.get(5),
            service: r.get(6),
            from: r.get(7),
            to: r.get(8),
            reasons: r.get(9),
        });
    }
    let mut boots = Vec::new();
    for r in client
        .query("SELECT node_type, node_id, boot_id, max_seq, first_seen_ms FROM sr_boots WHERE change_id > $1 AND change_id <= $2", &range)
        .await?
    {
        boots.push(SharedBoot {
            node_type: r.get(0),
            node_id: r.get(1),
            boot_id: r.get(2),
            max_seq: r.get(3),
            first_seen_ms: r.get(4),
        });
    }
    Ok((rows, transitions, boots, upto, high))
}

/// The sync task's state as Prometheus metrics (`status_reporter_shared_store_*`), read
/// at scrape time; only a collector with a PostgreSQL store has them.
pub fn register_metrics(reg: &mut prometheus_client::registry::Registry, st: &SyncStatus) {
    use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
    let g = |v: i64| {
        let m = Gauge::<i64>::default();
        m.set(v);
        m
    };
    let c = |v: &AtomicU64| {
        let m = Counter::<u64>::default();
        m.inc_by(v.load(Ordering::Relaxed));
        m
    };
    let sub = reg.sub_registry_with_prefix("shared_store");
    sub.register(
        "connected",
        "1 while the last sync round reached PostgreSQL and finished",
        g(st.connected.load(Ordering::Relaxed) as i64),
    );
    sub.register(
        "journal_keys",
        "Changed rows journalled locally, not yet written through",
        g(st.journal_len.load(Ordering::Relaxed)),
    );
    sub.register(
        "journal_overflow",
        "Changes not journalled because the journal was full (a full resync covers them)",
        g(st.journal_overflow.load(Ordering::Relaxed)),
    );
    sub.register(
        "pull_cursor",
        "The newest shared change_id applied locally",
        g(st.pull_cursor.load(Ordering::Relaxed)),
    );
    sub.register("rounds_ok", "Sync rounds that finished", c(&st.rounds_ok));
    sub.register(
        "rounds_failed",
        "Sync rounds that failed (PostgreSQL down, failing over, or slow)",
        c(&st.rounds_failed),
    );
    sub.register(
        "rows_pushed",
        "Shared rows written through",
        c(&st.rows_pushed),
    );
    sub.register(
        "transitions_pushed",
        "Transitions written through (a row written before is kept, not doubled)",
        c(&st.transitions_pushed),
    );
    sub.register(
        "rows_pulled",
        "Rows pulled from other managers' changes",
        c(&st.rows_pulled),
    );
    sub.register(
        "rows_trimmed",
        "Shared rows this collector deleted by retention (old transitions, floors, tombstones)",
        c(&st.rows_trimmed),
    );
}
