//! Waiting with a deadline: the one polling loop the suites use instead of sleeping.
//!
//! [`poll`] is the core (try, sleep `every`, give up at the deadline with the last reason);
//! [`wait_for`] panics on timeout, [`wait_until`] returns an error for `Result`-style suites,
//! [`eventually`] is the async form for tests on a tokio runtime.

use std::time::{Duration, Instant};

/// Calls `attempt` every `every` until it returns `Ok`, or returns the last `Err` reason once
/// `limit` has passed. Returns the value and how long it took.
pub fn poll<T>(
    limit: Duration,
    every: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<(T, Duration), String> {
    let t0 = Instant::now();
    loop {
        let last = match attempt() {
            Ok(v) => return Ok((v, t0.elapsed())),
            Err(e) => e,
        };
        if t0.elapsed() >= limit {
            return Err(last);
        }
        std::thread::sleep(every);
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` at the deadline.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for_every(what, limit, Duration::from_millis(50), &mut f)
}

/// [`wait_for`] with its own polling interval (for checks that are expensive to make).
pub fn wait_for_every<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    poll(limit, every, || f().ok_or_else(String::new))
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
        .0
}

/// Polls `check` every `every` until it returns `Ok(true)`, or fails after `timeout` with the
/// last error / "still false". `check` errors do not abort the wait.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    poll(timeout, every, || match check() {
        Ok(true) => Ok(()),
        Ok(false) => Err("condition still false".to_string()),
        Err(e) => Err(format!("{e:#}")),
    })
    .map(|((), took)| took)
    .map_err(|last| {
        anyhow::anyhow!("timed out after {timeout:?} waiting for {what} (last: {last})")
    })
}

/// Polls the async `f` every 50 ms until it returns true, panicking after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
