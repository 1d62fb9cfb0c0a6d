//! `[registry]`: which Schema Registry the Kafka path uses. Unset `url` means our own, served by
//! `run` on `listen` (Confluent's port 8081 by default), so one machine needs no other service;
//! `url = "http://..."` names an external one (Confluent, Karapace) and nothing is served.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// An external registry's URL; when set, `run` serves none itself.
    pub url: Option<String>,
    /// Where `run` serves the embedded registry when `url` is unset.
    pub listen: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: None,
            listen: "127.0.0.1:8081".into(),
        }
    }
}

impl RegistryConfig {
    /// The URL clients use: the external one, or the embedded registry's address.
    pub fn client_url(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Whether `run` serves the embedded registry.
    pub fn serves(&self) -> bool {
        self.url.is_none()
    }
}
