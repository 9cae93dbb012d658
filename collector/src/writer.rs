//! The store's one writer: a dedicated thread owning the SQLite connection.
//!
//! Async request handlers never block on SQLite. They send an [`Op`] over a bounded
//! channel and await the answer. Durable writes that queue up while a commit runs are
//! committed together in one transaction (group commit: one fsync for many reports).
//!
//! Health: the thread records whether its last write succeeded ([`Writer::writes_ok`],
//! so `/api/v3.1/ok` is not ready while writes fail) and answers [`Writer::ping`], so the
//! systemd watchdog is fed only while the thread still takes work.

use crate::store::{
    ChangeMarks, DurableWrite, Held, HeldReport, LatestRow, PinOutcome, Role, Store, StoredNode,
};
use sr_protocol::NodeType;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Ops waiting for the writer; a full queue makes ingest wait (back-pressure), never drop.
const QUEUE: usize = 1024;
/// Most ops folded into one transaction.
const BATCH: usize = 512;
/// The age sweep of the transitions table and the expiry of silent nodes run at most
/// this often (the count bound is enforced on every insert); more often when
/// `forget_after` is short, so a node is forgotten within 1.5 × `forget_after`.
const AGE_SWEEP_EVERY: Duration = Duration::from_secs(60);

fn sweep_every(forget_after_ms: i64) -> Duration {
    Duration::from_millis(
        (forget_after_ms / 2).clamp(1000, AGE_SWEEP_EVERY.as_millis() as i64) as u64,
    )
}

/// Store changes made by another connection (the CLI, the shared store's sync task) or by
/// the writer's expiry sweep, picked up by a flush: only what changed (`store::changes`).
#[derive(Default)]
pub struct Reload {
    /// Every active token, when any changed.
    pub tokens: Option<Vec<([u8; 32], Role)>>,
    pub nodes: NodeReload,
    /// Node ids held for approval, when they changed.
    pub pending: Option<Vec<(NodeType, String)>>,
    /// Nodes the expiry sweep forgot since the last flush.
    pub expired: usize,
}

/// Which nodes memory takes from the store.
pub enum NodeReload {
    /// Every node (at most once per overflow of the change journal).
    All(Vec<StoredNode>),
    Some {
        /// Nodes whose row changed, as the store has them now.
        changed: Vec<StoredNode>,
        /// Nodes no longer in the store.
        gone: Vec<(NodeType, String)>,
        /// Nodes whose shared replay floor alone changed, with the floor.
        floors: crate::store::NodeFloors,
    },
}

impl Default for NodeReload {
    fn default() -> Self {
        NodeReload::Some {
            changed: Vec::new(),
            gone: Vec::new(),
            floors: Vec::new(),
        }
    }
}

