//! Client settings, with defaults that respect randomuser.me's published limits.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The public API, version pinned so the record shape can't change under us.
pub const DEFAULT_URL: &str = "https://randomuser.me/api/1.4/";

/// The API allows about 20000 users per 5 minutes per IP; we stay 10% under it by default.
pub const DEFAULT_USERS_PER_WINDOW: u32 = 18_000;

/// The API's hard maximum of `results` per request.
pub const MAX_RESULTS: u32 = 5_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientConfig {
    pub url: String,
    /// Per request, including reading the body.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per page before giving up (the page is then retried on the next schedule tick).
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Longest `Retry-After` we honour; a larger one is capped so a bad header can't stall us.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// Users requested per `window`; 0 disables the budget (only for local servers).
    pub users_per_window: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            users_per_window: DEFAULT_USERS_PER_WINDOW,
            window: Duration::from_secs(300),
        }
    }
}
