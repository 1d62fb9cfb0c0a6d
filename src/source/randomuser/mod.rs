//! The randomuser.me API client.
//!
//! Politeness and resilience live here, in one place, so every caller gets them:
//! * a sliding-window budget keeps requested users under the API's per-IP limit ([`budget`]);
//! * 429 waits for `Retry-After` (or backs off), 5xx/timeouts/transport errors, outage bodies with
//!   status 200 and malformed bodies are retried with capped exponential backoff and full jitter
//!   ([`backoff`]), a bounded number of times;
//! * a page is kept only if its whole body parsed ([`super::page`]).

pub mod backoff;
pub mod budget;
pub mod config;
pub mod stats;

pub use budget::WindowBudget;
pub use config::ClientConfig;
pub use stats::FetchStats;

use super::page::{Page, parse_page};
use super::{FetchError, FetchRequest, Source};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use std::sync::Arc;
use std::time::Duration;

/// Talks to randomuser.me (or anything serving the same API, such as `userstream serve-api`).
pub struct RandomUserClient {
    http: reqwest::Client,
    config: ClientConfig,
    budget: WindowBudget,
    stats: Arc<FetchStats>,
}

impl RandomUserClient {
    pub fn new(config: ClientConfig) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("userstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(format!("building HTTP client: {e}")))?;
        let budget = WindowBudget::new(config.users_per_window, config.window);
        Ok(Self {
            http,
            config,
            budget,
            stats: Arc::default(),
        })
    }

    /// Counters of requests and failures by kind, shared with whoever reports them.
    pub fn stats(&self) -> Arc<FetchStats> {
        Arc::clone(&self.stats)
    }

    /// One HTTP exchange, classified.
    async fn attempt(&self, request: &FetchRequest<'_>) -> Result<Page, FetchError> {
        let mut query = vec![
            ("results", request.results.to_string()),
            ("seed", request.seed.to_owned()),
            ("page", request.page.to_string()),
        ];
        if !request.nat.is_empty() {
            query.push(("nat", request.nat.join(",")));
        }
        let response = self
            .http
            .get(&self.config.url)
            .query(&query)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(FetchError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(FetchError::Server {
                status: status.as_u16(),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        if status.is_client_error() {
            return Err(FetchError::Rejected {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        }
        parse_page(&body)
    }

    fn transport_error(&self, err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            FetchError::Timeout(self.config.timeout)
        } else {
            // The source chain carries the useful part ("connection closed before message completed").
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            FetchError::Transport(text)
        }
    }
}

impl Source for RandomUserClient {
    fn key(&self) -> String {
        format!("randomuser:{}", self.config.url)
    }

    async fn fetch(&mut self, request: &FetchRequest<'_>) -> Result<Page, FetchError> {
        let mut attempt = 1;
        loop {
            // Every attempt is charged: the API counts users requested, not users received.
            self.budget.acquire(request.results).await;
            self.stats.record_request();
            let err = match self.attempt(request).await {
                Ok(page) => {
                    if page.records.is_empty() {
                        self.stats.record_empty_page();
                    }
                    return Ok(page);
                }
                Err(err) => err,
            };
            self.stats.record_error(&err);
            if !err.is_retryable() {
                return Err(err);
            }
            if attempt >= self.config.max_attempts {
                return Err(FetchError::GaveUp {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            let delay = match &err {
                FetchError::RateLimited {
                    retry_after: Some(wait),
                } => (*wait).min(self.config.max_retry_after),
                _ => {
                    backoff::full_jitter(self.config.backoff_base, self.config.backoff_max, attempt)
                }
            };
            tracing::warn!(error = %err, attempt, ?delay, "fetch failed, retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}
