//! The shared store (issue 16): several managers' collectors sharing tokens, reader
//! users, pins, forgets, transitions and maintenance windows through one PostgreSQL
//! database, while each keeps its local SQLite as its working store and journal (design
//! and guarantees: ARCHITECTURE.md, "The shared store"; operations: docs/operations.md).
//!
//! Rooms: [`config`] (the `[store]` table), [`pg`] (pool, TLS, failover, timeouts),
//! [`migrate`] (versioned schema, run once), [`sync`] (the push/pull task), [`trim`] (retention), [`copy`]
//! (`collector migrate-store`). The local journal is `crate::store`'s `outbox` room.
//! Nothing on the request path imports this module.

pub mod config;
pub mod copy;
pub mod migrate;
pub mod pg;
pub mod sync;
pub mod trim;

pub use config::{PgStore, PgTls, StoreKind};
pub use pg::SharedError;
