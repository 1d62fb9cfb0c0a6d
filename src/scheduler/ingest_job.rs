//! The production [`JobExecutor`]: an attempt is an ingest, from the configured source into the
//! configured log, under the log's ingest lock and the shared API budget.

use super::config::{JobConfig, RunSize};
use super::executor::JobExecutor;
use crate::config::Config;
use crate::ingest::writer_lock::{WriterLock, WriterLockError};
use crate::ingest::{Ingestor, Schedule, run_schedule};
use crate::log::{AppendSignal, Log};
use crate::pipeline::{build_source, lock_ingest, open_log};
use crate::telemetry::IngestTally;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How soon an attempt first looks again at a log another process is ingesting into; doubled
/// after each look, up to [`LOCK_RETRY_MAX`]. Each look is a lock file or, on PostgreSQL, a new
/// connection, so a run that waits long must not make one four times a second.
const LOCK_RETRY: Duration = Duration::from_millis(250);
const LOCK_RETRY_MAX: Duration = Duration::from_secs(5);

/// Ingests for scheduled runs. `signal` wakes an in-process processor (in `run`) at each page.
pub struct IngestJob {
    config: Config,
    signal: AppendSignal,
    /// Opened by the first attempt and kept for every later one: a run every minute should not
    /// open a PostgreSQL pool (or a SQLite connection thread) every minute. An attempt that
    /// fails to open it leaves it unset for the next one to try.
    log: tokio::sync::OnceCell<Log>,
    /// Held by the attempt of this process that holds (or is taking) the log's ingest lock:
    /// runs of this process's jobs queue here, woken in turn, and only another process's ingest
    /// is waited for by polling.
    turn: tokio::sync::Mutex<()>,
}

impl IngestJob {
    pub fn new(config: Config, signal: AppendSignal) -> Self {
        Self {
            config,
            signal,
            log: tokio::sync::OnceCell::new(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes the log's ingest lock, waiting while another ingest (another job's run, a `run`
    /// or `ingest` elsewhere) holds it: runs of different jobs share one log cursor, so they
    /// take turns.
    async fn lock(
        &self,
        job: &str,
        stop: &CancellationToken,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, WriterLock), String> {
        let stopped = || "stopped while waiting for the log's ingest lock".to_owned();
        let turn = tokio::select! {
            turn = self.turn.lock() => turn,
            () = stop.cancelled() => return Err(stopped()),
        };
        let mut told = false;
        let mut retry = LOCK_RETRY;
        loop {
            match lock_ingest(&self.config).await {
                Ok(lock) => return Ok((turn, lock)),
                Err(err) => {
                    let held = matches!(
                        err.downcast_ref::<WriterLockError>(),
                        Some(WriterLockError::Held { .. } | WriterLockError::HeldInPostgres)
                    );
                    if !held {
                        return Err(crate::error_chain::describe(err.as_ref()));
                    }
                    if !told {
                        tracing::info!(job, "waiting for the log's ingest lock: {err}");
                        told = true;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                () = stop.cancelled() => return Err(stopped()),
            }
            retry = (retry * 2).min(LOCK_RETRY_MAX);
        }
    }
}

#[async_trait::async_trait]
impl JobExecutor for IngestJob {
    async fn execute(
        &self,
        job: &JobConfig,
        run_id: &str,
        size: RunSize,
        stop: CancellationToken,
        tally: Arc<IngestTally>,
    ) -> Result<(), String> {
        let describe = |err: anyhow::Error| crate::error_chain::describe(err.as_ref());
        let _lock = self.lock(&job.name, &stop).await?;
        let log = self
            .log
            .get_or_try_init(|| open_log(&self.config))
            .await
            .map_err(describe)?;
        let source = build_source(&self.config, log).map_err(describe)?;
        let mut ingestor = Ingestor::new(
            source,
            Arc::clone(log),
            &self.config.page_settings(),
            run_id.to_owned(),
            self.signal.clone(),
        )
        .await
        .map_err(|e| crate::error_chain::describe(&e))?
        .with_tally(Arc::clone(&tally));
        let batch = u64::from(self.config.ingest.batch_size);
        let (max_pages, duration) = match size {
            // What earlier attempts of this run appended counts: a retry fetches the rest.
            RunSize::Users(users) => {
                let left = users.saturating_sub(tally.records());
                if left == 0 {
                    return Ok(());
                }
                (Some(left.div_ceil(batch)), None)
            }
            RunSize::Duration(duration) => (None, Some(duration)),
        };
        let schedule = Schedule {
            interval: self.config.fetch_interval(),
            max_users: None,
            max_pages,
            stop_on_error: true,
        };
        // A run sized by duration ends like a stopped one: the page in hand is appended.
        let until = stop.child_token();
        let timer = async {
            if let Some(duration) = duration {
                tokio::time::sleep(duration).await;
                until.cancel();
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            result = run_schedule(&mut ingestor, &schedule, &until) => result
                .map(drop)
                .map_err(|e| crate::error_chain::describe(&e)),
            () = timer => unreachable!("the timer never ends"),
        }
    }
}
