//! The status-reporter wire protocol.
//!
//! Everything that crosses the network between an agent, a collector and a reader is
//! defined here, and nothing else is: the legacy Cloudify 5.0.5 report body
//! ([`report`]), our signed extension ([`signing`]), the cluster-status view returned
//! to readers ([`view`]), the small shared vocabulary ([`model`]) and the catalog of
//! reason codes ([`reasons`]), and the framing of the event stream readers follow
//! ([`sse`]).
//!
//! Invariants:
//! - This crate does no I/O and never reads the clock. Callers pass `now`.
//! - Wire DTOs are versioned and locked by golden files under `protocol/tests/golden/`.
//!   Internal types of the agent and the collector never appear here.
//! - Signing and verification work on the exact body bytes sent, never on a re-encoding.

pub mod facts;
pub mod model;
pub mod reasons;
pub mod report;
pub mod signing;
pub mod sse;
pub mod summary;
pub mod timestamp;
pub mod view;

pub use model::{NodeStatus, NodeType, Reason, ServiceStatus};

/// Header carrying the reporter token, exactly as Cloudify 5.0.5 names it.
pub const TOKEN_HEADER: &str = "API-Authentication-Token";
/// Header the Python original sent; kept for compatibility, ignored on ingest.
pub const TENANT_HEADER: &str = "Tenant";
/// Header carrying our signature (see [`signing`]).
pub const SIGNATURE_HEADER: &str = "X-Status-Reporter-Signature";
/// Response header on `GET /api/v3.1/managers` answered for a token: the token's role
/// (`manager`, `db`, `broker` or `admin`), so `configure` can infer the node type.
pub const ROLE_HEADER: &str = "X-Status-Reporter-Role";
/// The API prefix shared by every endpoint, as in Cloudify 5.0.5.
pub const API_PREFIX: &str = "/api/v3.1";
/// The collector's default TLS port, as in Cloudify 5.0.5.
pub const DEFAULT_PORT: u16 = 53333;
/// Default limit on a report body; larger bodies are refused before they are read.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// The path a node of `node_type` with `node_id` reports to.
pub fn report_path(node_type: NodeType, node_id: &str) -> String {
    format!(
        "{API_PREFIX}/cluster-status/{}/{node_id}",
        node_type.as_str()
    )
}
