//! What the collector keeps about each node: plain data over protocol types.
//!
//! Memory ([`crate::state`]) builds these; the roll-up ([`crate::rollup`]) judges them.
//! They live in a room of their own so that neither side imports the other's module:
//! the roll-up stays a pure function of records, and memory does not depend on the roll-up.

use sr_protocol::report::ReportBody;
use sr_protocol::NodeType;
use std::sync::Arc;

/// The latest accepted report of a node, with what the collector measured on receipt.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestReport {
    pub body: ReportBody,
    /// Collector clock, Unix ms: the only clock freshness is judged by.
    pub received_ms: i64,
    /// Reporter clock minus collector clock at receipt, ms (positive: from the future).
    pub skew_ms: i64,
    pub signed: bool,
}

/// What the collector knows about one node: the input of
/// [`crate::rollup::NodeInput::from_record`].
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub node_type: NodeType,
    pub node_id: String,
    pub name: String,
    pub private_ip: Option<String>,
    pub key_mismatch: bool,
    pub latest: Option<Arc<LatestReport>>,
    /// Collector receive times (ms) at which the node's reported status changed, oldest first.
    pub status_changes_ms: Vec<i64>,
}
