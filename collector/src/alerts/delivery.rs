//! One alert's delivery to one endpoint: attempts with a deadline each, retries with
//! capped exponential backoff and jitter, and the classification of each outcome.
//!
//! Retried: a connect error, a timeout, a broken exchange, HTTP 408, 429 and 5xx (the
//! receiver may recover). Not retried: any other answer outside 2xx (a 400 or 401 will be
//! the same next time: the operator must fix the receiver or the config). Each retry
//! waits `min(cap, initial x 2^n)`, half of it fixed and half random ("equal jitter"), so
//! sinks that failed together do not retry together and a down receiver is never hammered.

use super::metrics::SinkMetrics;
use sr_tls::client::{ClientError, Response};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Why an attempt did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Timeout,
    Connect,
    /// The exchange broke (reset, bad response, body too large).
    Exchange,
    Http(u16),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Timeout => write!(f, "timeout"),
            Cause::Connect => write!(f, "connect"),
            Cause::Exchange => write!(f, "exchange"),
            Cause::Http(s) => write!(f, "http {s}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry(Cause),
    GiveUp(Cause),
}

pub fn classify(r: &Result<Response, ClientError>) -> Outcome {
    match r {
        Ok(resp) if resp.status.is_success() => Outcome::Delivered,
        Ok(resp) => {
            let s = resp.status.as_u16();
            if s == 408 || s == 429 || resp.status.is_server_error() {
                Outcome::Retry(Cause::Http(s))
            } else {
                Outcome::GiveUp(Cause::Http(s))
            }
        }
        Err(ClientError::Timeout(_)) => Outcome::Retry(Cause::Timeout),
        Err(ClientError::Connect(_)) => Outcome::Retry(Cause::Connect),
        Err(ClientError::Url(_)) => Outcome::GiveUp(Cause::Exchange),
        Err(_) => Outcome::Retry(Cause::Exchange),
    }
}

/// The wait before retry `n` (0 for the first retry): `step = min(cap, initial x 2^n)`,
/// then `step/2 + r x step/2` for `r` in `[0, 1)`.
pub fn backoff(n: u32, initial: Duration, cap: Duration, r: f64) -> Duration {
    let step = initial.saturating_mul(1u32 << n.min(20)).min(cap);
    let r = if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.0
    };
    step / 2 + step.mul_f64(r / 2.0)
}

/// A random fraction in `[0, 1)` for the jitter (ring's system RNG; no new dependency).
pub fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_be_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// How one sink retries.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_retries: u32,
    pub initial: Duration,
    pub cap: Duration,
}

/// Runs `attempt` until it delivers, gives up, or `max_retries` retries are spent; counts
/// every outcome on `m`. `queued_at` starts the delivery latency. Returns the outcome and,
/// when not delivered, the last cause.
pub async fn deliver<F, Fut>(
    retry: Retry,
    m: &SinkMetrics,
    queued_at: Instant,
    mut attempt: F,
) -> Result<(), Cause>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response, ClientError>>,
{
    let mut n = 0;
    loop {
        match classify(&attempt().await) {
            Outcome::Delivered => {
                m.delivered.inc();
                m.latency.observe(queued_at.elapsed().as_secs_f64());
                return Ok(());
            }
            Outcome::GiveUp(c) => {
                m.failed.inc();
                return Err(c);
            }
            Outcome::Retry(c) if n >= retry.max_retries => {
                m.failed.inc();
                return Err(c);
            }
            Outcome::Retry(_) => {
                m.retries.inc();
                tokio::time::sleep(backoff(n, retry.initial, retry.cap, jitter())).await;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use hyper::body::Bytes;

    fn answer(s: u16) -> Result<Response, ClientError> {
        Ok(Response {
            status: StatusCode::from_u16(s).unwrap(),
            headers: Default::default(),
            body: Bytes::new(),
        })
    }

    #[test]
    fn outcomes_are_classified_by_whether_trying_again_can_help() {
        assert_eq!(classify(&answer(200)), Outcome::Delivered);
        assert_eq!(classify(&answer(204)), Outcome::Delivered);
        assert_eq!(classify(&answer(500)), Outcome::Retry(Cause::Http(500)));
        assert_eq!(classify(&answer(503)), Outcome::Retry(Cause::Http(503)));
        assert_eq!(classify(&answer(429)), Outcome::Retry(Cause::Http(429)));
        assert_eq!(classify(&answer(400)), Outcome::GiveUp(Cause::Http(400)));
        assert_eq!(classify(&answer(401)), Outcome::GiveUp(Cause::Http(401)));
        assert_eq!(classify(&answer(301)), Outcome::GiveUp(Cause::Http(301)));
        assert_eq!(
            classify(&Err(ClientError::Timeout(Duration::from_secs(1)))),
            Outcome::Retry(Cause::Timeout)
        );
        assert_eq!(
            classify(&Err(ClientError::Connect("refused".into()))),
            Outcome::Retry(Cause::Connect)
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() {
        let i = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for (n, step) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1600),
            (5, 2000),
            (30, 2000),
        ] {
            let step = Duration::from_millis(step);
            assert_eq!(backoff(n, i, cap, 0.0), step / 2, "n={n}");
            assert!(backoff(n, i, cap, 0.999) < step && backoff(n, i, cap, 0.999) > step * 9 / 10);
        }
        assert_eq!(backoff(3, i, cap, f64::NAN), Duration::from_millis(400));
        for _ in 0..100 {
            let r = jitter();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_spaced_by_the_backoff_and_bounded() {
        let m = SinkMetrics::detached();
        let retry = Retry {
            max_retries: 3,
            initial: Duration::from_secs(1),
            cap: Duration::from_secs(3),
        };
        let start = Instant::now();
        let mut calls = Vec::new();
        let r = deliver(retry, &m, start, || {
            calls.push(start.elapsed());
            async { answer(500) }
        })
        .await;
        assert_eq!(r, Err(Cause::Http(500)));
        assert_eq!(calls.len(), 4, "1 attempt + 3 retries");
        // Waits of at least 0.5, 1, 1.5 s and less than 1, 2, 3 s (paused clock: exact).
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        for (g, step) in gaps.iter().zip([1, 2, 3]) {
            let step = Duration::from_secs(step);
            assert!(*g >= step / 2 && *g < step, "{gaps:?}");
        }
        assert_eq!(m.retries.get(), 3);
        assert_eq!(m.failed.get(), 1);
        assert_eq!(m.delivered.get(), 0);

        // 500, then 200: delivered on the second attempt; a 400 is not retried.
        let mut answers = vec![200, 500];
        let r = deliver(retry, &m, start, || {
            let s = answers.pop().unwrap();
            async move { answer(s) }
        })
        .await;
        assert_eq!(r, Ok(()));
        assert_eq!(m.delivered.get(), 1);
        let mut calls = 0;
        let r = deliver(retry, &m, start, || {
            calls += 1;
            async { answer(400) }
        })
        .await;
        assert_eq!((r, calls), (Err(Cause::Http(400)), 1));
    }
}
