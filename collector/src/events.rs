//! `GET /api/v3.1/events`: status transitions and maintenance changes as Server-Sent
//! Events, served from the store.
//!
//! A maintenance on/off/expiry is one event `maintenance` ([`crate::store::WindowEvent`]),
//! its id from the same sequence as transitions, so one `after` id resumes both.
//! Each stored transition is one event `transition` whose `id` is its event id (increasing,
//! never reused; [`crate::store::HistoryRow::id`]) and whose data is the same JSON object
//! `GET /api/v3.1/history` lists. A client resumes with `Last-Event-ID` (what EventSource
//! sends on reconnect) or `?after=ID`; the header wins when both are given. Without either
//! the stream starts at the newest stored event (live only).
//!
//! Why no gap is possible: every event is read from the store, where it was committed
//! before its report was acknowledged, in id order (`id > last sent`). The writer bumps a
//! watch channel after each commit that stored transitions; a watcher marks the channel
//! seen *before* it reads, so a commit during the read wakes it again. A restart loses
//! nothing either: the client resumes from its last id against the same store. Only
//! retention (`transitions_max_age_days`, `transitions_per_node`) removes events.
//!
//! Encoded once: a wake-up reads the events after the watcher's id once for every watcher
//! at that id ([`LastRead`]), frames them as SSE once ([`Encoded`]) and each watcher sends
//! the same shared bytes as one chunk, so the cost of a commit is one read and one
//! encoding, plus a write per watcher.
//!
//! Bounds: at most [`MAX_WATCHERS`] streams at once (past it 503 with `Retry-After`,
//! counted); per watcher at most [`BATCH`] events read ahead of the client (the stream is
//! pulled as the connection drains, so a slow client holds one batch, never a queue); a
//! keep-alive comment every [`KEEP_ALIVE`] so proxies and clients can tell a quiet stream
//! from a dead one. Streams end when the collector begins to stop.

use crate::app::App;
use crate::error::ApiError;
use crate::store::HistoryRow;
use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Enough for a status page open in 100 browsers (BENCHMARKS.md measures 100); each
/// holds at most [`BATCH`] rows read ahead.
pub const MAX_WATCHERS: usize = 128;
/// Events read from the store at once per watcher.
pub const BATCH: usize = 256;
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What a client is told to wait before reconnecting (the SSE `retry` field).
pub const CLIENT_RETRY: Duration = Duration::from_secs(2);

/// The watcher cap and its counters (on `/metrics`).
#[derive(Debug, Default)]
pub struct Watchers {
    pub active: AtomicUsize,
    /// Streams refused because [`MAX_WATCHERS`] were open.
    pub refused: AtomicU64,
    /// Events sent, all watchers together.
    pub sent: AtomicU64,
    /// The batch the last store read returned ([`LastRead`]).
    last_read: LastRead,
}

/// One open stream's place under the cap; given back on drop (the client went away).
struct Slot(Arc<App>);

