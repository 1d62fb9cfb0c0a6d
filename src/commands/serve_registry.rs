//! `userstream serve-registry`: see [`crate::registry::server`].

use super::{runtime, shutdown_on_signal};
use crate::cli::ServeRegistryArgs;
use crate::config::Config;

pub fn execute(config: Config, args: ServeRegistryArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let router = crate::pipeline::endpoints::embedded_registry(&config)?;
        let listener = crate::http::bind(args.addr, "serve-registry").await?;
        tracing::info!(
            "serving a Confluent-compatible schema registry at http://{}/",
            listener.local_addr()?
        );
        crate::http::serve(listener, router, shutdown_on_signal()).await
    })
}
