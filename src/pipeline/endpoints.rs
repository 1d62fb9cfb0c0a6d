//! What a long-running process serves over HTTP, and the readiness probes for the dependencies
//! its configuration names.

use super::{open_log, open_store};
use crate::config::Config;
use crate::http::{Probe, Readiness};
use anyhow::Context;
use axum::Router;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The embedded Schema Registry's router, over `DATA_DIR/registry.db`.
pub fn embedded_registry(config: &Config) -> anyhow::Result<Router> {
    config.ensure_data_dir()?;
    let path = config.data_dir.join("registry.db");
    let store = crate::registry::RegistryStore::open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(crate::registry::server::router(Arc::new(store)))
}

/// One probe per dependency `config` names: the log and the store always; on the Kafka path the
/// brokers (`bus`) and the registry; with `[[jobs]]`, the run history. Each probe holds its own
/// connection, opened here, so a probe never waits behind the pipeline's own work on a shared
/// one. An embedded (SQLite) dependency is taken away by removing or replacing its file: the
/// process would go on writing to a file no one opens again (see [`crate::sqlite::FileId`]).
pub async fn readiness(config: &Config) -> anyhow::Result<Readiness> {
    let log = open_log(config)
        .await
        .context("opening the log for readiness probes")?;
    let store = open_store(config)
        .await
        .context("opening the store for readiness probes")?;
    let mut probes = vec![
        Probe::new("log", move || {
            let log = Arc::clone(&log);
            async move {
                log.ready()
                    .await
                    .map_err(|e| crate::error_chain::describe(&e))
            }
        }),
        Probe::new("store", move || {
            let store = Arc::clone(&store);
            async move {
                store
                    .ready()
                    .await
                    .map_err(|e| crate::error_chain::describe(&e))
            }
        }),
    ];
    if config.kafka.brokers.is_some() {
        let options = config.kafka.clone();
        let consumer: Arc<rdkafka::consumer::BaseConsumer> = Arc::new(
            options
                .client_config(&[])
                .create()
                .context("creating the Kafka client for readiness probes")?,
        );
        probes.push(Probe::new("bus", move || {
            let (consumer, topic) = (Arc::clone(&consumer), options.topic.clone());
            blocking(move || {
                use rdkafka::consumer::Consumer;
                let metadata = consumer
                    .fetch_metadata(Some(&topic), crate::http::health::PROBE_TIMEOUT)
                    .map_err(|e| e.to_string())?;
                match metadata.topics().first().and_then(|t| t.error()) {
                    Some(err) => Err(format!("topic {topic}: {err:?}")),
                    None => Ok(()),
                }
            })
        }));
        let registry = Arc::new(crate::registry::RegistryClient::new(
            &config.kafka.registry_url,
        ));
        probes.push(Probe::new("registry", move || {
            let registry = Arc::clone(&registry);
            async move { registry.ping().await.map_err(|e| e.to_string()) }
        }));
    }
    if !config.jobs.is_empty() {
        let history = super::open_history(config)
            .await
            .context("opening the run history for readiness probes")?;
        probes.push(Probe::new("history", move || {
            let history = Arc::clone(&history);
            async move {
                history
                    .ready()
                    .await
                    .map_err(|e| crate::error_chain::describe(&e))
            }
        }));
    }
    Ok(Readiness::new(probes))
}

/// A blocking probe (librdkafka's metadata call) off the async workers.
async fn blocking(
    probe: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    tokio::task::spawn_blocking(probe)
        .await
        .unwrap_or_else(|e| Err(format!("probe failed: {e}")))
}

/// The HTTP server of a long-running process (`run`, `process --follow`), on `[http] listen`:
/// `/metrics`, `/healthz`, `/readyz` and any extra routes.
pub struct Endpoints {
    server: Option<JoinHandle<anyhow::Result<()>>>,
    done: CancellationToken,
}

impl Endpoints {
    /// Binds (so a taken port fails start-up) and serves `extra` (the embedded registry, when
    /// it shares the address) beside the endpoints; nothing when `listen = "off"`. A server that
    /// fails cancels `failed`, so the process drains and reports the server's error from
    /// [`stop`](Self::stop).
    pub async fn start(
        config: &Config,
        extra: Router,
        failed: CancellationToken,
    ) -> anyhow::Result<Self> {
        let done = CancellationToken::new();
        let Some(addr) = config.http.address()? else {
            return Ok(Self { server: None, done });
        };
        let router = crate::http::metrics::router()
            .merge(crate::http::health::router(Arc::new(
                readiness(config).await?,
            )))
            .merge(extra);
        let listener =
            crate::http::bind(addr, "the metrics and health endpoints ([http] listen)").await?;
        tracing::info!(
            "serving /metrics, /healthz and /readyz at http://{}/",
            listener.local_addr()?
        );
        let serving = crate::http::serve(listener, router, done.clone());
        let server = tokio::spawn(async move {
            let result = serving.await;
            if result.is_err() {
                failed.cancel();
            }
            result
        });
        Ok(Self {
            server: Some(server),
            done,
        })
    }

    /// Stops serving, letting requests in flight finish; the server's error if it failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.done.cancel();
        match self.server {
            Some(server) => server.await.context("the HTTP server panicked")?,
            None => Ok(()),
        }
    }
}