impl Slot {
    fn take(app: &Arc<App>) -> Option<Slot> {
        let w = &app.watchers;
        let mut now = w.active.load(Ordering::Relaxed);
        loop {
            if now >= MAX_WATCHERS {
                w.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match w
                .active
                .compare_exchange(now, now + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(Slot(app.clone())),
                Err(seen) => now = seen,
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.watchers.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_parameters_error", message)
}

/// An event id as a client sends it: a whole number, 0 or more.
fn event_id(what: &str, v: &str) -> Result<i64, ApiError> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            bad(format!(
                "{what} must be an event id (a whole number, 0 or more)"
            ))
        })
}

/// Where a stream starts: `Some(id)` to send the events after `id`, `None` for live only.
/// The query may hold only `after`; `Last-Event-ID` wins over it.
pub fn start_after(
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Option<i64>, ApiError> {
    let mut after = None;
    for (k, v) in pairs {
        match k.as_str() {
            "after" if after.is_none() => after = Some(event_id("after", v)?),
            "after" => return Err(bad("after is given more than once")),
            other => {
                return Err(bad(format!(
                    "unknown parameter {:?}; known: after",
                    other.chars().take(40).collect::<String>()
                )))
            }
        }
    }
    let mut last = headers.get_all("last-event-id").iter();
    if let Some(h) = last.next() {
        if last.next().is_some() {
            return Err(bad("Last-Event-ID is given more than once"));
        }
        let v = h
            .to_str()
            .map_err(|_| bad("Last-Event-ID must be an event id"))?;
        return Ok(Some(event_id("Last-Event-ID", v)?));
    }
    Ok(after)
}

/// One stored transition (event `transition`) or maintenance change (event
/// `maintenance`), framed as SSE: `id`, `event`, one `data` line (the history item as
/// compact JSON, which never holds a raw newline), and the blank line that ends it.
fn frame(row: &HistoryRow, out: &mut Vec<u8>) {
    use std::io::Write;
    let kind = if row.node_type == crate::store::MAINTENANCE_EVENT {
        "maintenance"
    } else {
        "transition"
    };
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "id: {}\nevent: {kind}\ndata: {}\n\n",
        row.id,
        crate::history::item(row)
    );
}

/// A batch of events read after one id, encoded once: every watcher at that id sends the
/// same bytes (a reference-counted [`Bytes`], never copied per watcher).
#[derive(Debug)]
pub struct Encoded {
    /// The id of the batch's last event, where its watchers continue from.
    last: i64,
    count: u64,
    bytes: Bytes,
}

impl Encoded {
    pub fn of(rows: &[HistoryRow]) -> Encoded {
        let mut out = Vec::with_capacity(rows.len() * 512);
        for row in rows {
            frame(row, &mut out);
        }
        Encoded {
            last: rows.last().map_or(0, |r| r.id),
            count: rows.len() as u64,
            bytes: Bytes::from(out),
        }
    }
}

/// A watcher's state between two writes.
struct Watch {
    app: Arc<App>,
    last: i64,
    commits: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    _slot: Slot,
}

/// The last batch read and encoded, shared: after a commit every watcher at the same id
/// wants the same events, so the first reads and encodes them and the others send its
/// bytes.
#[derive(Debug, Default)]
pub struct LastRead(std::sync::Mutex<Option<Batch>>);

/// A batch read: the id it was read after, the commit count seen, the encoded events.
type Batch = (i64, u64, Arc<Encoded>);

/// The events after `last` as of commit count `seen` or later, encoded. A cached batch is
/// reused only for the same `last` and `seen`: it was read after the count reached
/// `seen`, so it holds every commit that count covers (and possibly later ones, still in
/// id order).
async fn read_after(app: &Arc<App>, last: i64, seen: u64) -> Option<Arc<Encoded>> {
    let app2 = app.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let mut cache = app2
            .watchers
            .last_read
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((after, at, batch)) = cache.as_ref() {
            if *after == last && *at == seen {
                return Ok(batch.clone());
            }
        }
        let rows = app2.history.with(&app2, |s| s.events_after(last, BATCH))?;
        let batch = Arc::new(Encoded::of(&rows));
        *cache = Some((last, seen, batch.clone()));
        Ok(batch)
    })
    .await
    .ok()?;
    match read {
        Ok(batch) => Some(batch),
        Err(e) => {
            // The stream ends; the client reconnects from its last id.
            tracing::warn!(error = %e, "event stream: store read failed");
            None
        }
    }
}

/// A comment line: keeps proxies and clients from taking a quiet stream for a dead one.
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";

/// The next write: every event stored since the last one, as one chunk (a wake-up's
/// batch), waiting for a commit when there is none, or a keep-alive after
/// [`KEEP_ALIVE`] of quiet. `None` ends the stream.
async fn next(mut w: Watch) -> Option<(Result<Bytes, Infallible>, Watch)> {
    loop {
        if *w.closing.borrow() {
            return None;
        }
        // Seen before the read: a commit from here on wakes the wait below.
        let seen = *w.commits.borrow_and_update();
        let batch = read_after(&w.app, w.last, seen).await?;
        if batch.count > 0 {
            w.last = batch.last;
            w.app
                .watchers
                .sent
                .fetch_add(batch.count, Ordering::Relaxed);
            return Some((Ok(batch.bytes.clone()), w));
        }
        tokio::select! {
            changed = w.commits.changed() => changed.ok()?,
            _ = w.closing.changed() => return None,
            _ = tokio::time::sleep(KEEP_ALIVE) => {
                return Some((Ok(Bytes::from_static(KEEP_ALIVE_FRAME)), w));
            }
        }
    }
}

