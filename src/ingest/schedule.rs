//! The ingest schedule: a page every `interval` (or back to back), until cancelled, until the
//! first `max_users` users of the seed are in the log, or after `max_pages` pages of this run.

use super::{IngestError, Ingestor};
use crate::source::Source;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// After a failed page, wait at least this long before the next try, so that a persistent error
/// (a wrong URL, say) with a zero interval doesn't spin.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Schedule {
    /// Time between the starts of two fetches; zero means back to back.
    pub interval: Duration,
    /// Stop once the cursor has covered this many users of its seed. Counted on the stored
    /// cursor, not in this process, so a restarted run stops at the very same page.
    pub max_users: Option<u64>,
    /// Stop after this many pages fetched by this run (`ingest --once` is 1).
    pub max_pages: Option<u64>,
    /// Stop at the first failed page instead of trying again at the next tick (`ingest --once`).
    pub stop_on_error: bool,
}

#[derive(Debug, Default, Clone)]
pub struct ScheduleSummary {
    pub users: u64,
    pub pages: u64,
    pub failed_pages: u64,
}

/// Runs ingest until `cancel` fires or `max_users` is reached. Log errors end it with an error;
/// fetch errors are logged and retried at the next tick (unless `stop_on_error`).
pub async fn run_schedule<S: Source>(
    ingestor: &mut Ingestor<S>,
    schedule: &Schedule,
    cancel: &CancellationToken,
) -> Result<ScheduleSummary, IngestError> {
    let mut summary = ScheduleSummary::default();
    let mut ticker = (!schedule.interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(schedule.interval);
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        t
    });
    loop {
        let cursor = ingestor.cursor();
        let covered = (cursor.next_page - 1).saturating_mul(u64::from(cursor.page_size));
        if schedule.max_users.is_some_and(|max| covered >= max)
            || schedule.max_pages.is_some_and(|max| summary.pages >= max)
        {
            break;
        }
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
        }
        // Only the fetch is cancelled: a page once fetched is appended whole, so that the log,
        // the cursor and the readers' wake-up never disagree.
        let fetched = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            fetched = ingestor.fetch_page() => fetched,
        };
        let result = match fetched {
            Ok(Some(page)) => ingestor.append_page(page).await,
            Ok(None) => Ok(0),
            Err(err) => Err(err),
        };
        match result {
            Ok(users) => {
                summary.users += users;
                summary.pages += u64::from(users > 0);
            }
            Err(err @ IngestError::Log(_)) => return Err(err),
            Err(err) if schedule.stop_on_error => return Err(err),
            Err(err) => {
                summary.failed_pages += 1;
                tracing::error!(error = %err, "page not ingested; trying again at the next tick");
                let resume = Instant::now() + PAUSE_AFTER_FAILURE;
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep_until(resume) => {}
                }
            }
        }
    }
    Ok(summary)
}