pub enum Op {
    Durable(
        Vec<DurableWrite>,
        oneshot::Sender<Result<PinOutcome, String>>,
    ),
    /// Write latest rows behind, then report any external change.
    Flush(
        Vec<LatestRow>,
        oneshot::Sender<Result<Option<Reload>, String>>,
    ),
    UserHash(String, oneshot::Sender<Option<String>>),
    /// A report from a node id held for approval, and `max_pending`.
    Hold(HeldReport, usize, oneshot::Sender<Result<Held, String>>),
    /// Answered as soon as the thread reaches it: the thread is not wedged.
    Ping(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Op>,
    /// False while the last write (durable commit or flush) failed.
    writes_ok: Arc<AtomicBool>,
    /// How long the thread's writes take, for `/metrics`.
    pub timings: crate::metrics::StoreTimings,
    /// Bumped after each commit that stored transitions: the event stream's wake-up.
    pub commits: Arc<tokio::sync::watch::Sender<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the store writer has stopped")]
    Stopped,
    #[error("store: {0}")]
    Store(String),
}

impl Writer {
    /// Starts the writer thread. It ends when every `Writer` clone is dropped, after
    /// finishing the queued ops.
    /// `seen` is what memory was loaded from: the store's `data_version` and change marks
    /// at that moment; the writer's connection must be quiet (`Store::quiet_own_changes`).
    pub fn start(store: Store, seen: (i64, ChangeMarks)) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writes_ok = Arc::new(AtomicBool::new(true));
        let health = writes_ok.clone();
        let timings = crate::metrics::StoreTimings::default();
        let timed = timings.clone();
        let commits = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let told = commits.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(store, rx, seen, &health, &timed, &told))
            .expect("spawning a thread only fails when the OS is out of resources");
        (
            Writer {
                tx,
                writes_ok,
                timings,
                commits,
            },
            handle,
        )
    }

    /// False once the writer thread has ended (the store failed or shutdown began).
    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Whether the store's last write succeeded (true before the first).
    pub fn writes_ok(&self) -> bool {
        self.writes_ok.load(Ordering::Relaxed)
    }

    /// Ready for readers and load balancers: the thread runs and writes succeed.
    pub fn is_healthy(&self) -> bool {
        self.is_alive() && self.writes_ok()
    }

    /// Whether the thread answers within `within`: alive and not wedged.
    pub async fn ping(&self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.ask(Op::Ping)).await,
            Ok(Ok(()))
        )
    }

    pub async fn durable(&self, writes: Vec<DurableWrite>) -> Result<PinOutcome, WriterError> {
        self.ask(|reply| Op::Durable(writes, reply))
            .await?
            .map_err(WriterError::Store)
    }

    pub async fn flush(&self, rows: Vec<LatestRow>) -> Result<Option<Reload>, WriterError> {
        self.ask(|reply| Op::Flush(rows, reply))
            .await?
            .map_err(WriterError::Store)
    }

    pub async fn user_hash(&self, name: String) -> Result<Option<String>, WriterError> {
        self.ask(|reply| Op::UserHash(name, reply)).await
    }

    /// Holds a report from a node id waiting for approval (durable before the answer).
    pub async fn hold(&self, report: HeldReport, max_pending: usize) -> Result<Held, WriterError> {
        self.ask(|reply| Op::Hold(report, max_pending, reply))
            .await?
            .map_err(WriterError::Store)
    }

    /// Queues the op `op` builds around a reply channel and awaits the writer's answer;
    /// a closed queue or a dropped reply both mean the writer has stopped.
    async fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op) -> Result<T, WriterError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(op(tx))
            .await
            .map_err(|_| WriterError::Stopped)?;
        rx.await.map_err(|_| WriterError::Stopped)
    }
}

