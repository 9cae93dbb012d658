//! The shared store's schema: numbered migrations, each run once, recorded in
//! `sr_schema_version`.
//!
//! Every collector runs [`migrate`] when it connects. The whole run is one transaction
//! under a transaction-level advisory lock, so three collectors starting together
//! serialize on it: the first applies what is missing, the others find it applied. A
//! database at a version this binary does not know is refused, never "downgraded".
//!
//! Every shared table has a `change_id`: the value of the one-row counter `sr_change_seq`
//! taken by the push transaction that last wrote the row. Taking it (`UPDATE ...
//! RETURNING`) holds the counter's row lock until commit, so pushes commit in counter
//! order and a reader that has seen counter value `n` committed has seen every row with
//! `change_id <= n`: the pull cursor never skips a row that commits late.

use super::pg::SharedError;

/// `pg_advisory_xact_lock` key: "sr-migr" in ASCII, so a DBA can tell what holds it.
pub const LOCK_KEY: i64 = 0x73_72_2d_6d_69_67_72;

/// The migrations, in order. Never edit one that has shipped: add the next.
pub const MIGRATIONS: &[(i32, &str)] = &[(1, V1)];

/// The newest schema this binary knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

const V1: &str = "
CREATE TABLE sr_change_seq (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    n bigint NOT NULL
);
INSERT INTO sr_change_seq (one, n) VALUES (true, 0);
CREATE TABLE sr_tokens (
    hash bytea PRIMARY KEY CHECK (length(hash) = 32),
    role text NOT NULL,
    created_ms bigint NOT NULL,
    revoked_ms bigint,
    change_id bigint NOT NULL
);
CREATE TABLE sr_users (
    name text PRIMARY KEY,
    phc text NOT NULL,
    created_ms bigint NOT NULL,
    change_id bigint NOT NULL
);
-- A forgotten node is a tombstone (deleted_ms) so that every manager learns of the forget.
CREATE TABLE sr_nodes (
    node_type text NOT NULL,
    node_id text NOT NULL,
    name text NOT NULL,
    pubkey text,
    key_mismatch boolean NOT NULL DEFAULT false,
    mismatch_key text,
    private_ip text,
    first_seen_ms bigint NOT NULL,
    deleted_ms bigint,
    change_id bigint NOT NULL,
    PRIMARY KEY (node_type, node_id)
);
CREATE TABLE sr_forgotten_keys (
    fingerprint text PRIMARY KEY,
    node_type text NOT NULL,
    node_id text NOT NULL,
    forgotten_ms bigint NOT NULL,
    change_id bigint NOT NULL
);
CREATE TABLE sr_key_approvals (
    node_type text NOT NULL,
    node_id text NOT NULL,
    fingerprint text,
    approved_ms bigint,
    deleted_ms bigint,
    change_id bigint NOT NULL,
    PRIMARY KEY (node_type, node_id)
);
CREATE TABLE sr_maintenance (
    target text PRIMARY KEY,
    reason text,
    by_whom text,
    since_ms bigint,
    until_ms bigint,
    deleted_ms bigint,
    change_id bigint NOT NULL
);
CREATE TABLE sr_transitions (
    node_type text NOT NULL,
    node_id text NOT NULL,
    boot_id text NOT NULL,
    seq bigint NOT NULL,
    at_ms bigint NOT NULL,
    received_ms bigint NOT NULL,
    service text,
    from_status text NOT NULL,
    to_status text NOT NULL,
    reasons text NOT NULL,
    origin text NOT NULL,
    change_id bigint NOT NULL,
    PRIMARY KEY (node_type, node_id, boot_id, seq)
);
-- The newest seq any manager accepted per node and boot: the replay floor.
CREATE TABLE sr_boots (
    node_type text NOT NULL,
    node_id text NOT NULL,
    boot_id text NOT NULL,
    max_seq bigint NOT NULL,
    first_seen_ms bigint NOT NULL,
    change_id bigint NOT NULL,
    PRIMARY KEY (node_type, node_id, boot_id)
);
CREATE INDEX sr_tokens_change ON sr_tokens (change_id);
CREATE INDEX sr_users_change ON sr_users (change_id);
CREATE INDEX sr_nodes_change ON sr_nodes (change_id);
CREATE INDEX sr_forgotten_keys_change ON sr_forgotten_keys (change_id);
CREATE INDEX sr_key_approvals_change ON sr_key_approvals (change_id);
CREATE INDEX sr_maintenance_change ON sr_maintenance (change_id);
CREATE INDEX sr_transitions_change ON sr_transitions (change_id);
CREATE INDEX sr_transitions_received ON sr_transitions (received_ms);
CREATE INDEX sr_boots_change ON sr_boots (change_id);
";

/// Brings the schema to [`latest`]; returns the versions applied by this call (empty
/// when another collector had done it).
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, SharedError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sr_schema_version (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sr_schema_version",
            &[],
        )
        .await?
        .get(0);
    if current > latest() {
        return Err(SharedError::NewerSchema {
            found: current,
            known: latest(),
        });
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO sr_schema_version (version) VALUES ($1)",
            &[version],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_by_one_from_one() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i32 + 1);
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }
}