/// Opens a stream after the caller has been authenticated.
pub async fn open(
    app: Arc<App>,
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let after = start_after(pairs, headers)?;
    let Some(slot) = Slot::take(&app) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_watchers",
            format!("{MAX_WATCHERS} event streams are open already; retry later"),
        )
        .retry_after(CLIENT_RETRY.as_secs().max(1)));
    };
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the collector's store is unavailable",
        )
    };
    let last = match after {
        Some(id) => id,
        None => {
            let app2 = app.clone();
            tokio::task::spawn_blocking(move || {
                app2.history.with(&app2, |s| s.last_transition_id())
            })
            .await
            .map_err(|_| unavailable())?
            .map_err(|_| unavailable())?
        }
    };
    let w = Watch {
        commits: app.writer.commits.subscribe(),
        closing: app.closing.subscribe(),
        app,
        last,
        _slot: slot,
    };
    // The first write tells the client how long to wait before reconnecting.
    let hello = format!(
        ": status-reporter events\nretry: {}\n\n",
        CLIENT_RETRY.as_millis()
    );
    let hello = futures_util::stream::once(async { Ok::<_, Infallible>(Bytes::from(hello)) });
    let stream = futures_util::StreamExt::chain(hello, futures_util::stream::unfold(w, next));
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    // Tells nginx and friends not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn row(id: i64, node_type: &str, name: &str, reasons_json: &str) -> HistoryRow {
        HistoryRow {
            id,
            node_type: node_type.into(),
            node_id: format!("id-{id}"),
            node_name: Some(name.into()),
            service: None,
            from: "OK".into(),
            to: "Fail".into(),
            at_ms: 1_780_000_000_000,
            received_ms: 1_780_000_000_100,
            boot_id: "b".into(),
            seq: id as u64,
            reasons_json: reasons_json.into(),
        }
    }

    /// The bytes encoded once are what axum's own SSE encoder writes for the same events,
    /// also for names and reasons holding newlines, quotes and markup.
    #[tokio::test]
    async fn encoded_once_is_what_axum_writes_event_by_event() {
        use axum::response::sse::{Event, Sse};
        use axum::response::IntoResponse;
        use http_body_util::BodyExt;
        let rows = vec![
            row(
                1,
                "db",
                "db1",
                r#"[{"code":"stale","message":"a\nb \"c\" <script>"}]"#,
            ),
            row(7, "manager", "<img src=x>\r\n", "[]"),
            row(
                9,
                crate::store::MAINTENANCE_EVENT,
                "m",
                r#"{"action":"on"}"#,
            ),
        ];
        let encoded = Encoded::of(&rows);
        assert_eq!((encoded.last, encoded.count), (9, 3));
        let events: Vec<Result<Event, Infallible>> = rows
            .iter()
            .map(|r| {
                let kind = if r.node_type == crate::store::MAINTENANCE_EVENT {
                    "maintenance"
                } else {
                    "transition"
                };
                Ok(Event::default()
                    .id(r.id.to_string())
                    .event(kind)
                    .data(crate::history::item(r).to_string()))
            })
            .collect();
        let axum_bytes = Sse::new(futures_util::stream::iter(events))
            .into_response()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(
            String::from_utf8_lossy(&encoded.bytes),
            String::from_utf8_lossy(&axum_bytes)
        );
        // A client reads back the three events, in order, with their ids.
        let mut p = sr_protocol::sse::SseParser::new();
        let got = p.feed(&encoded.bytes);
        let ids: Vec<_> = got.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids.len(), 3, "{got:?}");
        assert_eq!(Encoded::of(&[]).count, 0);
    }

    #[test]
    fn the_start_comes_from_last_event_id_then_after_then_now() {
        let mut h = HeaderMap::new();
        assert_eq!(start_after(&[], &h).unwrap(), None);
        assert_eq!(start_after(&pairs(&[("after", "7")]), &h).unwrap(), Some(7));
        h.insert("last-event-id", "9".parse().unwrap());
        assert_eq!(start_after(&pairs(&[("after", "7")]), &h).unwrap(), Some(9));
    }

    #[test]
    fn bad_ids_and_parameters_are_400s() {
        let h = HeaderMap::new();
        for q in [
            pairs(&[("after", "-1")]),
            pairs(&[("after", "x")]),
            pairs(&[("after", "99999999999999999999")]),
            pairs(&[("after", "1"), ("after", "2")]),
            pairs(&[("node", "a")]),
        ] {
            assert_eq!(
                start_after(&q, &h).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{q:?}"
            );
        }
        for v in ["", "abc", "-3", "1.5", "١٢"] {
            let mut h = HeaderMap::new();
            if let Ok(hv) = v.parse() {
                h.insert("last-event-id", hv);
                assert!(start_after(&[], &h).is_err(), "{v:?}");
            }
        }
        let mut h = HeaderMap::new();
        h.append("last-event-id", "1".parse().unwrap());
        h.append("last-event-id", "2".parse().unwrap());
        assert!(start_after(&[], &h).is_err());
    }
}
