//! Server-Sent Events framing, as a client reads `GET /api/v3.1/events`: bytes in,
//! complete events out. Pure and bounded: a line longer than [`MAX_LINE`] or an event's
//! data beyond [`MAX_DATA`] is dropped (counted) rather than buffered without end, so a
//! hostile or broken server cannot make the reader grow.
//!
//! The rules are the WHATWG ones a browser's EventSource follows: lines end with `\n`,
//! `\r\n` or `\r`; `field: value` (one optional space after the colon); a line starting
//! with `:` is a comment; a blank line dispatches the event; `data` lines are joined with
//! `\n`; an `id` containing NUL is ignored; the last id persists across events.

/// Longest line kept; longer lines are skipped whole.
pub const MAX_LINE: usize = 256 * 1024;
/// Most data bytes one event may carry; past it the event is dropped.
pub const MAX_DATA: usize = 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field, `message` when absent.
    pub event: String,
    pub data: String,
    /// The last event id seen on the stream (persists across events).
    pub id: Option<String>,
    /// A `retry` field's milliseconds, if this event carried one.
    pub retry_ms: Option<u64>,
}

/// Incremental parser state for one connection.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
    /// The previous byte was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    data_too_big: bool,
    last_id: Option<String>,
    retry_ms: Option<u64>,
    /// Lines and events dropped for size.
    pub dropped: u64,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen, for `Last-Event-ID` on reconnect.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds `bytes`; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    if std::mem::take(&mut self.skipping) {
                        self.line.clear();
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&line) {
                        out.push(e);
                    }
                }
                _ if self.skipping => {}
                _ if self.line.len() >= MAX_LINE => {
                    self.line.clear();
                    self.skipping = true;
                    self.dropped += 1;
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                // Each data line is the value and a newline; dispatch drops the last one.
                let data = self.data.get_or_insert_with(String::new);
                if data.len() + value.len() + 1 > MAX_DATA {
                    self.data_too_big = true;
                } else if !self.data_too_big {
                    data.push_str(value);
                    data.push('\n');
                }
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok()
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let data = self.data.take();
        let retry_ms = self.retry_ms.take();
        if std::mem::take(&mut self.data_too_big) {
            self.dropped += 1;
            return None;
        }
        let mut data = data?;
        data.pop();
        Some(SseEvent {
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".into()),
            data,
            id: self.last_id.clone(),
            retry_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text = b": hello\nretry: 2000\n\nid: 7\nevent: transition\ndata: {\"a\":1}\n\nid: 8\r\nevent: transition\r\ndata: x\r\ndata: y\r\n\r\n";
        for split in 0..text.len() {
            let mut p = SseParser::new();
            let mut got = p.feed(&text[..split]);
            got.extend(p.feed(&text[split..]));
            assert_eq!(got.len(), 2, "split at {split}: {got:?}");
            assert_eq!(got[0].id.as_deref(), Some("7"));
            assert_eq!(got[0].event, "transition");
            assert_eq!(got[0].data, "{\"a\":1}");
            assert_eq!(got[1].data, "x\ny");
            assert_eq!(p.last_id(), Some("8"));
        }
    }

    #[test]
    fn oversized_lines_and_data_are_dropped_and_counted() {
        let mut p = SseParser::new();
        let mut huge = b"data: ".to_vec();
        huge.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        huge.extend(b"\n\nid: 3\ndata: ok\n\n");
        let got = p.feed(&huge);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, "ok");
        assert!(p.dropped >= 1);
        let mut p = SseParser::new();
        let line = format!("data: {}\n", "y".repeat(200_000));
        let many: String = std::iter::repeat_n(line.as_str(), 8).collect::<String>() + "\n";
        assert!(p.feed(many.as_bytes()).is_empty(), "over MAX_DATA: dropped");
        assert_eq!(p.dropped, 1);
        assert_eq!(
            p.feed(b"data: after\n\n")[0].data,
            "after",
            "the parser recovers"
        );
    }

    #[test]
    fn ids_with_nul_are_ignored_and_blank_events_dispatch_nothing() {
        let mut p = SseParser::new();
        assert!(p.feed(b"\n\n\nid: 5\n\n").is_empty());
        assert_eq!(p.last_id(), Some("5"));
        let got = p.feed(b"id: 6\0\ndata\n\n");
        assert_eq!(got[0].id.as_deref(), Some("5"));
        assert_eq!(got[0].data, "");
    }
}
