//! The scheduler loop: records each job's slots as they come due (and, at start, the ones missed
//! while no scheduler was up, as the catch-up policy says), and runs what it can claim.
//!
//! Every decision goes through the run history ([`super::history`]), never through memory
//! alone, so that any number of schedulers, started and killed at any time, run each slot once:
//! recording a slot is idempotent across processes, and running it takes a claim.

use super::Clock;
use super::config::{CatchUpPolicy, JobConfig, RunSize};
use super::history::{Admission, History, NewRun, RunRecord, RunStatus, RunTrigger};
use super::runner::{RunContext, execute_run};
use super::timing::Timing;
use crate::telemetry::events::{InternalEvent, JobRunStatus, register_job_series};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// A slot this recent counts as just due, not missed: two schedulers polling a second apart
/// must agree that it is a plain scheduled run.
const DUE_GRACE: Duration = Duration::from_secs(5);

/// How long the scheduler rides out a run history that fails (a database restarting) before it
/// stops with the error. Slots that come due meanwhile are recorded once it answers again.
const HISTORY_OUTAGE_LIMIT: Duration = Duration::from_secs(300);

/// A run task's end: its job, and the users it appended in this process.
type RunEnded = (String, u64);

/// A configured job with its timing and size parsed, once.
#[derive(Debug, Clone)]
pub struct Job {
    pub config: JobConfig,
    pub timing: Timing,
    pub size: RunSize,
}

impl Job {
    pub fn new(config: JobConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(Self {
            timing: config.timing()?,
            size: config.size()?,
            config,
        })
    }

    /// The job named `name` in `jobs`; the error lists the configured ones.
    pub fn find<'a>(jobs: &'a [Job], name: &str) -> anyhow::Result<&'a Job> {
        jobs.iter().find(|j| j.config.name == name).ok_or_else(|| {
            let known: Vec<_> = jobs.iter().map(|j| j.config.name.as_str()).collect();
            anyhow::anyhow!("no job named {name:?} in the configuration; the jobs are {known:?}")
        })
    }

    pub fn max_attempts(&self) -> u32 {
        self.config.retries + 1
    }

    /// A queued run of this job for `slot` (`None`: a manual run), of `users` if given, else
    /// of the job's size.
    pub fn new_run(
        &self,
        slot: Option<DateTime<Utc>>,
        trigger: RunTrigger,
        users: Option<u64>,
    ) -> NewRun {
        NewRun {
            job: self.config.name.clone(),
            slot,
            trigger,
            users_requested: users.or(match self.size {
                RunSize::Users(n) => Some(n),
                RunSize::Duration(_) => None,
            }),
            status: RunStatus::Queued,
            error: None,
        }
    }
}

/// Runs jobs until shut down.
pub struct Scheduler {
    jobs: Vec<Job>,
    ctx: RunContext,
    poll_interval: Duration,
    /// Woken by an in-process trigger (HTTP), so a manual run starts without waiting a poll.
    wake: Arc<Notify>,
}

impl Scheduler {
    /// `wake` is notified by whoever records a manual run in this process (`POST /jobs/..`).
    pub fn new(
        jobs: Vec<Job>,
        ctx: RunContext,
        poll_interval: Duration,
        wake: Arc<Notify>,
    ) -> Self {
        for job in &jobs {
            register_job_series(&job.config.name);
        }
        Self {
            jobs,
            ctx,
            poll_interval,
            wake,
        }
    }

