//! Scheduled ingest inside a process (`run`, `jobs schedule`, `jobs trigger`): the configured
//! jobs, the run history, and the scheduler and `/jobs` routes built on them.

use super::open_history;
use crate::config::Config;
use crate::log::AppendSignal;
use crate::scheduler::ingest_job::IngestJob;
use crate::scheduler::{Clock, History, Job, OnShutdown, RunContext, Scheduler, process_owner};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The configured jobs and their history, opened once per process.
pub struct Jobs {
    pub jobs: Vec<Job>,
    pub history: History,
    /// Wakes this process's scheduler when a run is triggered over HTTP.
    pub wake: Arc<Notify>,
    owner: String,
}

impl Jobs {
    /// `None` when the configuration has no `[[jobs]]`.
    pub async fn open(config: &Config) -> anyhow::Result<Option<Self>> {
        if config.jobs.is_empty() {
            return Ok(None);
        }
        let jobs = config
            .jobs
            .iter()
            .cloned()
            .map(Job::new)
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(Self {
            jobs,
            history: open_history(config).await?,
            wake: Arc::new(Notify::new()),
            owner: process_owner(),
        }))
    }

    pub fn find(&self, name: &str) -> anyhow::Result<&Job> {
        Job::find(&self.jobs, name)
    }

    /// `/jobs` for the process's HTTP server, its triggers guarded as `[http]` says.
    pub fn router(&self, http: &crate::http::HttpConfig) -> anyhow::Result<axum::Router> {
        let router = crate::scheduler::http::router(
            self.jobs.clone(),
            Arc::clone(&self.history),
            Arc::clone(&self.wake),
        );
        Ok(crate::http::auth::guard_writes(
            router,
            crate::http::auth::WriteAccess::new(http)?,
        ))
    }

    /// How this process runs jobs: ingesting into the configured log, waking `signal`'s readers.
    pub fn context(
        &self,
        config: &Config,
        signal: AppendSignal,
        shutdown: CancellationToken,
        on_shutdown: OnShutdown,
    ) -> RunContext {
        RunContext {
            history: Arc::clone(&self.history),
            executor: Arc::new(IngestJob::new(config.clone(), signal)),
            clock: Clock::System,
            owner: self.owner.clone(),
            lease: config.scheduler.lease,
            shutdown,
            on_shutdown,
        }
    }

    /// The scheduler of this process; a shutdown requeues its runs for the next start.
    pub fn scheduler(
        &self,
        config: &Config,
        signal: AppendSignal,
        shutdown: CancellationToken,
    ) -> Scheduler {
        Scheduler::new(
            self.jobs.clone(),
            self.context(config, signal, shutdown, OnShutdown::Requeue),
            config.scheduler.poll_interval,
            Arc::clone(&self.wake),
        )
    }
}
