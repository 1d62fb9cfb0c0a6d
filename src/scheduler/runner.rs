//! One claimed run, to its end: attempts with backoff, the timeout, the lease's heartbeat, and
//! the outcome written to the run history.
//!
//! Stopping is always graceful first: a timeout, a shutdown or a lost lease fires the attempt's
//! `stop` token, and the executor stops fetching but appends the page in hand, so the log, its
//! cursor and the run's counts agree. Only an attempt that ignores `stop` for [`STOP_GRACE`]
//! (a hung database) is abandoned outright.

use super::Clock;
use super::config::{JobConfig, RunSize};
use super::executor::JobExecutor;
use super::history::{History, Lease, RunRecord, RunStatus};
use super::scheduler::Job;
use crate::telemetry::events::{InternalEvent, JobRunStatus};
use crate::telemetry::tally::{ApiErrorTally, IngestTally, RUN_API_ERRORS};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long an attempt told to stop may take to wind down before it is abandoned.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// What a shutdown (Ctrl-C, SIGTERM) makes of a run in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnShutdown {
    /// Back to queued, resumed by the next scheduler to start (a scheduler's own runs).
    Requeue,
    /// Failed: whoever started it stopped it (a foreground `jobs trigger`, an Airflow task).
    Fail,
}

/// Everything a run needs besides the run itself.
#[derive(Clone)]
pub struct RunContext {
    pub history: History,
    pub executor: Arc<dyn JobExecutor>,
    pub clock: Clock,
    /// This process's name in leases: host, pid and a random suffix.
    pub owner: String,
    pub lease: Duration,
    pub shutdown: CancellationToken,
    pub on_shutdown: OnShutdown,
}

impl RunContext {
    pub fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            until: self.clock.now() + chrono::Duration::from_std(self.lease).unwrap_or_default(),
        }
    }
}

/// Why an attempt was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Shutdown,
    LeaseLost,
}

/// Runs `run` (claimed by this process, attempt already counted) to its end and returns it as
/// last written. `None`: the lease was lost to another process, which now owns the run.
pub async fn execute_run(ctx: &RunContext, job: &Job, mut run: RunRecord) -> Option<RunRecord> {
    // A manual run may ask for another number of users than the job's.
    let size = run.users_requested.map_or(job.size, RunSize::Users);
    let max_attempts = job.max_attempts();
    // A run handed back by a shutdown resumes with what its earlier attempts did.
    let tally = Arc::new(IngestTally::resumed(run.users_fetched, run.users_published));
    let api_errors: ApiErrorTally = Arc::new(Mutex::new(run.api_errors.clone()));
    JobRunStatus::from(&run).emit();
    loop {
        let (result, stopped) =
            attempt(ctx, &job.config, &mut run, size, &tally, &api_errors).await;
        snapshot(&mut run, &tally, &api_errors);
        let now = ctx.clock.now();
        let complete = matches!(size, RunSize::Users(users) if run.users_published >= users);
        match (stopped, result) {
            (Some(Stop::LeaseLost), _) => return None,
            // Told to stop just as its last page was appended: it is done, not interrupted.
            (Some(_), Ok(())) if complete => {
                run.status = RunStatus::Succeeded;
                run.error = None;
            }
            (Some(Stop::TimedOut), _) => {
                run.status = RunStatus::TimedOut;
                run.error = Some(format!(
                    "stopped after its timeout of {}",
                    humantime::format_duration(job.config.timeout)
                ));
            }
            (Some(Stop::Shutdown), _) => shut_down(ctx, &mut run, true),
            (None, Ok(())) => {
                run.status = RunStatus::Succeeded;
                run.error = None;
            }
            (None, Err(error)) if run.attempt < max_attempts => {
                let backoff = job
                    .config
                    .retry_backoff
                    .saturating_mul(1 << (run.attempt - 1).min(16));
                tracing::warn!(job = %job.config.name, run_id = %run.run_id, attempt = run.attempt, retry_in = ?backoff, %error, "job run attempt failed; retrying");
                run.error = Some(error);
                if write(ctx, &run).await == Ok(false) {
                    return None;
                }
                wait_backoff(ctx, &run, backoff).await?;
                if !ctx.shutdown.is_cancelled() {
                    // Counted in the history before it starts, so a crash during it cannot
                    // give the run more attempts than its retries.
                    run.attempt += 1;
                    if write(ctx, &run).await == Ok(false) {
                        return None;
                    }
                    continue;
                }
                shut_down(ctx, &mut run, false);
            }
            (None, Err(error)) => {
                run.status = RunStatus::Failed;
                run.error = Some(error);
            }
        }
        if run.status.is_final() {
            run.ended_at = Some(now);
        }
        return finish(ctx, run).await;
    }
}

