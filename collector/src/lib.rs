//! sr-collector: the manager side of status-reporter.
//!
//! Data flow: [`server`] accepts TLS connections → [`api`] routes → [`ingest`] checks a
//! report (size, content type, token, signature, pin, replay, then decode) → the
//! [`writer`] thread commits pins and transitions to the [`store`] before the 200 →
//! [`state`] (memory) holds the latest report per node, written behind every
//! [`server::FLUSH_INTERVAL`] → [`rollup`] turns memory into the cluster-status view
//! on each read, as a pure function of (records, now, policy).
//!
//! Below them: [`app`] (the state every handler shares) and [`error`] (the HTTP error
//! shape), so that [`api`] and [`ingest`] do not import each other; [`record`] (what is
//! known per node, read by the roll-up), [`clock`] (the one wall-clock read) and
//! [`setup`] (tokens, the admin user and file ownership for a new collector).
//!
//! Invariants:
//! - Nothing is parsed before it is authenticated and verified; nothing unbounded is read.
//! - Freshness is judged by the collector's clock only.
//! - Tokens are stored as SHA-256 hashes and never logged; user passwords as argon2.
//! - The collector never depends on probes or the agent.
//! - The roll-up imports nothing but the protocol and [`record`]; no module cycle.

pub mod alerts;
pub mod api;
pub mod app;
pub mod client_file;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod history;
pub mod ingest;
pub mod maintenance;
pub mod metrics;
pub mod page;
pub mod record;
pub mod rollup;
pub mod server;
pub mod setup;
pub mod shared;
pub mod state;
pub mod store;
pub mod tier2;
pub mod view_cache;
pub mod view_encode;
pub mod writer;

pub use config::Config;
pub use rollup::{NodeInput, Policy};
pub use server::{serve, ServeError};
pub use store::{Role, Store, StoreError};
