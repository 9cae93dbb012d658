//! One running collector's shared state, handed to every request handler.
//!
//! It sits below both the routes ([`crate::api`]) and ingest ([`crate::ingest`]) so that
//! neither imports the other for it.

use crate::config::Config;
use crate::rollup::{rollup, NodeInput, Policy};
use crate::state::Memory;
use crate::writer::Writer;
use sr_protocol::view::ClusterStatus;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Everything a request handler needs. One per running collector.
pub struct App {
    pub cfg: Config,
    pub policy: Policy,
    pub mem: Memory,
    pub writer: Writer,
    /// Recently verified Basic credentials (SHA-256 of `user:password` → when), so a
    /// polling reader does not pay an argon2 verification per request.
    pub(crate) basic_ok: Mutex<HashMap<[u8; 32], Instant>>,
    /// Bounds concurrent argon2 verifications (each takes ~19 MiB and tens of ms).
    pub(crate) argon_permits: tokio::sync::Semaphore,
}

impl App {
    pub fn new(cfg: Config, mem: Memory, writer: Writer) -> App {
        App {
            policy: cfg.rollup_policy(),
            cfg,
            mem,
            writer,
            basic_ok: Mutex::new(HashMap::new()),
            argon_permits: tokio::sync::Semaphore::new(2),
        }
    }

    /// The cluster-status view now (the collector's clock).
    pub fn view(&self) -> ClusterStatus {
        let now = crate::clock::now_ms();
        let mut inputs: Vec<NodeInput> = self
            .mem
            .records()
            .iter()
            .map(|r| NodeInput::from_record(r, now, &self.policy))
            .collect();
        inputs.sort_by_key(|n| n.node_type);
        rollup(&inputs, now, &self.policy)
    }
}
