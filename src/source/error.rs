//! What can go wrong fetching a page, split by what the client should do about it.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("rate limited by the API (HTTP 429){}", retry_after_text(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("server error: HTTP {status}")]
    Server { status: u16 },
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(String),
    /// The API's outage answer `{"error": "Uh oh, ..."}`, sometimes with status 200.
    #[error("API reported an error: {0}")]
    Api(String),
    /// Truncated, non-JSON, or JSON without `results`; nothing from such a body is kept.
    #[error("malformed response body: {0}")]
    Malformed(String),
    /// The body outgrew the cap: a full 5,000-user page is 10 to 20 MB, so this is a broken or
    /// hostile server. Retried like any malformed answer.
    #[error("response body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A 4xx other than 429: our request is wrong, so retrying cannot help.
    #[error("request rejected: HTTP {status}: {reason}")]
    Rejected { status: u16, reason: String },
    /// The shared API budget could not be read or charged (the log's database failed): no
    /// request is sent that the budget has not granted.
    #[error("API budget: {0}")]
    Budget(String),
    #[error("gave up after {attempts} attempts; last error: {last}")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<FetchError>,
    },
}

impl FetchError {
    /// How the request that failed this way ended, for `userstream_api_requests_total`; `None`
    /// for failures that sent no request (the budget) or summarise others.
    pub fn api_status(&self) -> Option<crate::telemetry::events::ApiStatus> {
        use crate::telemetry::events::ApiStatus;
        Some(match self {
            FetchError::RateLimited { .. } => ApiStatus::Code(429),
            FetchError::Server { status } | FetchError::Rejected { status, .. } => {
                ApiStatus::Code(*status)
            }
            FetchError::Timeout(_) => ApiStatus::Timeout,
            FetchError::Transport(_) => ApiStatus::Transport,
            // Answered, with a body that was not a page (often with status 200).
            FetchError::Api(_) | FetchError::Malformed(_) | FetchError::TooLarge { .. } => {
                ApiStatus::Code(200)
            }
            FetchError::Budget(_) | FetchError::GaveUp { .. } => return None,
        })
    }

    /// Whether another attempt of the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            FetchError::Rejected { .. } | FetchError::GaveUp { .. } | FetchError::Budget(_)
        )
    }

    /// A short, stable label for counting errors by kind: the `error_type` of the API metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::RateLimited { .. } => "rate_limited",
            FetchError::Server { .. } => "server_error",
            FetchError::Timeout(_) => "timeout",
            FetchError::Transport(_) => "transport",
            FetchError::Api(_) => "api_error",
            FetchError::Malformed(_) => "malformed",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Rejected { .. } => "rejected",
            FetchError::GaveUp { .. } => "gave_up",
            FetchError::Budget(_) => "budget",
        }
    }
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| format!(", retry after {d:?}"))
}
