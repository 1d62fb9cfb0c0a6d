//! `userstream run`: the whole pipeline until Ctrl-C (or `--max-users`).

use super::{apply_source_args, runtime, shutdown_on_signal};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::pipeline::run_pipeline;
use anyhow::Context;

pub fn execute(mut config: Config, args: RunArgs) -> anyhow::Result<()> {
    apply_source_args(&mut config, &args.source);
    if let Some(interval) = args.interval {
        config.ingest.interval = interval;
        config.ingest.rate = None;
    }
    if let Some(rate) = args.rate {
        config.ingest.rate = Some(rate);
    }
    config.validate()?;
    runtime()?.block_on(async {
        let cancel = shutdown_on_signal();
        let http_done = tokio_util::sync::CancellationToken::new();
        // The embedded registry joins the shared listener when it is given the same address.
        let mut extra = axum::Router::new();
        if config.kafka.brokers.is_some()
            && config.kafka.serve_registry
            && config.registry.listen == config.http.listen
        {
            extra = crate::pipeline::endpoints::embedded_registry(&config)?;
            config.kafka.serve_registry = false;
        }
        let server = crate::pipeline::endpoints::serve(&config, extra, http_done.clone())
            .await?
            .map(|server| {
                // A server that fails ends the run (it drains first), with the server's error.
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    let result = server.await;
                    if result.is_err() {
                        cancel.cancel();
                    }
                    result
                })
            });
        let summary = run_pipeline(&config, cancel, true).await;
        http_done.cancel();
        if let Some(server) = server {
            server.await.context("the HTTP server panicked")??;
        }
        let summary = summary?;
        tracing::info!(
            fetched = summary.ingest.users,
            processed = summary.process.records,
            stored = summary.process.rows,
            dead_lettered = summary.process.dead_letters,
            failed_pages = summary.ingest.failed_pages,
            log_position = summary.process.position,
            elapsed = ?summary.elapsed,
            "pipeline stopped"
        );
        Ok(())
    })
}
