//! `userstream serve-registry`: see [`crate::registry::server`].

use super::{runtime, shutdown_on_signal};
use crate::cli::ServeRegistryArgs;
use crate::config::Config;
use crate::registry::{RegistryStore, server};
use anyhow::Context;
use std::sync::Arc;

pub fn execute(config: Config, args: ServeRegistryArgs) -> anyhow::Result<()> {
    config.ensure_data_dir()?;
    let path = config.data_dir.join("registry.db");
    let store =
        RegistryStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("binding serve-registry to {}", args.addr))?;
        tracing::info!(
            "serving a Confluent-compatible schema registry at http://{}/",
            listener.local_addr()?
        );
        let cancel = shutdown_on_signal();
        axum::serve(listener, server::router(Arc::new(store)))
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await?;
        Ok(())
    })
}
