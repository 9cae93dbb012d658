//! The collector database's tables, created if missing when the store opens.

pub(super) const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS forgotten_keys (
    fingerprint TEXT PRIMARY KEY,
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    forgotten_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS key_approvals (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    approved_ms INTEGER NOT NULL,
    PRIMARY KEY (node_type, node_id)
);
-- `id` is the event id readers resume from (history, the event stream): AUTOINCREMENT so
-- that an id is never reused after retention deletes rows. Stores made before it had the
-- key below as their primary key and are migrated on open (transitions::migrate_ids).
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    UNIQUE (node_type, node_id, boot_id, seq)
);
-- The age sweep deletes by receive time.
CREATE INDEX IF NOT EXISTS transitions_received ON transitions (received_ms);
-- New node ids held for an operator's approval (admission = \"approve\"), bounded by
-- max_pending. `other_key`: a second key reported for the same id, so approval then needs
-- the operator to name the fingerprint.
CREATE TABLE IF NOT EXISTS pending (
    node_type TEXT NOT NULL,
    node_id TEXT NOT NULL,
    name TEXT NOT NULL,
    pubkey TEXT,
    other_key TEXT,
    source TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    reports INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (node_type, node_id)
);
";
