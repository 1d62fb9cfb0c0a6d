//! `userstream ingest`: fetch pages into the raw log only.

use super::{EXIT_SKIPPED, ExitWith, apply_source_args, runtime, shutdown_on_signal};
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
            build_source(&config, &log)?,
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
        let cancel = shutdown_on_signal();
        let summary = match run_schedule(&mut ingestor, &schedule, &cancel).await {
            Ok(summary) => summary,
            Err(err) => {
                let error = crate::error_chain::describe(&err);
                print_summary("failed", 0, 0, ingestor.cursor(), Some(&error));
                return Err(err.into());
            }
        };
        let nothing_to_do = summary.pages == 0 && summary.limit_reached;
        let status = if nothing_to_do {
            "skipped"
        } else if summary.limit_reached {
            "succeeded"
        } else {
            "stopped"
        };
        print_summary(status, summary.users, summary.pages, ingestor.cursor(), None);
        tracing::info!(
            users = summary.users,
            pages = summary.pages,
            seed = %ingestor.cursor().seed,
            next_page = ingestor.cursor().next_page,
            "ingested into {}",
            describe_backends(&config).0
        );
        if nothing_to_do {
            return Err(ExitWith {
                code: EXIT_SKIPPED,
                message: format!(
                    "nothing to do: the first {} users of seed {:?} are already in the log (ingest.max_users)",
                    config.ingest.max_users.unwrap_or_default(),
                    ingestor.cursor().seed
                ),
            }
            .into());
        }
        if !summary.limit_reached {
            anyhow::bail!("stopped by a signal after {} pages", summary.pages);
        }
        Ok(())
    })
}

/// The outcome as one JSON object on the last line of stdout, for whoever started the command
/// (Airflow keeps it as the task's XCom).
fn print_summary(
    status: &str,
    users: u64,
    pages: u64,
    cursor: &crate::log::IngestCursor,
    error: Option<&str>,
) {
    let summary = serde_json::json!({
        "status": status,
        "users": users,
        "pages": pages,
        "seed": cursor.seed,
        "next_page": cursor.next_page,
        "error": error,
    });
    println!("{summary}");
}
