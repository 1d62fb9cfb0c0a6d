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

pub use budget::WindowBudget;
pub use config::ClientConfig;

use super::page::{Page, parse_page};
use super::{FetchError, FetchRequest, Source};
use crate::telemetry::events::{ApiError, ApiRequest, ApiRetry, ApiStatus, InternalEvent};
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use std::time::Duration;

/// The largest response body accepted: four times a full 5,000-user page (10 to 20 MB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Talks to randomuser.me (or anything serving the same API, such as `userstream serve-api`).
pub struct RandomUserClient {
    http: reqwest::Client,
    config: ClientConfig,
    budget: WindowBudget,
}

impl RandomUserClient {
    pub fn new(config: ClientConfig) -> Result<Self, FetchError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("userstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(format!("building HTTP client: {e}")))?;
        let budget = WindowBudget::new(config.budget_per_window(), config.window);
        Ok(Self {
            http,
            config,
            budget,
        })
    }

    /// Keeps the API budget's spend in `log` (the raw log's database), shared by every process
    /// that uses it. Keyed by the API's host.
    pub fn with_shared_budget(mut self, log: crate::log::Log) -> Self {
        let host = self
            .config
            .host()
            .unwrap_or_else(|| self.config.url.clone());
        self.budget.share(log, host);
        self
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
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            return Err(FetchError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(FetchError::Server {
                status: status.as_u16(),
            });
        }
        let body = self.read_body(response).await?;
        if status.is_client_error() {
            return Err(FetchError::Rejected {
                status: status.as_u16(),
                reason: rejection_reason(&body),
            });
        }
        parse_page(&body)
    }

    /// Reads the body, refusing one over [`MAX_BODY_BYTES`] as soon as it is known to be: a server
    /// that never stops sending must not take the process's memory with it.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let too_large = FetchError::TooLarge {
            limit: MAX_BODY_BYTES,
        };
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
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

/// `Retry-After` as RFC 9110 allows it: delay seconds, or an HTTP date (a date already past means
/// "now"). Anything else is ignored and the usual backoff applies.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What a 4xx answer says, for the error message: the API's own `{"error": "..."}` text (capped),
/// or only the body's size. Never the raw body, which error messages would carry into log lines.
fn rejection_reason(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ApiError {
        error: String,
    }
    match serde_json::from_slice::<ApiError>(body) {
        Ok(ApiError { error }) => super::page::api_error_text(&error),
        Err(_) => format!("{} bytes of body", body.len()),
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
            self.budget
                .acquire(request.results)
                .await
                .map_err(|e| FetchError::Budget(e.to_string()))?;
            let err = match self.attempt(request).await {
                Ok(page) => {
                    ApiRequest {
                        status: ApiStatus::Code(200),
                    }
                    .emit();
                    if page.records.is_empty() {
                        ApiError {
                            error_type: "empty_page",
                        }
                        .emit();
                    }
                    return Ok(page);
                }
                Err(err) => err,
            };
            if let Some(status) = err.api_status() {
                ApiRequest { status }.emit();
            }
            ApiError {
                error_type: err.kind(),
            }
            .emit();
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
            ApiRetry {
                error_type: err.kind(),
                attempt,
                retry_in: delay,
                error: &err,
            }
            .emit();
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Tue, 24 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 10:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        // Already past: retry now, not never.
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }
}
