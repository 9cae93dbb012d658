//! The collector's wall clock, read in one place.
//!
//! Freshness is judged by the collector's receive time only, so every "now" the collector
//! uses (receipt stamps, the roll-up's `now`, store timestamps) comes from here. The pure
//! parts (the roll-up) never call it: they are passed `now`.

/// Unix milliseconds now; 0 if the system clock is before 1970.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
