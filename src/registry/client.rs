//! A registry client for our own use: register the value schema once, resolve writer schemas
//! by id with a cache (ids are immutable, so a cached schema never goes stale).

use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a registry call failed, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Unreachable, timed out, or a 5xx: the registry may answer in a moment. A consumer backs
    /// off and retries; it must not dead-letter good data over a registry restart.
    #[error("schema registry at {url} is unavailable: {message}")]
    Unavailable { url: String, message: String },
    /// The registry answered that no schema has this id (40403): the one answer that makes a
    /// message poison rather than the consumer's problem.
    #[error("schema registry at {url}: schema {id} not found")]
    NotFound { url: String, id: u32 },
    /// Any other refusal (401/403, a 404 from a wrong URL, a 200 that is not JSON, an invalid
    /// schema): no retry helps and no message is to blame, so the caller stops with it.
    #[error("schema registry at {url}: {message}")]
    Http {
        url: String,
        /// Confluent's `error_code`, when the answer had one.
        code: Option<u64>,
        message: String,
    },
    #[error("schema registry returned an invalid schema for id {id}: {message}")]
    BadSchema { id: u32, message: String },
}

impl ClientError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. })
    }
}

/// Longest wait for one registry call, connection included: a registry that hangs is an
/// unavailable one, not a reason to hang a consumer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RegistryClient {
    http: reqwest::Client,
    url: String,
    cache: Mutex<HashMap<u32, Arc<Schema>>>,
}

impl RegistryClient {
    pub fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .connect_timeout(CALL_TIMEOUT)
                .build()
                .expect("a client with timeouts builds"),
            url: url.trim_end_matches('/').to_owned(),
            cache: Mutex::default(),
        }
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, ClientError> {
        let unavailable = |message: String| ClientError::Unavailable {
            url: self.url.clone(),
            message,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(crate::error_chain::describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(crate::error_chain::describe(&e)))?;
        // 408 and 429 say "not now", like a 5xx.
        if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
            return Err(unavailable(format!("HTTP {status}")));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ClientError::Http {
                url: self.url.clone(),
                code: None,
                message: format!("HTTP {status}: not JSON: {e}"),
            })?;
        if !status.is_success() {
            return Err(ClientError::Http {
                url: self.url.clone(),
                code: json["error_code"].as_u64(),
                message: format!("HTTP {status}: {json}"),
            });
        }
        Ok(json)
    }

    /// Registers `schema` under `subject`; returns the schema id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, ClientError> {
        let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" });
        let json = self
            .call(
                self.http
                    .post(format!("{}/subjects/{subject}/versions", self.url))
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .body(body.to_string()),
            )
            .await?;
        json["id"]
            .as_u64()
            .map(|id| id as u32)
            .ok_or_else(|| ClientError::Http {
                url: self.url.clone(),
                code: None,
                message: format!("no id in {json}"),
            })
    }

    /// Whether the registry answers a cheap read (its subjects): the readiness probe.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(self.http.get(format!("{}/subjects", self.url)))
            .await
            .map(drop)
    }

    /// The writer schema with this id, fetched once.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, ClientError> {
        if let Some(schema) = self.cache.lock().expect("cache lock").get(&id) {
            return Ok(Arc::clone(schema));
        }
        let json = self
            .call(self.http.get(format!("{}/schemas/ids/{id}", self.url)))
            .await
            .map_err(|err| match err {
                ClientError::Http {
                    url,
                    code: Some(40403),
                    ..
                } => ClientError::NotFound { url, id },
                other => other,
            })?;
        let text = json["schema"].as_str().unwrap_or_default();
        let schema = Arc::new(Schema::parse_str(text).map_err(|e| ClientError::BadSchema {
            id,
            message: e.to_string(),
        })?);
        self.cache
            .lock()
            .expect("cache lock")
            .insert(id, Arc::clone(&schema));
        Ok(schema)
    }
}
