//! Counters of what the client saw, so failures are visible even when retries hide them.

use super::super::FetchError;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct FetchStats {
    pub requests: AtomicU64,
    pub empty_pages: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub transport_errors: AtomicU64,
    pub api_errors: AtomicU64,
    pub malformed: AtomicU64,
    pub rejected: AtomicU64,
}

impl FetchStats {
    pub fn record_request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub fn record_empty_page(&self) {
        self.empty_pages.fetch_add(1, Relaxed);
    }

    pub fn record_error(&self, err: &FetchError) {
        let counter = match err {
            FetchError::RateLimited { .. } => &self.rate_limited,
            FetchError::Server { .. } => &self.server_errors,
            FetchError::Timeout(_) => &self.timeouts,
            FetchError::Transport(_) => &self.transport_errors,
            FetchError::Api(_) => &self.api_errors,
            FetchError::Malformed(_) | FetchError::TooLarge { .. } => &self.malformed,
            FetchError::Rejected { .. } => &self.rejected,
            FetchError::GaveUp { .. } | FetchError::Budget(_) => return,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Total failed attempts of every kind.
    pub fn errors(&self) -> u64 {
        [
            &self.rate_limited,
            &self.server_errors,
            &self.timeouts,
            &self.transport_errors,
            &self.api_errors,
            &self.malformed,
            &self.rejected,
        ]
        .iter()
        .map(|c| c.load(Relaxed))
        .sum()
    }
}
