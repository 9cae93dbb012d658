//! The shared vocabulary: node types, statuses and reasons.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The three kinds of node in a Cloudify-style HA cluster, and our extension's `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Manager,
    Db,
    Broker,
    /// A host with no Cloudify role (a Galera or HAProxy host): it feeds only the stack
    /// services its facts name, and is in no Cloudify view or list. Sorts last.
    Node,
}

impl NodeType {
    /// The Cloudify types: each has a view of its own and a 5.0.5 list. [`NodeType::Node`]
    /// is not one of them.
    pub const ALL: [NodeType; 3] = [NodeType::Manager, NodeType::Db, NodeType::Broker];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Manager => "manager",
            NodeType::Db => "db",
            NodeType::Broker => "broker",
            NodeType::Node => "node",
        }
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown node type {0:?}: expected manager, db, broker or node")]
pub struct UnknownNodeType(pub String);

impl FromStr for NodeType {
    type Err = UnknownNodeType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "manager" => Ok(NodeType::Manager),
            "db" => Ok(NodeType::Db),
            "broker" => Ok(NodeType::Broker),
            "node" => Ok(NodeType::Node),
            other => Err(UnknownNodeType(other.chars().take(64).collect())),
        }
    }
}

/// Health of a node, a service type or the whole cluster. Ordered from best to worst,
/// so the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NodeStatus {
    #[serde(rename = "OK")]
    Ok,
    Degraded,
    Fail,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ok => "OK",
            NodeStatus::Degraded => "Degraded",
            NodeStatus::Fail => "Fail",
        }
    }

    /// The fixed exit code used by `probe` and `cluster status` (Nagios style).
    pub fn exit_code(self) -> i32 {
        match self {
            NodeStatus::Ok => 0,
            NodeStatus::Degraded => 1,
            NodeStatus::Fail => 2,
        }
    }

    /// The only values a Cloudify 5.0.5 manager accepts in `report.status` are `OK` and
    /// `Fail`. A Degraded node is still serving, so it is `OK` on the legacy wire; its
    /// real status travels in our extension.
    pub fn legacy(self) -> LegacyNodeStatus {
        match self {
            NodeStatus::Ok | NodeStatus::Degraded => LegacyNodeStatus::Ok,
            NodeStatus::Fail => LegacyNodeStatus::Fail,
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `report.status` on the legacy wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegacyNodeStatus {
    #[serde(rename = "OK")]
    Ok,
    Fail,
}

impl From<LegacyNodeStatus> for NodeStatus {
    fn from(s: LegacyNodeStatus) -> Self {
        match s {
            LegacyNodeStatus::Ok => NodeStatus::Ok,
            LegacyNodeStatus::Fail => NodeStatus::Fail,
        }
    }
}

/// A service's status on the legacy wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceStatus {
    Active,
    Inactive,
}

/// Why something is not OK: machine-readable `code`, human `message`, and the node it
/// concerns when there is one. Every non-OK status carries at least one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Longest reason message kept; longer ones are cut so a hostile probe response cannot
/// bloat every report and view.
pub const MAX_REASON_LEN: usize = 512;

/// Longest reason code and reason node kept (bytes); longer ones are cut like messages.
pub const MAX_REASON_CODE_LEN: usize = 64;
pub const MAX_REASON_NODE_LEN: usize = 128;

/// Characters that change how text looks without being seen: controls (Cc), format
/// characters (Cf: zero-width space and joiners, the bidirectional overrides and
/// isolates, the BOM, soft hyphen, tags) and the line/paragraph separators. With them
/// `db1` and `db1` + U+200B look identical, and U+202E reverses what follows.
/// The Cf list is Unicode 15's, which Rust's std does not expose.
pub fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}'
            | '\u{0890}'..='\u{0891}' | '\u{08E2}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}' | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// Text for display with every hidden character made visible as `<U+XXXX>`, so a
/// reason can still be read but cannot hide or reorder what it says.
pub fn mark_hidden(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_hidden_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden_char(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Cuts `s` to at most `max` bytes on a char boundary, marking the cut with `…`.
fn cut_to(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

impl Reason {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        cut_to(&mut message, MAX_REASON_LEN);
        Reason {
            code: code.into(),
            message,
            node: None,
        }
    }

    /// A reason as received on the wire, made safe to keep and show: hidden characters
    /// marked, then every field cut to its limit. Returns whether anything changed.
    pub fn bound(&mut self) -> bool {
        let before = (
            self.code.len(),
            self.message.len(),
            self.node.as_ref().map(String::len),
        );
        for (field, max) in [
            (&mut self.code, MAX_REASON_CODE_LEN),
            (&mut self.message, MAX_REASON_LEN),
        ] {
            if let std::borrow::Cow::Owned(marked) = mark_hidden(field) {
                *field = marked;
            }
            cut_to(field, max);
        }
        if let Some(node) = &mut self.node {
            if let std::borrow::Cow::Owned(marked) = mark_hidden(node) {
                *node = marked;
            }
            cut_to(node, MAX_REASON_NODE_LEN);
        }
        before
            != (
                self.code.len(),
                self.message.len(),
                self.node.as_ref().map(String::len),
            )
    }

    pub fn on_node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_is_max() {
        let all = [NodeStatus::Ok, NodeStatus::Fail, NodeStatus::Degraded];
        assert_eq!(all.iter().copied().max(), Some(NodeStatus::Fail));
    }

    #[test]
    fn degraded_is_ok_on_the_legacy_wire() {
        assert_eq!(NodeStatus::Degraded.legacy(), LegacyNodeStatus::Ok);
        assert_eq!(NodeStatus::Fail.legacy(), LegacyNodeStatus::Fail);
    }

    #[test]
    fn node_type_round_trips_and_rejects_unknown() {
        for t in NodeType::ALL {
            assert_eq!(t.as_str().parse::<NodeType>().unwrap(), t);
        }
        assert!("Manager".parse::<NodeType>().is_err());
        assert!("../db".parse::<NodeType>().is_err());
    }

    #[test]
    fn hidden_characters_are_found_and_marked() {
        for c in [
            '\u{200B}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{00AD}',
            '\u{E0041}',
            '\n',
            '\u{1b}',
        ] {
            assert!(is_hidden_char(c), "{:X}", c as u32);
        }
        for c in ['a', 'é', '中', '…', ' ', '-'] {
            assert!(!is_hidden_char(c), "{c}");
        }
        assert_eq!(mark_hidden("db1\u{200B}"), "db1<U+200B>");
        assert_eq!(mark_hidden("ok \u{202E}gnp.exe"), "ok <U+202E>gnp.exe");
        let mut r = Reason::new("c", "x").on_node("db1\u{200B}");
        r.message = "y".repeat(5000);
        assert!(r.bound());
        assert_eq!(r.node.as_deref(), Some("db1<U+200B>"));
        assert!(r.message.len() <= MAX_REASON_LEN + 3);
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let r = Reason::new("x", "é".repeat(600));
        assert!(r.message.len() <= MAX_REASON_LEN + '…'.len_utf8());
        assert!(r.message.ends_with('…'));
    }
}