    /// Runs until `ctx.shutdown` fires; runs in progress are then stopped and handed back to the
    /// history as the context's shutdown policy says. An error from the run history ends it.
    /// Returns the users this process's runs appended to the log.
    pub async fn run(self) -> anyhow::Result<u64> {
        let mut seen: HashMap<String, DateTime<Utc>> = HashMap::new();
        for job in &self.jobs {
            let until = self.catch_up(job).await?;
            seen.insert(job.config.name.clone(), until);
        }
        let mut running: JoinSet<RunEnded> = JoinSet::new();
        let mut users = 0;
        let mut busy: HashSet<String> = HashSet::new();
        let mut outage: Option<tokio::time::Instant> = None;
        loop {
            let now = self.ctx.clock.now();
            match self.step(now, &mut seen, &mut busy, &mut running).await {
                Ok(()) => outage = None,
                Err(err) => {
                    let since = *outage.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= HISTORY_OUTAGE_LIMIT {
                        self.ctx.shutdown.cancel();
                        while running.join_next().await.is_some() {}
                        return Err(err.context(format!(
                            "the run history has failed for {HISTORY_OUTAGE_LIMIT:?}; stopping the scheduler"
                        )));
                    }
                    tracing::warn!(error = %crate::error_chain::describe(err.as_ref()), "the scheduler could not read or write the run history; trying again");
                }
            }
            if self.ctx.shutdown.is_cancelled() {
                break;
            }
            let next_slot = self
                .jobs
                .iter()
                .filter_map(|job| job.timing.next_after(now))
                .min();
            let poll = now + chrono::Duration::from_std(self.poll_interval).unwrap_or_default();
            let wake_at = next_slot.map_or(poll, |slot| slot.min(poll));
            tokio::select! {
                () = self.ctx.clock.sleep_until(wake_at) => {}
                () = self.wake.notified() => {}
                Some(done) = running.join_next() => {
                    let (name, published) = done.map_err(|e| anyhow::anyhow!("a job run task failed: {e}"))?;
                    busy.remove(&name);
                    users += published;
                }
                () = self.ctx.shutdown.cancelled() => {}
            }
        }
        while let Some(done) = running.join_next().await {
            users += done
                .map_err(|e| anyhow::anyhow!("a job run task failed: {e}"))?
                .1;
        }
        Ok(users)
    }

    /// One pass: records the slots that came due since `seen`, and starts a run of each idle job
    /// that has one queued.
    async fn step(
        &self,
        now: DateTime<Utc>,
        seen: &mut HashMap<String, DateTime<Utc>>,
        busy: &mut HashSet<String>,
        running: &mut JoinSet<RunEnded>,
    ) -> anyhow::Result<()> {
        for job in &self.jobs {
            let since = seen[&job.config.name];
            for slot in job.timing.slots_between(since, now) {
                self.record_slot(job, slot, RunTrigger::Schedule).await?;
            }
            seen.insert(job.config.name.clone(), now);
        }
        if self.ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        for job in &self.jobs {
            if busy.contains(&job.config.name) {
                continue;
            }
            let claimed = self
                .ctx
                .history
                .claim(
                    &job.config.name,
                    None,
                    &self.ctx.lease(),
                    job.max_attempts(),
                    self.ctx.clock.now(),
                )
                .await?;
            if let Some(run) = claimed {
                busy.insert(job.config.name.clone());
                let (ctx, job) = (self.ctx.clone(), job.clone());
                running.spawn(async move {
                    // A panic in one run ends that run only: its lease lapses and another
                    // attempt resumes it, while the job's other runs and the other jobs go on.
                    let (run_id, before) = (run.run_id.clone(), run.users_published);
                    let outcome = AssertUnwindSafe(execute_run(&ctx, &job, run))
                        .catch_unwind()
                        .await;
                    let published = match &outcome {
                        Ok(Some(run)) => run.users_published.saturating_sub(before),
                        _ => 0,
                    };
                    if let Err(panic) = outcome {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(job = %job.config.name, %run_id, panic = %what, "a job run panicked; its lease will lapse and another attempt resume it");
                    }
                    (job.config.name, published)
                });
            }
        }
        Ok(())
    }

    /// Deals with the slots missed since the job's newest recorded slot, by its catch-up policy;
    /// returns the instant from which its schedule goes on.
    async fn catch_up(&self, job: &Job) -> anyhow::Result<DateTime<Utc>> {
        let now = self.ctx.clock.now();
        let name = &job.config.name;
        // A job never recorded starts from now: there is nothing it missed.
        let Some(last) = self.ctx.history.last_slot(name).await? else {
            return Ok(now);
        };
        let grace = chrono::Duration::from_std(DUE_GRACE).unwrap_or_default();
        let mut missed = job.timing.slots_between(last, now);
        // The newest slot, if it has only just come due, is a plain scheduled run.
        let due = missed.last().filter(|slot| now - **slot < grace).copied();
        if due.is_some() {
            missed.pop();
        }
        if let (Some(first), Some(newest)) = (missed.first().copied(), missed.last().copied()) {
            let count = missed.len();
            tracing::info!(job = %name, count, %first, %newest, policy = ?job.config.catch_up, "slots missed while no scheduler was up");
            match job.config.catch_up {
                CatchUpPolicy::All => {
                    // Queued one behind the other, whatever the overlap policy and queue cap:
                    // running them all is what this policy asks for.
                    for slot in missed {
                        let run = job.new_run(Some(slot), RunTrigger::CatchUp, None);
                        self.record(run, Admission::Always).await?;
                    }
                }
                CatchUpPolicy::Latest => {
                    self.record_slot(job, newest, RunTrigger::CatchUp).await?;
                }
                CatchUpPolicy::None => {
                    let error = format!(
                        "missed while no scheduler was up; catch_up = none passes over {count} slot(s) from {first} to {newest}"
                    );
                    self.record(
                        NewRun {
                            status: RunStatus::Skipped,
                            error: Some(error),
                            ..job.new_run(Some(newest), RunTrigger::CatchUp, None)
                        },
                        Admission::Always,
                    )
                    .await?;
                }
            }
        }
        if let Some(slot) = due {
            self.record_slot(job, slot, RunTrigger::Schedule).await?;
        }
        Ok(now)
    }

