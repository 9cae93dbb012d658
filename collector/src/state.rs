//! The collector's in-memory state: known nodes, the token cache and counters.
//!
//! Memory is the source of truth for ingest decisions (pin, replay) and for the view;
//! the store is its durable mirror. On start, and whenever the CLI changes the store
//! (tokens created or revoked, nodes forgotten), memory is reloaded from the store by the
//! flush task, so such changes take effect within one [`crate::server::FLUSH_INTERVAL`].

use crate::record::{LatestReport, NodeRecord};
use crate::store::{LatestRow, Role, StoredNode};
use sr_protocol::report::ReportBody;
use sr_protocol::{NodeStatus, NodeType};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub type NodeKey = (NodeType, String);

/// Status changes remembered per node for flap detection (bounded).
const MAX_CHANGES: usize = 64;

#[derive(Debug, Default)]
pub struct NodeEntry {
    pub name: String,
    pub private_ip: Option<String>,
    /// Pinned Ed25519 public key (base64url). `None`: first contact not yet made, or an
    /// unsigned legacy node.
    pub pinned: Option<String>,
    pub key_mismatch: bool,
    pub latest: Option<Arc<LatestReport>>,
    /// Exact body bytes of `latest`, for the write-behind flush.
    pub raw: Option<Arc<[u8]>>,
    /// Boots seen, oldest first, each with the highest seq accepted; the last is current.
    pub boots: VecDeque<(String, u64)>,
    /// Newest signed send time accepted from the node (its clock, Unix ms): a signature
    /// opening a boot must be later (ingest's replay rules). Restored from the latest
    /// body's own timestamp, which the agent sets from the same clock reading.
    pub sent_high_ms: Option<i64>,
    pub changes: VecDeque<i64>,
    pub last_status: Option<NodeStatus>,
    /// The shared store's replay floor (boots oldest first, highest seq any manager
    /// accepted): always the store's, never kept from older memory.
    pub floor: Vec<(String, u64)>,
}

impl NodeEntry {
    /// Records an accepted report's reported status, remembering changes for flap damping.
    pub fn note_status(&mut self, status: NodeStatus, at_ms: i64) {
        if self.last_status.is_some_and(|s| s != status) {
            if self.changes.len() == MAX_CHANGES {
                self.changes.pop_front();
            }
            self.changes.push_back(at_ms);
        }
        self.last_status = Some(status);
    }

    /// The store's `s`, keeping from the entry memory held (`old`) its flap history and
    /// any report newer than the store's (not flushed yet).
    fn merged(s: StoredNode, old: Option<NodeEntry>) -> NodeEntry {
        let mut entry = NodeEntry::from_stored(s);
        if let Some(old) = old {
            entry.changes = old.changes;
            entry.last_status = old.last_status.or(entry.last_status);
            entry.sent_high_ms = entry.sent_high_ms.max(old.sent_high_ms);
            let newer = match (&old.latest, &entry.latest) {
                (Some(o), Some(n)) => o.received_ms > n.received_ms,
                (Some(_), None) => true,
                _ => false,
            };
            if newer {
                entry.latest = old.latest;
                entry.raw = old.raw;
                entry.boots = old.boots;
                entry.name = old.name;
                entry.private_ip = old.private_ip;
            }
        }
        entry
    }

    fn from_stored(s: StoredNode) -> NodeEntry {
        let mut sent_high_ms = None;
        let latest = s.latest.as_ref().and_then(|l| {
            let decoded = ReportBody::decode(&l.body).ok()?;
            if l.signed {
                sent_high_ms = Some(decoded.reporter_time.saturating_mul(1000));
            }
            Some(Arc::new(LatestReport {
                body: decoded.body,
                received_ms: l.received_ms,
                skew_ms: l.skew_ms,
                signed: l.signed,
            }))
        });
        NodeEntry {
            name: s.row.name,
            private_ip: s.row.private_ip,
            pinned: s.row.pinned_key,
            key_mismatch: s.row.key_mismatch,
            last_status: latest.as_ref().map(|l| l.body.node_status()),
            raw: s.latest.map(|l| Arc::from(l.body.into_boxed_slice())),
            latest,
            boots: s.boots.into(),
            floor: s.floor,
            sent_high_ms,
            changes: VecDeque::new(),
        }
    }
}

#[derive(Default)]
pub struct Nodes {
    pub map: HashMap<NodeKey, NodeEntry>,
    /// Nodes whose latest report has not been flushed yet.
    pub dirty: HashSet<NodeKey>,
    /// Node ids held for approval (`admission = "approve"`), as the store has them: their
    /// reports go to the pending list, and a new one takes from the new-node budget.
    pub pending: HashSet<NodeKey>,
}

/// Counters exposed on `GET /api/v3.1/status` under `collector`.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub connections_refused: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub nodes_refused: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_errors: AtomicU64,
    /// New node ids refused by the per-token budget (429).
    pub new_nodes_throttled: AtomicU64,
    /// Reports from node ids held for approval, and new ids refused with the list full.
    pub reports_held: AtomicU64,
    pub pending_refused: AtomicU64,
    /// Nodes the store forgot after `forget_after` of silence.
    pub nodes_expired: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn json(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "reports_accepted": g(&self.accepted),
            "reports_rejected": g(&self.rejected),
            "connections_refused": g(&self.connections_refused),
            "tls_handshake_failures": g(&self.tls_handshake_failures),
            "nodes_refused": g(&self.nodes_refused),
            "flushes": g(&self.flushes),
            "flush_errors": g(&self.flush_errors),
            "new_nodes_throttled": g(&self.new_nodes_throttled),
            "reports_held_for_approval": g(&self.reports_held),
            "pending_refused": g(&self.pending_refused),
            "nodes_expired": g(&self.nodes_expired),
        })
    }
}

