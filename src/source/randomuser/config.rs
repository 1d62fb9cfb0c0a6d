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
    /// Users requested per `window`. Unset: [`DEFAULT_USERS_PER_WINDOW`] for the public API and
    /// no budget for any other server (a local `serve-api` is not randomuser.me's to protect).
    /// 0 disables the budget (refused for the public API).
    pub users_per_window: Option<u32>,
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
            users_per_window: None,
            window: Duration::from_secs(300),
        }
    }
}

impl ClientConfig {
    /// Whether `url` is the public randomuser.me API, whose per-IP limit we must honour. Matched by
    /// host, not by substring: `http://127.0.0.1/?randomuser.me` is not it, `api.randomuser.me`
    /// would be.
    pub fn is_public_api(&self) -> bool {
        self.host()
            .is_some_and(|host| host == "randomuser.me" || host.ends_with(".randomuser.me"))
    }

    /// The API's host, lower-cased and without a trailing dot: what the rate limit is per (and
    /// the key of its shared budget).
    pub fn host(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.url).ok()?;
        Some(url.host_str()?.trim_end_matches('.').to_ascii_lowercase())
    }

    /// Users per window the budget allows; 0 means no budget.
    pub fn budget_per_window(&self) -> u32 {
        match self.users_per_window {
            Some(users) => users,
            None if self.is_public_api() => DEFAULT_USERS_PER_WINDOW,
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: &str) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            ..ClientConfig::default()
        }
    }

    #[test]
    fn the_public_api_is_matched_by_host() {
        for public in [
            DEFAULT_URL,
            "http://RandomUser.me/api/",
            "https://api.randomuser.me./",
        ] {
            assert!(at(public).is_public_api(), "{public}");
            assert_eq!(at(public).budget_per_window(), DEFAULT_USERS_PER_WINDOW);
        }
        for local in [
            "http://127.0.0.1:8000/api/?mirror=randomuser.me",
            "http://randomuser.me.example.org/",
            "http://notrandomuser.me/",
        ] {
            assert!(!at(local).is_public_api(), "{local}");
            assert_eq!(at(local).budget_per_window(), 0, "{local}");
        }
        let asked = ClientConfig {
            users_per_window: Some(100),
            ..at("http://127.0.0.1:8000/")
        };
        assert_eq!(asked.budget_per_window(), 100);
    }
}
