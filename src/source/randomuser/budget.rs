//! The API's rate limit, kept on our side: at most `limit` users requested in any sliding
//! `window` (randomuser.me counts users requested per IP, about 20000 per 5 minutes).
//!
//! A token bucket would allow a full burst plus the refill inside one window, i.e. up to twice the
//! limit; the sliding window never exceeds it.
//!
//! The limit is per IP, not per process, so the spend is kept in the raw log's database when the
//! client is given one ([`WindowBudget::shared`]): every process using that log (a crash-looping
//! `run`, a scheduler's `ingest --once`, two processes at once) draws on one budget, and a
//! restart does not refill it. Without a log (tests, a bare client) it is kept in memory.

use crate::log::{Log, LogError};
use crate::telemetry::events::{ApiBudgetRemaining, InternalEvent};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

pub struct WindowBudget {
    limit: u32,
    window: Duration,
    spent: VecDeque<(Instant, u32)>,
    in_window: u64,
    /// The shared ledger and the budget's key in it (the API's host).
    ledger: Option<(Log, String)>,
}

impl std::fmt::Debug for WindowBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowBudget")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("shared", &self.ledger.as_ref().map(|(_, key)| key))
            .finish()
    }
}

impl WindowBudget {
    /// `limit == 0` means unlimited.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            spent: VecDeque::new(),
            in_window: 0,
            ledger: None,
        }
    }

    /// From now on keeps the spend in `log` under `key`, shared with every process using that
    /// log.
    pub fn share(&mut self, log: Log, key: String) {
        self.ledger = Some((log, key));
    }

    /// Waits until `users` more fit in the window, then charges them. A request larger than the
    /// whole limit waits for an empty window (config validation keeps that from happening).
    pub async fn acquire(&mut self, users: u32) -> Result<(), LogError> {
        if self.limit == 0 {
            return Ok(());
        }
        if let Some((log, key)) = &self.ledger {
            loop {
                let (limit, window) = (self.limit, self.window);
                let wait = log.spend_budget(key, users, limit, window).await?;
                let Some(wait) = wait else { return Ok(()) };
                tracing::info!(?wait, users, budget = %key, "API budget exhausted for this window (shared through the log), waiting");
                tokio::time::sleep(wait).await;
            }
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
                ApiBudgetRemaining {
                    users: u64::from(self.limit).saturating_sub(self.in_window),
                }
                .emit();
                return Ok(());
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

    /// Two processes' budgets on one log, and a restart: one spend, one limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_spend_is_shared_through_the_log_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let open = || std::sync::Arc::new(crate::log::SqliteLog::open(&path).unwrap()) as Log;
        let window = Duration::from_secs(300);
        let mut first = WindowBudget::new(1000, window);
        first.share(open(), "randomuser.me".into());
        first.acquire(600).await.unwrap();
        // Another process, or this one restarted: 600 more do not fit for about 5 minutes.
        let ledger = open();
        let wait = ledger
            .spend_budget("randomuser.me", 600, 1000, window)
            .await
            .unwrap()
            .expect("the window is spent");
        assert!(
            wait > Duration::from_secs(290) && wait <= window,
            "{wait:?}"
        );
        // What does fit is granted, and counts for everyone.
        assert_eq!(
            ledger
                .spend_budget("randomuser.me", 400, 1000, window)
                .await
                .unwrap(),
            None
        );
        assert!(
            ledger
                .spend_budget("randomuser.me", 1, 1000, window)
                .await
                .unwrap()
                .is_some()
        );
        // Another API's budget is its own.
        assert_eq!(
            ledger
                .spend_budget("example.org", 1000, 1000, window)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_exceeds_the_limit_in_any_window() {
        let window = Duration::from_secs(300);
        let mut budget = WindowBudget::new(1000, window);
        let start = Instant::now();
        let mut grants = Vec::new();
        for _ in 0..10 {
            budget.acquire(300).await.unwrap();
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
            budget.acquire(5000).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