#[derive(Default)]
pub struct Memory {
    pub nodes: Mutex<Nodes>,
    /// Changes to what the view is computed from ([`Memory::note_change`]).
    changes: AtomicU64,
    /// SHA-256 of active tokens → role.
    pub tokens: RwLock<HashMap<[u8; 32], Role>>,
    pub counters: Counters,
    /// New node ids per token ([`crate::ingest::NewNodeBudget`]).
    pub new_nodes: Mutex<crate::ingest::NewNodeBudget>,
}

impl Memory {
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.role_of_hash(&crate::store::token_hash(token))
    }

    /// [`Memory::role_of`] for a token already hashed (ingest needs the hash too).
    pub fn role_of_hash(&self, hash: &[u8; 32]) -> Option<Role> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .copied()
    }

    pub fn set_tokens(&self, tokens: Vec<([u8; 32], Role)>) {
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = tokens.into_iter().collect();
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Nodes> {
        // Whoever takes the lock may change the nodes: the cached view is then out of date
        // (crate::view_cache). Bumped before the change, so a view computed after reading
        // the new count sees it.
        self.note_change();
        self.read_lock()
    }

    /// The lock for reading only: does not invalidate the cached view.
    fn read_lock(&self) -> std::sync::MutexGuard<'_, Nodes> {
        // A panic while holding the lock cannot leave a half-applied entry (each update is
        // a few field writes), so a poisoned lock is still usable.
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something the view is computed from changed (memory, or a maintenance window).
    pub fn note_change(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// How many changes [`Memory::note_change`] has seen.
    pub fn change_count(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Replaces memory with the store's nodes, keeping in-memory flap history and any
    /// report newer than what the store holds (not flushed yet).
    pub fn reload_nodes(&self, stored: Vec<StoredNode>) {
        let mut nodes = self.lock();
        let mut fresh: HashMap<NodeKey, NodeEntry> = HashMap::with_capacity(stored.len());
        for s in stored {
            let key = (s.node_type, s.row.node_id.clone());
            let old = nodes.map.remove(&key);
            fresh.insert(key, NodeEntry::merged(s, old));
        }
        nodes.dirty.retain(|k| fresh.contains_key(k));
        nodes.map = fresh;
    }

    /// Takes only what another connection changed: `changed` nodes as the store has them
    /// (merged as [`Memory::reload_nodes`] does), `gone` nodes removed, and new replay
    /// floors.
    pub fn reload_some(
        &self,
        changed: Vec<StoredNode>,
        gone: Vec<NodeKey>,
        floors: crate::store::NodeFloors,
    ) {
        let mut nodes = self.lock();
        for s in changed {
            let key = (s.node_type, s.row.node_id.clone());
            let old = nodes.map.remove(&key);
            nodes.map.insert(key, NodeEntry::merged(s, old));
        }
        for key in gone {
            nodes.map.remove(&key);
            nodes.dirty.remove(&key);
        }
        for (key, floor) in floors {
            if let Some(e) = nodes.map.get_mut(&key) {
                e.floor = floor;
            }
        }
    }

    /// The roll-up's input for nodes read from a store (the CLI's `nodes forget
    /// --unvouched` judges them as the running collector would).
    pub fn records_of(stored: Vec<StoredNode>) -> Vec<NodeRecord> {
        let mem = Memory::default();
        mem.reload_nodes(stored);
        mem.records()
    }

    /// Replaces the set of node ids held for approval with the store's.
    pub fn set_pending(&self, pending: Vec<NodeKey>) {
        self.lock().pending = pending.into_iter().collect();
    }

    /// Takes the rows to write behind.
    pub fn take_dirty(&self) -> Vec<LatestRow> {
        let mut nodes = self.lock();
        let keys: Vec<NodeKey> = nodes.dirty.drain().collect();
        keys.into_iter()
            .filter_map(|k| {
                let e = nodes.map.get(&k)?;
                let latest = e.latest.as_ref()?;
                let raw = e.raw.as_ref()?;
                let current = e.boots.back();
                Some(LatestRow {
                    node_type: k.0,
                    node_id: k.1.clone(),
                    name: e.name.clone(),
                    private_ip: e.private_ip.clone(),
                    received_ms: latest.received_ms,
                    skew_ms: latest.skew_ms,
                    signed: latest.signed,
                    body: raw.to_vec(),
                    boot_id: current.map(|b| b.0.clone()),
                    seq: current.map(|b| b.1).unwrap_or(0),
                })
            })
            .collect()
    }

    /// A consistent snapshot for the roll-up: cheap clones (reports are behind `Arc`).
    pub fn records(&self) -> Vec<NodeRecord> {
        let nodes = self.read_lock();
        nodes
            .map
            .iter()
            .map(|((t, id), e)| NodeRecord {
                node_type: *t,
                node_id: id.clone(),
                name: e.name.clone(),
                private_ip: e.private_ip.clone(),
                key_mismatch: e.key_mismatch,
                latest: e.latest.clone(),
                status_changes_ms: e.changes.iter().copied().collect(),
            })
            .collect()
    }
}
