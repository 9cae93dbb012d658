//! `GET /api/v3.1/cluster-status` served from cached bytes.
//!
//! At 10,000 nodes one view costs tens of ms of CPU (copying the records, the roll-up,
//! 3.8 MB of JSON) while a poller (the status page, `cfy cluster status` in a loop, a
//! monitoring check) asks for the same thing again and again. So the serialised view is
//! kept, with its gzip form made the first time a client asks for it, and reused until
//! something it is computed from changes ([`crate::state::Memory::note_change`]: anything
//! that takes the nodes' lock to write, a maintenance window set or ended through the API)
//! or it is [`MAX_STALE_MS`] old, whichever comes first. So a reader sees its own writes
//! at once, and **a view served is never more than 100 ms behind** for what no change
//! count sees: time passing (a node turning stale) and maintenance windows the CLI
//! writes to the store directly. Under steady ingest memory changes with every report,
//! so there the view is computed per request as before; the cache pays off for readers
//! polling between changes and for several readers at once.
//!
//! Only one view is computed at a time: readers that find the cache too old wait for the
//! one computation under way and all get its result (no stampede of roll-ups).

use crate::app::App;
use axum::body::Bytes;
use sr_protocol::NodeStatus;
use std::sync::{Arc, OnceLock};

/// How old cached view bytes may be when served (the staleness bound above).
pub const MAX_STALE_MS: i64 = 100;

/// One computed view, serialised.
pub struct CachedView {
    /// [`crate::state::Memory::change_count`] read before computing.
    changes: u64,
    /// The collector clock the roll-up judged at (Unix ms).
    pub at_ms: i64,
    /// The overall status, for `?summary=true`.
    pub status: NodeStatus,
    /// The view as JSON.
    pub json: Bytes,
    /// `json` gzipped, made on first demand.
    gzip: OnceLock<Bytes>,
}

impl CachedView {
    /// The gzip form of [`CachedView::json`] (fast compression: the JSON is repetitive
    /// and shrinks ~20x at level 1; higher levels cost more CPU than they save bytes).
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                use std::io::Write;
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.json.len() / 8),
                    flate2::Compression::fast(),
                );
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(&self.json);
                Bytes::from(enc.finish().unwrap_or_default())
            })
            .clone()
    }
}

/// The cache; one per collector, in [`App`].
#[derive(Default)]
pub struct ViewCache {
    slot: tokio::sync::Mutex<Option<Arc<CachedView>>>,
    /// Each judged row's bytes, reused by the next view where its source is unchanged
    /// ([`crate::view_encode`]). Taken by the one computation under way.
    rows: std::sync::Mutex<crate::view_encode::RowCache>,
}

impl ViewCache {
    /// The view with every change counted so far and at most [`MAX_STALE_MS`] old, computed
    /// now if the cached one is not.
    /// With `gzip`, its gzip form is made (off the async threads) before this returns.
    /// `None` if the computation panicked.
    pub async fn get(&self, app: &Arc<App>, gzip: bool) -> Option<Arc<CachedView>> {
        let mut slot = self.slot.lock().await;
        let changes = app.mem.change_count();
        // The last view's size: the next one is encoded into a buffer that large, so its
        // megabytes are not copied through every doubling of a growing one.
        let size_hint = slot.as_ref().map_or(0, |v| v.json.len());
        let fresh = slot
            .as_ref()
            .filter(|v| v.changes == changes)
            .filter(|v| crate::clock::now_ms().saturating_sub(v.at_ms) <= MAX_STALE_MS)
            .cloned();
        let view = match fresh {
            Some(v) => v,
            None => {
                let app = app.clone();
                let v = tokio::task::spawn_blocking(move || {
                    Arc::new(compute(&app, changes, size_hint))
                })
                .await
                .ok()?;
                *slot = Some(v.clone());
                v
            }
        };
        // Other readers need not wait for this one's compression.
        drop(slot);
        if gzip && view.gzip.get().is_none() {
            let v = view.clone();
            tokio::task::spawn_blocking(move || v.gzip()).await.ok()?;
        }
        Some(view)
    }
}

fn compute(app: &App, changes: u64, size_hint: usize) -> CachedView {
    let mut json = Vec::with_capacity(size_hint + size_hint / 8);
    // A computation that panicked leaves rows whose sources are still true: keep them.
    let mut rows = app
        .view_cache
        .rows
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let (at_ms, status) = app.with_view_parts(|now, parts| {
        if crate::view_encode::write(&parts, Some(&mut rows), &mut json).is_err() {
            json.clear();
        }
        (now, parts.status)
    });
    CachedView {
        changes,
        at_ms,
        status,
        json: Bytes::from(json),
        gzip: OnceLock::new(),
    }
}

/// Whether an `Accept-Encoding` header value accepts gzip (RFC 9110 12.5.3: `gzip` or
/// `x-gzip` named with a q-value above zero; else `*` with one).
pub fn accepts_gzip(value: &str) -> bool {
    let mut star = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q_zero = parts.any(|p| {
            let p = p.trim();
            // `get`, not slicing: a value need not be ASCII where this is called from.
            p.get(..2).is_some_and(|k| k.eq_ignore_ascii_case("q="))
                && p.get(2..)
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return !q_zero;
        }
        if coding == "*" {
            star = Some(!q_zero);
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        for yes in [
            "gzip",
            "gzip, deflate",
            "deflate, GZIP;q=0.5",
            "br;q=1, x-gzip",
            "*",
            "identity, *;q=0.1",
            "gzip;é",
            "gzip;aé=1",
        ] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip; q=0.000",
            "gzipx",
            "*;q=0",
            ";;;",
            "q=1",
            "gzip;q=0, *",
            "*, gzip;q=0",
        ] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}