    /// Records a slot that came due (or is caught up), as queued, or as skipped when the job is
    /// busy and its overlap policy says so.
    async fn record_slot(
        &self,
        job: &Job,
        slot: DateTime<Utc>,
        trigger: RunTrigger,
    ) -> anyhow::Result<Option<RunRecord>> {
        let run = job.new_run(Some(slot), trigger, None);
        self.record(run, job.config.admission()).await
    }

    async fn record(&self, run: NewRun, admission: Admission) -> anyhow::Result<Option<RunRecord>> {
        record(&self.ctx.history, &self.ctx.clock, run, admission).await
    }
}

/// Records a manual run of `job` (queued, or skipped when the job's overlap policy refuses it),
/// for this or another process to claim.
pub async fn record_manual(
    history: &History,
    clock: &Clock,
    job: &Job,
    users: Option<u64>,
) -> anyhow::Result<RunRecord> {
    let run = job.new_run(None, RunTrigger::Manual, users);
    Ok(record(history, clock, run, job.config.admission())
        .await?
        .expect("a manual run has no slot to conflict on"))
}

/// Records `run` in the history (see [`RunHistory::insert`](super::history::RunHistory::insert)) and counts the status it entered.
async fn record(
    history: &History,
    clock: &Clock,
    run: NewRun,
    admission: Admission,
) -> anyhow::Result<Option<RunRecord>> {
    let recorded = history.insert(run, admission, clock.now()).await?;
    if let Some(run) = &recorded {
        JobRunStatus::from(run).emit();
    }
    Ok(recorded)
}

/// Runs a manual run in this process (`jobs trigger`): claims it as soon as no other run of the
/// job is live, and returns it when it ends, here or in another process that claimed it first.
pub async fn run_manual(
    ctx: &RunContext,
    job: &Job,
    run: RunRecord,
    poll_interval: Duration,
) -> anyhow::Result<RunRecord> {
    let mut current = run;
    loop {
        if current.status.is_final() {
            return Ok(current);
        }
        if ctx.shutdown.is_cancelled() {
            // Whoever triggered it stopped waiting before any process started it: it is not
            // left queued for a scheduler to run later, unasked.
            let reason = "cancelled before it started: the trigger was stopped";
            if current.status == RunStatus::Queued
                && ctx
                    .history
                    .cancel_queued(&current.run_id, reason, ctx.clock.now())
                    .await?
            {
                let mut cancelled = current;
                cancelled.status = RunStatus::Failed;
                cancelled.error = Some(reason.into());
                JobRunStatus::from(&cancelled).emit();
                return Ok(cancelled);
            }
            anyhow::bail!(
                "stopped waiting for run {} of {} ({}, {}); it stays in the history for a scheduler",
                current.run_id,
                job.config.name,
                current.status.as_str(),
                current.owner.as_deref().unwrap_or("not claimed yet"),
            );
        }
        let claimed = ctx
            .history
            .claim(
                &job.config.name,
                Some(&current.run_id),
                &ctx.lease(),
                job.max_attempts(),
                ctx.clock.now(),
            )
            .await?;
        if let Some(run) = claimed {
            return execute_run(ctx, job, run).await.ok_or_else(|| {
                anyhow::anyhow!(
                    "lost the lease of run {} to another process",
                    current.run_id
                )
            });
        }
        tokio::select! {
            () = tokio::time::sleep(poll_interval) => {}
            () = ctx.shutdown.cancelled() => {}
        }
        current =
            ctx.history.get(&current.run_id).await?.ok_or_else(|| {
                anyhow::anyhow!("run {} vanished from the history", current.run_id)
            })?;
    }
}
