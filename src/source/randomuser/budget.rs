//! The API's rate limit, kept on our side: at most `limit` users requested in any sliding
//! `window` (randomuser.me counts users requested per IP, about 20000 per 5 minutes).
//!
//! A token bucket would allow a full burst plus the refill inside one window, i.e. up to twice the
//! limit; the sliding window never exceeds it.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct WindowBudget {
    limit: u32,
    window: Duration,
    spent: VecDeque<(Instant, u32)>,
    in_window: u64,
}

impl WindowBudget {
    /// `limit == 0` means unlimited.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            spent: VecDeque::new(),
            in_window: 0,
        }
    }

    /// Waits until `users` more fit in the window, then charges them. A request larger than the
    /// whole limit waits for an empty window (config validation keeps that from happening).
    pub async fn acquire(&mut self, users: u32) {
        if self.limit == 0 {
            return;
        }
        loop {
            let now = Instant::now();
            while let Some(&(at, n)) = self.spent.front() {
                if now.duration_since(at) < self.window {
                    break;
                }
                self.spent.pop_front();
                self.in_window -= u64::from(n);
            }
            if self.in_window + u64::from(users) <= u64::from(self.limit) || self.spent.is_empty() {
                self.spent.push_back((now, users));
                self.in_window += u64::from(users);
                return;
            }
            let (oldest, _) = self.spent[0];
            let wait = self.window - now.duration_since(oldest);
            tracing::info!(
                ?wait,
                users,
                "API budget exhausted for this window, waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_limit_in_any_window() {
        let window = Duration::from_secs(300);
        let mut budget = WindowBudget::new(1000, window);
        let start = Instant::now();
        let mut grants = Vec::new();
        for _ in 0..10 {
            budget.acquire(300).await;
            grants.push(start.elapsed());
        }
        // Three fit at once; each later grant waits for an old one to leave the window.
        assert_eq!(&grants[..3], &[Duration::ZERO; 3]);
        for (i, at) in grants.iter().enumerate() {
            let in_window = grants[..=i].iter().filter(|g| **g + window > *at).count();
            assert!(
                in_window * 300 <= 1000,
                "grant {i} at {at:?}: {in_window} in window"
            );
        }
        assert_eq!(grants[3], window);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_limit_is_unlimited() {
        let mut budget = WindowBudget::new(0, Duration::from_secs(1));
        let start = Instant::now();
        for _ in 0..100 {
            budget.acquire(5000).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