/// One attempt, with its timeout and heartbeat; the attempt's result and why it was told to
/// stop, if it was.
async fn attempt(
    ctx: &RunContext,
    job: &JobConfig,
    run: &mut RunRecord,
    size: RunSize,
    tally: &Arc<IngestTally>,
    api_errors: &ApiErrorTally,
) -> (Result<(), String>, Option<Stop>) {
    let stop = CancellationToken::new();
    let run_id = run.run_id.clone();
    let execution = RUN_API_ERRORS.scope(
        Arc::clone(api_errors),
        ctx.executor
            .execute(job, &run_id, size, stop.clone(), Arc::clone(tally)),
    );
    tokio::pin!(execution);
    let deadline = Instant::now() + job.timeout;
    let mut heartbeat = Heartbeat::start(ctx).await;
    let mut stopped: Option<(Stop, Instant)> = None;
    let tell = |why: Stop, stopped: &mut Option<(Stop, Instant)>| {
        if stopped.is_none() {
            *stopped = Some((why, Instant::now() + STOP_GRACE));
            stop.cancel();
        }
    };
    let result = loop {
        let give_up = stopped.map(|(_, at)| at);
        tokio::select! {
            result = &mut execution => break result,
            () = tokio::time::sleep_until(deadline), if stopped.is_none() => tell(Stop::TimedOut, &mut stopped),
            () = ctx.shutdown.cancelled(), if stopped.is_none() => tell(Stop::Shutdown, &mut stopped),
            _ = heartbeat.tick() => {
                snapshot(run, tally, api_errors);
                if !heartbeat.beat(ctx, run).await {
                    tell(Stop::LeaseLost, &mut stopped);
                }
            }
            () = async { tokio::time::sleep_until(give_up.unwrap_or_else(Instant::now)).await }, if give_up.is_some() => {
                tracing::error!(job = %job.name, run_id = %run.run_id, "the run did not stop within {STOP_GRACE:?} of being told to; abandoning it");
                break Err(format!("did not stop within {STOP_GRACE:?} of being told to"));
            }
        }
    };
    (result, stopped.map(|(why, _)| why))
}

/// What a shutdown makes of `run`, by the context's policy. `undo_attempt`: the attempt it
/// interrupted is not held against the run when it resumes.
fn shut_down(ctx: &RunContext, run: &mut RunRecord, undo_attempt: bool) {
    match ctx.on_shutdown {
        OnShutdown::Requeue => {
            run.status = RunStatus::Queued;
            if undo_attempt {
                run.attempt -= 1;
            }
            run.error = Some("interrupted by a shutdown; resumes at the next start".into());
        }
        OnShutdown::Fail => {
            run.status = RunStatus::Failed;
            run.error = Some("stopped by a signal (SIGTERM or Ctrl-C)".into());
        }
    }
}

/// Waits out a retry's backoff (or until a shutdown), renewing the lease. `None`: the lease must
/// be given up ([`Heartbeat::beat`]).
async fn wait_backoff(ctx: &RunContext, run: &RunRecord, backoff: Duration) -> Option<()> {
    let until = Instant::now() + backoff;
    let mut heartbeat = Heartbeat::start(ctx).await;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Some(()),
            () = ctx.shutdown.cancelled() => return Some(()),
            _ = heartbeat.tick() => if !heartbeat.beat(ctx, run).await {
                return None;
            },
        }
    }
}

