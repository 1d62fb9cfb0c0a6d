//! The ingest schedule: a page every `interval` (or back to back), until cancelled, until the
//! first `max_users` users of the seed are in the log, or after `max_pages` pages of this run.

use super::{FetchedPage, IngestError, Ingestor};
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
    /// It ended at `max_users` or `max_pages`, rather than by `cancel`; with no page, the log
    /// already held everything `max_users` asks for.
    pub limit_reached: bool,
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
    // A page fetched while the one before it was appended (or why it could not be), taken as
    // the next fetch's result.
    let mut prefetched: Option<Result<Option<FetchedPage>, IngestError>> = None;
    loop {
        let cursor = ingestor.cursor();
        let page_size = u64::from(cursor.page_size);
        let covered = (cursor.next_page - 1).saturating_mul(page_size);
        if schedule.max_users.is_some_and(|max| covered >= max)
            || schedule.max_pages.is_some_and(|max| summary.pages >= max)
        {
            summary.limit_reached = true;
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
        let fetched = match prefetched.take() {
            Some(fetched) => fetched,
            None => tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                fetched = ingestor.fetch_page() => fetched,
            },
        };
        let result = match fetched {
            // Back to back, the next page is fetched while this one is appended, unless this one
            // is the last the schedule wants.
            Ok(Some(page)) if ticker.is_none() => {
                let last = schedule
                    .max_users
                    .is_some_and(|max| covered + page_size >= max)
                    || schedule
                        .max_pages
                        .is_some_and(|max| summary.pages + 1 >= max);
                if last {
                    ingestor.append_page(page).await
                } else {
                    let (appended, next) = ingestor.append_page_fetching_next(page, cancel).await;
                    prefetched = next;
                    appended
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::PageSettings;
    use crate::log::{AppendSignal, SqliteLog};
    use crate::source::{FetchError, FetchRequest, GeneratorSource, Page, Source};
    use std::sync::{Arc, Mutex};

    /// The generator, recording the pages asked for, and failing the ones in `failing`.
    struct Recorded {
        inner: GeneratorSource,
        asked: Arc<Mutex<Vec<u64>>>,
        failing: Vec<u64>,
    }

    impl Source for Recorded {
        fn key(&self) -> String {
            "recorded".into()
        }

        async fn fetch(&mut self, request: &FetchRequest<'_>) -> Result<Page, FetchError> {
            self.asked.lock().unwrap().push(request.page);
            if self.failing.contains(&request.page) {
                return Err(FetchError::Server { status: 503 });
            }
            self.inner.fetch(request).await
        }
    }

    async fn ingestor(
        dir: &std::path::Path,
        failing: Vec<u64>,
    ) -> (Ingestor<Recorded>, Arc<Mutex<Vec<u64>>>, crate::log::Log) {
        let log: crate::log::Log = Arc::new(SqliteLog::open(&dir.join("log.db")).unwrap());
        let asked = Arc::new(Mutex::new(Vec::new()));
        let source = Recorded {
            inner: GeneratorSource::new(),
            asked: Arc::clone(&asked),
            failing,
        };
        let settings = PageSettings {
            batch_size: 10,
            seed: Some("overlap".into()),
            nat: Vec::new(),
        };
        let ingestor = Ingestor::new(
            source,
            Arc::clone(&log),
            &settings,
            "run".into(),
            AppendSignal::new(),
        )
        .await
        .unwrap();
        (ingestor, asked, log)
    }

    fn back_to_back(max_users: Option<u64>, stop_on_error: bool) -> Schedule {
        Schedule {
            interval: Duration::ZERO,
            max_users,
            max_pages: None,
            stop_on_error,
        }
    }

    #[tokio::test]
    async fn back_to_back_pages_overlap_but_nothing_past_the_last_is_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ingestor, asked, log) = ingestor(dir.path(), vec![]).await;
        let summary = run_schedule(
            &mut ingestor,
            &back_to_back(Some(30), true),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!((summary.users, summary.pages), (30, 3));
        assert_eq!(
            *asked.lock().unwrap(),
            [1, 2, 3],
            "each page once, none beyond the third"
        );
        assert_eq!(log.last_seq().await.unwrap(), 30);
        assert_eq!(ingestor.cursor().next_page, 4);
    }

    #[tokio::test]
    async fn a_page_that_fails_while_the_one_before_is_appended_is_reported_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ingestor, asked, log) = ingestor(dir.path(), vec![2]).await;
        let err = run_schedule(
            &mut ingestor,
            &back_to_back(Some(50), true),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, IngestError::Fetch { page: 2, .. }), "{err}");
        // Page 1 is in the log with the cursor after it; page 2 is asked for again next time.
        assert_eq!(log.last_seq().await.unwrap(), 10);
        assert_eq!(ingestor.cursor().next_page, 2);
        assert_eq!(*asked.lock().unwrap(), [1, 2]);
    }

    #[tokio::test]
    async fn a_cancelled_run_appends_what_it_fetched_and_fetches_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ingestor, asked, log) = ingestor(dir.path(), vec![]).await;
        let cancel = CancellationToken::new();
        cancel.cancel();
        let summary = run_schedule(&mut ingestor, &back_to_back(None, true), &cancel)
            .await
            .unwrap();
        assert_eq!(summary.pages, 0);
        assert!(asked.lock().unwrap().is_empty());
        assert_eq!(log.last_seq().await.unwrap(), 0);
    }
}
