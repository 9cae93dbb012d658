//! The budget of new node ids per token (issue 12): a leaked role token made 20,000 node
//! ids in under 10 s and filled `max_nodes`, after which every real new node got 507.
//!
//! Each token may introduce `per_window` node ids the collector does not know per
//! `window`; one more is refused 429 with the seconds until its window ends. Reports from
//! known nodes never touch the budget. Fixed windows (not a sliding log) so the state per
//! token is two numbers, and at most [`MAX_TOKENS`] tokens are tracked (tokens are few:
//! one per role unless an operator issues more).

use std::collections::HashMap;

/// Tokens whose windows are tracked; past it, ended windows are dropped first, then all.
const MAX_TOKENS: usize = 1024;

/// Per token hash: its window's start (ms) and how many new ids it introduced in it.
#[derive(Debug, Default)]
pub struct NewNodeBudget {
    windows: HashMap<[u8; 32], (i64, usize)>,
}

impl NewNodeBudget {
    /// Takes one new node id from `token`'s budget at `now_ms`, or says how many seconds
    /// until its window ends.
    pub fn take(
        &mut self,
        token: [u8; 32],
        now_ms: i64,
        per_window: usize,
        window_ms: i64,
    ) -> Result<(), u64> {
        if self.windows.len() >= MAX_TOKENS && !self.windows.contains_key(&token) {
            self.windows
                .retain(|_, (start, _)| now_ms - *start < window_ms);
            if self.windows.len() >= MAX_TOKENS {
                self.windows.clear();
            }
        }
        let (start, used) = self.windows.entry(token).or_insert((now_ms, 0));
        if now_ms - *start >= window_ms || now_ms < *start {
            *start = now_ms;
            *used = 0;
        }
        if *used >= per_window {
            let left_ms = (*start + window_ms - now_ms).max(0);
            return Err((left_ms as u64).div_ceil(1000).max(1));
        }
        *used += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_budget_per_window_and_then_a_retry_after() {
        let mut b = NewNodeBudget::default();
        let (t1, t2) = ([1; 32], [2; 32]);
        for _ in 0..3 {
            assert_eq!(b.take(t1, 1_000, 3, 60_000), Ok(()));
        }
        assert_eq!(
            b.take(t1, 1_500, 3, 60_000),
            Err(60),
            "59.5 s left, rounded up"
        );
        assert_eq!(
            b.take(t2, 1_500, 3, 60_000),
            Ok(()),
            "budgets are per token"
        );
        assert_eq!(b.take(t1, 61_000, 3, 60_000), Ok(()), "a new window");
        // A clock that steps back starts a new window instead of locking the token out.
        assert_eq!(b.take(t2, 0, 1, 60_000), Ok(()));
    }

    #[test]
    fn tracked_tokens_are_bounded() {
        let mut b = NewNodeBudget::default();
        for i in 0..(MAX_TOKENS as u32 + 10) {
            let mut t = [0; 32];
            t[..4].copy_from_slice(&i.to_le_bytes());
            assert_eq!(b.take(t, 0, 1, 60_000), Ok(()));
        }
        assert!(b.windows.len() <= MAX_TOKENS);
    }
}
