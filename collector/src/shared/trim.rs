//! Retention in the shared store: the same bounds SQLite keeps for transitions (an age
//! and a count per node, `transitions_max_age_days` and `transitions_per_node`), plus the
//! tombstones (`nodes forget`, cleared approvals and maintenance windows) older than that
//! age, the replay floors (`sr_boots`) of forgotten nodes, and the forgotten-key
//! tombstones beyond SQLite's own bound.
//!
//! One collector at a time trims: the run holds a session advisory lock taken with
//! `pg_try_advisory_lock` (a collector that finds it taken skips its turn). Runs come at
//! most every [`TRIM_EVERY`] per collector, after a good sync round; every DELETE removes
//! at most [`TRIM_BATCH`] rows in its own transaction, under the session's
//! `statement_timeout` and a client-side deadline, at most [`MAX_BATCHES`] per statement
//! per run, and the whole run is bounded by [`TRIM_BUDGET`]. The retention applied is the
//! config of the collector that holds the lock: give every manager the same one.

use super::pg::{self, SharedError};
use crate::store::Retention;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// How often one collector tries to trim (its first try follows its first good round).
pub const TRIM_EVERY: Duration = Duration::from_secs(60);
/// Rows one DELETE removes at most.
pub const TRIM_BATCH: i64 = 5000;
/// DELETEs of one kind per run; the rest waits for the next run.
pub const MAX_BATCHES: usize = 20;
/// The whole run, lock to unlock.
pub const TRIM_BUDGET: Duration = Duration::from_secs(60);
/// `pg_try_advisory_lock` key: "sr-trim" in ASCII, so a DBA can tell what holds it.
pub const LOCK_KEY: i64 = 0x73_72_2d_74_72_69_6d;

/// Transitions received before `$1`.
const OLD_TRANSITIONS: &str = "DELETE FROM sr_transitions WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM sr_transitions WHERE received_ms < $1 LIMIT $2))";
/// Each node's transitions beyond its newest `$1`, in SQLite's order (`keep_newest`).
const OVER_COUNT: &str = "DELETE FROM sr_transitions WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM (SELECT ctid, row_number() OVER (PARTITION BY node_type, node_id
        ORDER BY received_ms DESC, seq DESC) AS rn FROM sr_transitions) t
    WHERE rn > $1 LIMIT $2))";
/// Replay floors of a forgotten node, first seen before the forget (a boot seen after
/// it belongs to the node as it came back, and stays). Floors of no node at all go
/// once older than `$1`.
const FORGOTTEN_BOOTS: &str = "DELETE FROM sr_boots WHERE ctid = ANY(ARRAY(
    SELECT b.ctid FROM sr_boots b LEFT JOIN sr_nodes n
        ON n.node_type = b.node_type AND n.node_id = b.node_id
    WHERE (n.deleted_ms IS NOT NULL AND b.first_seen_ms <= n.deleted_ms)
       OR (n.node_id IS NULL AND b.first_seen_ms < $1)
    LIMIT $2))";
const NODE_TOMBSTONES: &str = "DELETE FROM sr_nodes WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM sr_nodes WHERE deleted_ms < $1 LIMIT $2))";
const APPROVAL_TOMBSTONES: &str = "DELETE FROM sr_key_approvals WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM sr_key_approvals WHERE deleted_ms < $1 LIMIT $2))";
const MAINTENANCE_TOMBSTONES: &str = "DELETE FROM sr_maintenance WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM sr_maintenance WHERE deleted_ms < $1 LIMIT $2))";
/// Forgotten keys beyond the newest `$1` (SQLite keeps `TOMBSTONES_KEPT` too).
const FORGOTTEN_KEYS: &str = "DELETE FROM sr_forgotten_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM sr_forgotten_keys ORDER BY forgotten_ms DESC OFFSET $1 LIMIT $2))";

/// Rows one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    pub transitions: u64,
    pub boots: u64,
    pub tombstones: u64,
}

impl Trimmed {
    pub fn total(&self) -> u64 {
        self.transitions + self.boots + self.tombstones
    }
}

/// One run; `None` when another collector holds the lock. On an error the caller drops
/// the connection, which also releases the lock.
pub async fn trim(
    q: Duration,
    client: &mut Client,
    retention: Retention,
    now_ms: i64,
) -> Result<Option<Trimmed>, SharedError> {
    let got: bool = pg::bounded(q, async {
        Ok(client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .await?
            .get(0))
    })
    .await?;
    if !got {
        return Ok(None);
    }
    let cutoff = now_ms.saturating_sub(retention.max_age_ms);
    let per_node = retention.per_node as i64;
    let kept_keys = crate::store::TOMBSTONES_KEPT as i64;
    let mut t = Trimmed::default();
    t.transitions += batched(q, client, OLD_TRANSITIONS, &cutoff).await?;
    t.transitions += batched(q, client, OVER_COUNT, &per_node).await?;
    // Floors before tombstones: a floor whose tombstone went is then an orphan, which
    // goes only by age.
    t.boots += batched(q, client, FORGOTTEN_BOOTS, &cutoff).await?;
    for sql in [NODE_TOMBSTONES, APPROVAL_TOMBSTONES, MAINTENANCE_TOMBSTONES] {
        t.tombstones += batched(q, client, sql, &cutoff).await?;
    }
    t.tombstones += batched(q, client, FORGOTTEN_KEYS, &kept_keys).await?;
    pg::bounded(q, async {
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await?;
        Ok(())
    })
    .await?;
    Ok(Some(t))
}

/// Runs `sql` (`$1` = `arg`, `$2` = the batch size) until it deletes less than a batch,
/// at most [`MAX_BATCHES`] times; each its own transaction, bounded by `q`.
async fn batched(
    q: Duration,
    client: &Client,
    sql: &str,
    arg: &(dyn ToSql + Sync),
) -> Result<u64, SharedError> {
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let n = pg::bounded(q, async {
            Ok(client.execute(sql, &[arg, &TRIM_BATCH]).await?)
        })
        .await?;
        total += n;
        if n < TRIM_BATCH as u64 {
            break;
        }
    }
    Ok(total)
}
