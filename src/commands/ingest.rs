//! `userstream ingest`: fetch pages into the raw log only.

use super::{apply_source_args, runtime, shutdown_on_signal};
use crate::cli::IngestArgs;
use crate::config::Config;
use crate::ingest::{Ingestor, Schedule, run_schedule};
use crate::log::AppendSignal;
use crate::pipeline::{build_source, describe_backends, lock_ingest, open_log};
use std::time::Duration;

pub fn execute(mut config: Config, args: IngestArgs) -> anyhow::Result<()> {
    apply_source_args(&mut config, &args.source);
    // One page unless a total was asked for; --once insists on one page.
    let max_pages = (args.once || config.ingest.max_users.is_none()).then_some(1);
    config.validate()?;
    runtime()?.block_on(async {
        let _ingest_lock = lock_ingest(&config).await?;
        let log = open_log(&config).await?;
        let mut ingestor = Ingestor::new(
            build_source(&config).await?,
            log,
            &config.page_settings(),
            uuid::Uuid::new_v4().to_string(),
            AppendSignal::new(),
        )
        .await?;
        let schedule = Schedule {
            interval: Duration::ZERO,
            max_users: config.ingest.max_users,
            max_pages,
            stop_on_error: true,
        };
        let summary = run_schedule(&mut ingestor, &schedule, &shutdown_on_signal()).await?;
        tracing::info!(
            users = summary.users,
            pages = summary.pages,
            seed = %ingestor.cursor().seed,
            next_page = ingestor.cursor().next_page,
            "ingested into {}",
            describe_backends(&config).0
        );
        Ok(())
    })
}