/// Renews a run's lease every third of it, and says when the run must be given up.
struct Heartbeat {
    ticks: tokio::time::Interval,
    /// When the lease was last set (by the claim, or a write that held).
    renewed: Instant,
}

impl Heartbeat {
    /// Starts just after the lease was set: the first beat is a third of the lease away.
    async fn start(ctx: &RunContext) -> Self {
        let mut ticks = tokio::time::interval(ctx.lease / 3);
        ticks.tick().await;
        Self {
            ticks,
            renewed: Instant::now(),
        }
    }

    async fn tick(&mut self) {
        self.ticks.tick().await;
    }

    /// Writes `run` to renew the lease. `false`: the run must stop, because the lease went to
    /// another process, or could not be renewed for two thirds of it (another process may claim
    /// the run once it lapses).
    async fn beat(&mut self, ctx: &RunContext, run: &RunRecord) -> bool {
        match write(ctx, run).await {
            Ok(true) => {
                self.renewed = Instant::now();
                true
            }
            Ok(false) => {
                tracing::error!(job = %run.job, run_id = %run.run_id, "lost this run's lease to another process; stopping it");
                false
            }
            Err(why) if self.renewed.elapsed() >= ctx.lease * 2 / 3 => {
                tracing::error!(job = %run.job, run_id = %run.run_id, error = %why, "could not renew this run's lease for two thirds of it; stopping the run before another process may take it over");
                false
            }
            Err(why) => {
                tracing::warn!(job = %run.job, run_id = %run.run_id, error = %why, "could not renew a run's lease; trying again at the next beat");
                true
            }
        }
    }
}

/// Writes `run` under this process's lease: whether the lease still held, or why the history
/// did not answer (within a third of the lease: a history that hangs must not hold up the
/// heartbeat past the point where another process may take the run over).
async fn write(ctx: &RunContext, run: &RunRecord) -> Result<bool, String> {
    let limit = ctx.lease / 3;
    let lease = ctx.lease();
    let update = ctx.history.update(run, &lease, ctx.clock.now());
    match tokio::time::timeout(limit, update).await {
        Ok(Ok(held)) => Ok(held),
        Ok(Err(err)) => Err(crate::error_chain::describe(&err)),
        Err(_) => Err(format!("the run history did not answer within {limit:?}")),
    }
}

fn snapshot(run: &mut RunRecord, tally: &IngestTally, api_errors: &ApiErrorTally) {
    run.users_fetched = tally.fetched();
    run.users_published = tally.records();
    run.api_errors = api_errors
        .lock()
        .expect("the tally is only counted into")
        .clone();
}

/// Writes the outcome; retried for a while, since a run that ended but is not recorded would
/// be run again once its lease lapses.
async fn finish(ctx: &RunContext, run: RunRecord) -> Option<RunRecord> {
    let mut wait = Duration::from_millis(200);
    let mut failed_before = false;
    for _ in 0..10 {
        match write(ctx, &run).await {
            Ok(true) => {
                JobRunStatus::from(&run).emit();
                return Some(run);
            }
            // A write that failed may have committed all the same (the answer was lost): then
            // the stored run is ours, with this outcome.
            Ok(false) if failed_before => {
                let stored = ctx.history.get(&run.run_id).await.ok().flatten();
                let ours = stored.is_some_and(|s| {
                    s.owner.as_deref() == Some(ctx.owner.as_str()) && s.status == run.status
                });
                if ours {
                    JobRunStatus::from(&run).emit();
                    return Some(run);
                }
                return None;
            }
            Ok(false) => return None,
            Err(why) => {
                failed_before = true;
                tracing::warn!(run_id = %run.run_id, error = %why, "could not record a run's outcome; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::error!(run_id = %run.run_id, status = run.status.as_str(), "could not record a run's outcome; its lease will lapse and it may run again");
    None
}
