//! `userstream run`: the whole pipeline until Ctrl-C (or `--max-users`).

use super::{apply_source_args, runtime, shutdown_on_signal};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::pipeline::endpoints::Endpoints;
use crate::pipeline::run_pipeline_with;

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
        // The embedded registry joins the shared listener when it is given the same address.
        let mut extra = axum::Router::new();
        if config.kafka.brokers.is_some()
            && config.kafka.serve_registry
            && config.registry.listen == config.http.listen
        {
            extra = crate::pipeline::endpoints::embedded_registry(&config)?;
            config.kafka.serve_registry = false;
        }
        let jobs = crate::pipeline::jobs::Jobs::open(&config).await?;
        if let Some(jobs) = &jobs {
            extra = extra.merge(jobs.router(&config.http)?);
        }
        let endpoints = Endpoints::start(&config, extra, cancel.clone()).await?;
        let summary = run_pipeline_with(&config, cancel, true, jobs.as_ref()).await;
        endpoints.stop().await?;
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