fn run(
    mut store: Store,
    mut rx: mpsc::Receiver<Op>,
    mut seen: (i64, ChangeMarks),
    ok: &AtomicBool,
    timings: &crate::metrics::StoreTimings,
    commits: &tokio::sync::watch::Sender<u64>,
) {
    let mut last_sweep: Option<Instant> = None;
    // Nodes the sweep forgot, not yet handed to memory by a flush.
    let mut expired: Vec<(NodeType, String)> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut durable = Vec::new();
        for op in batch {
            match op {
                Op::Durable(w, reply) => durable.push((w, reply)),
                Op::UserHash(name, reply) => {
                    let _ = reply.send(store.user_hash(&name).ok().flatten());
                }
                Op::Hold(report, max_pending, reply) => {
                    let held = store.hold_pending(&report, max_pending);
                    ok.store(held.is_ok(), Ordering::Relaxed);
                    let _ = reply.send(held.map_err(|e| e.to_string()));
                }
                Op::Flush(rows, reply) => {
                    let every = sweep_every(store.retention().forget_after_ms);
                    if last_sweep.is_none_or(|t| t.elapsed() >= every) {
                        last_sweep = Some(Instant::now());
                        let now = crate::clock::now_ms();
                        let swept = store.sweep_old_transitions(now).and_then(|_| {
                            store.expire_nodes(now, store.retention().forget_after_ms)
                        });
                        if let Ok(gone) = &swept {
                            expired.extend(gone.iter().filter_map(|r| {
                                Some((
                                    crate::store::node_type_of(&r.node_type).ok()?,
                                    r.node_id.clone(),
                                ))
                            }));
                            if !gone.is_empty() {
                                tracing::info!(
                                    nodes = gone.len(),
                                    "forgot nodes silent past forget_after"
                                );
                            }
                        }
                        ok.store(swept.is_ok(), Ordering::Relaxed);
                    }
                    let started = Instant::now();
                    let result = flush(&mut store, &rows, &mut seen, &mut expired)
                        .map_err(|e| e.to_string());
                    timings.flush(started.elapsed());
                    ok.store(result.is_ok(), Ordering::Relaxed);
                    let _ = reply.send(result);
                }
                Op::Ping(reply) => {
                    let _ = reply.send(());
                }
            }
        }
        if durable.is_empty() {
            continue;
        }
        let all: Vec<DurableWrite> = durable
            .iter()
            .flat_map(|(w, _)| w.iter().cloned())
            .collect();
        let started = Instant::now();
        let committed = store.commit_durable(&all);
        timings.durable(started.elapsed());
        ok.store(committed.is_ok(), Ordering::Relaxed);
        match committed {
            Ok(pins) => {
                if all
                    .iter()
                    .any(|w| matches!(w, DurableWrite::Transitions { .. }))
                {
                    commits.send_modify(|n| *n += 1);
                }
                let mut pins = pins.into_iter();
                for (writes, reply) in durable {
                    let n = writes
                        .iter()
                        .filter(|w| matches!(w, DurableWrite::Pin { .. }))
                        .count();
                    let _ = reply.send(Ok(pins.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (_, reply) in durable {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

/// Writes `rows` behind, then reads back what another connection changed (its commits
/// move `data_version`; the writer's own do not) and what the sweep forgot: only those.
fn flush(
    store: &mut Store,
    rows: &[LatestRow],
    seen: &mut (i64, ChangeMarks),
    expired: &mut Vec<(NodeType, String)>,
) -> Result<Option<Reload>, crate::store::StoreError> {
    if !rows.is_empty() {
        store.write_latest(rows)?;
    }
    let v = store.data_version()?;
    if v == seen.0 && expired.is_empty() {
        return Ok(None);
    }
    seen.0 = v;
    let changes = store.take_changes(&mut seen.1)?;
    if changes.is_empty() && expired.is_empty() {
        return Ok(None);
    }
    let n_expired = expired.len();
    let nodes = if changes.all_nodes {
        expired.clear();
        NodeReload::All(store.load_nodes()?)
    } else {
        let changed = store.load_nodes_of(&changes.nodes)?;
        let mut gone: Vec<(NodeType, String)> = changes
            .nodes
            .into_iter()
            .filter(|k| {
                !changed
                    .iter()
                    .any(|c| c.node_type == k.0 && c.row.node_id == k.1)
            })
            .collect();
        gone.append(expired);
        NodeReload::Some {
            changed,
            gone,
            floors: store.floors_of(&changes.floors)?,
        }
    };
    let reload = Reload {
        tokens: changes
            .tokens
            .then(|| store.active_token_hashes())
            .transpose()?,
        nodes,
        pending: changes.pending.then(|| store.pending_keys()).transpose()?,
        expired: n_expired,
    };
    Ok(Some(reload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DurableWrite;
    use sr_protocol::NodeType;

    fn row() -> LatestRow {
        LatestRow {
            node_type: NodeType::Db,
            node_id: "n1".into(),
            name: "n1".into(),
            private_ip: None,
            received_ms: 1,
            skew_ms: 0,
            signed: true,
            body: b"{}".to_vec(),
            boot_id: None,
            seq: 0,
        }
    }

    /// Issue 12: `/api/v3.1/ok` said ready while every write failed. The writer now
    /// reports its last write's outcome, which `/ok` and `/status` read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_writes_make_the_writer_unhealthy_until_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .commit_durable(&[DurableWrite::Pin {
                node_type: NodeType::Db,
                node_id: "n1".into(),
                name: "n1".into(),
                key: None,
                private_ip: None,
                at_ms: 1,
            }])
            .unwrap();
        let (writer, thread) = Writer::start(store, (0, ChangeMarks::default()));
        assert!(writer.is_healthy());
        assert!(writer.ping(Duration::from_secs(5)).await);
        // Another process holds the write lock: every write waits out the busy timeout
        // and fails, as with a full or read-only disk.
        let blocker = rusqlite::Connection::open(dir.path().join(crate::store::DB_FILE)).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        assert!(writer.flush(vec![row()]).await.is_err());
        assert!(!writer.writes_ok());
        assert!(!writer.is_healthy());
        blocker.execute_batch("COMMIT").unwrap();
        writer.flush(vec![row()]).await.unwrap();
        assert!(writer.is_healthy());
        drop(writer);
        thread.join().unwrap();
    }
}
