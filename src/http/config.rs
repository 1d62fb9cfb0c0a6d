//! `[http]`: where a long-running command (`run`, `process --follow`) serves its HTTP endpoints.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` for `/metrics`, `/healthz`, `/readyz` (and, when `[registry] listen` is the
    /// same address, the embedded registry). Loopback by default: metrics name hosts and
    /// topics, which are nobody else's business until an operator opens them up. Port 0 takes
    /// a free port (logged). `"off"` serves nothing.
    pub listen: String,
    /// The bearer token a request that changes state (`POST /jobs/NAME/trigger`) must send.
    /// Unset, such requests are served on a loopback `listen` only (see [`super::auth`]). Best
    /// given as `USERSTREAM_HTTP__TOKEN` rather than written into a file.
    pub token: Option<super::auth::Token>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            // Prometheus' registered default port for exporters of this kind is 9464.
            listen: "127.0.0.1:9464".into(),
            token: None,
        }
    }
}

impl HttpConfig {
    /// The address to serve on, `None` when turned off; an error names the key.
    pub fn address(&self) -> anyhow::Result<Option<std::net::SocketAddr>> {
        if self.listen == "off" {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|_| {
            anyhow::anyhow!(
                "http.listen = {:?} is not an address like 127.0.0.1:9464 (or \"off\")",
                self.listen
            )
        })
    }
}
