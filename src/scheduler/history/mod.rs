//! The run history: every run of every job, durably, and the claims that keep two processes
//! from running the same one.
//!
//! It is also the schedulers' only shared state, so that any number of processes, restarted at
//! any time, agree on what ran:
//! - a scheduled slot is recorded under a unique `(job, slot)` key, so of two processes that
//!   both see a slot come due, exactly one records it;
//! - a recorded run is started by *claiming* it, in a transaction that also checks no other run
//!   of the job is live, so runs of one job never overlap, whoever started them;
//! - a claim is a lease that the running process renews. A process that dies stops renewing;
//!   once the lease lapses, the next claim hands the run to another process as its next attempt
//!   (or records it failed when no attempt is left). Nothing is run twice at once, and nothing
//!   stays "running" forever.
//!
//! Two implementations: SQLite (`DATA_DIR/meta.db`, the embedded default) and PostgreSQL.

pub mod contract;
pub mod postgres;
pub mod sqlite;

pub use postgres::PostgresRunHistory;
pub use sqlite::SqliteRunHistory;

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Recorded, waiting for a process to claim it.
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Stopped by the job's timeout.
    TimedOut,
    /// Not run: it came due during another run (overlap = skip) or with the queue full
    /// (overlap = queue, max_queued), or was missed and the catch-up policy passed it over.
    Skipped,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::TimedOut,
        RunStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// Its slot came due while a scheduler was up.
    Schedule,
    /// Its slot was missed while no scheduler was up, and the catch-up policy runs it.
    CatchUp,
    /// `jobs trigger` or `POST /jobs/NAME/trigger`.
    Manual,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Schedule => "schedule",
            RunTrigger::CatchUp => "catch_up",
            RunTrigger::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            RunTrigger::Schedule,
            RunTrigger::CatchUp,
            RunTrigger::Manual,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

/// One run, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub job: String,
    /// The scheduled slot; none for a manual run.
    pub slot: Option<DateTime<Utc>>,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    /// Attempts started so far (0 while first queued).
    pub attempt: u32,
    /// Users asked for, when the run is sized in users (a manual `--users` overrides the job's).
    pub users_requested: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Users the source handed back, over every attempt.
    pub users_fetched: u64,
    /// Users appended to the durable log, from where the pipeline (and, on the Kafka path, the
    /// relay to `users_created`) takes them.
    pub users_published: u64,
    /// Failed API requests by kind (`rate_limited`, `timeout`, ...), retried ones included.
    pub api_errors: BTreeMap<String, u64>,
    /// The last error, for a run that failed, timed out, was skipped or is being retried.
    pub error: Option<String>,
    /// The process holding (or last holding) the run's lease.
    pub owner: Option<String>,
}

/// A run to record.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub job: String,
    pub slot: Option<DateTime<Utc>>,
    pub trigger: RunTrigger,
    pub users_requested: Option<u64>,
    /// Queued (to run) or Skipped (recorded only).
    pub status: RunStatus,
    pub error: Option<String>,
}

/// The claim a running process holds on a run.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("run history (SQLite) {op}: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("run history: {0}")]
    Postgres(#[from] crate::postgres::PgError),
    #[error("run history: a stored row is unreadable: {0}")]
    Corrupt(String),
    /// The history's file is no longer at its path (see [`crate::sqlite::FileId`]).
    #[error("run history: {0}")]
    FileGone(String),
}

/// The durable record of runs, shared by every process that schedules the same jobs.
#[async_trait::async_trait]
pub trait RunHistory: Send + Sync {
    /// Records `run` and returns it, or `None` when its `(job, slot)` is already recorded (by
    /// this or another process). A queued run is recorded as skipped instead when `admission`
    /// refuses it, counting the job's queued and live runs in the same transaction.
    async fn insert(
        &self,
        run: NewRun,
        admission: Admission,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError>;

    /// Starts the oldest queued run of `job` (only `run_id`, when given) under `lease`, unless
    /// another run of the job is live. First re-queues runs whose lease lapsed (their process
    /// died) while they have attempts left of `max_attempts`, and fails the rest.
    async fn claim(
        &self,
        job: &str,
        run_id: Option<&str>,
        lease: &Lease,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError>;

    /// Writes a claimed run's progress or outcome (status, attempt, counts, error, end, lease),
    /// if the stored run is still running under `lease`'s owner and its lease has not lapsed by
    /// `now`. `false`: the lease was lost (or lapsed, and another process may take the run
    /// over) and nothing was written.
    async fn update(
        &self,
        run: &RunRecord,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<bool, HistoryError>;

    /// Fails a run that is still queued (its manual trigger was stopped before any process
    /// started it); `false` if it is not queued any more.
    async fn cancel_queued(
        &self,
        run_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, HistoryError>;

    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, HistoryError>;

    /// Newest first.
    async fn list(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, HistoryError>;

    /// The newest slot recorded for `job`: where its schedule resumes after a restart.
    async fn last_slot(&self, job: &str) -> Result<Option<DateTime<Utc>>, HistoryError>;

    /// Whether the history answers and still holds what is written to it: readiness's probe.
    async fn ready(&self) -> Result<(), HistoryError> {
        self.last_slot("").await.map(drop)
    }
}

pub type History = Arc<dyn RunHistory>;

/// A running run whose lease lapsed (its process died): back to queued while it has attempts
/// left of `max_attempts`, else failed; either way with the reason.
pub(crate) fn lapse(run: &mut RunRecord, max_attempts: u32, now: DateTime<Utc>) {
    run.error = Some(format!(
        "the process running it ({}) stopped renewing its lease",
        run.owner.as_deref().unwrap_or("unknown")
    ));
    if run.attempt < max_attempts {
        run.status = RunStatus::Queued;
    } else {
        run.status = RunStatus::Failed;
        run.ended_at = Some(now);
    }
    tracing::warn!(run_id = %run.run_id, job = %run.job, status = run.status.as_str(), "a run's lease lapsed: {}", run.error.as_deref().unwrap_or_default());
}

/// A claim's transition, the same on every backend: the queued `run` starts (or resumes, as its
/// next attempt) under `lease`.
pub(crate) fn start(run: &mut RunRecord, lease: &Lease, now: DateTime<Utc>) {
    run.status = RunStatus::Running;
    run.attempt += 1;
    run.started_at.get_or_insert(now);
    run.owner = Some(lease.owner.clone());
}

/// Whether a stored run (its `owner`, `status` and `lease_until` columns) is still running under
/// `lease` at `now`: what [`RunHistory::update`] checks before it writes.
pub(crate) fn lease_held(
    (owner, status, until): (Option<&str>, &str, Option<i64>),
    lease: &Lease,
    now: DateTime<Utc>,
) -> bool {
    owner == Some(lease.owner.as_str())
        && status == RunStatus::Running.as_str()
        && until.is_some_and(|until| until >= micros(now))
}

/// The `lease_until` stored with `run`: the lease while it runs, none once it has ended or been
/// handed back.
pub(crate) fn stored_lease(run: &RunRecord, lease: &Lease) -> Option<i64> {
    (run.status == RunStatus::Running).then(|| micros(lease.until))
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(m: i64) -> Result<DateTime<Utc>, HistoryError> {
    DateTime::from_timestamp_micros(m)
        .ok_or_else(|| HistoryError::Corrupt(format!("timestamp {m} out of range")))
}

/// The columns every query reads, in [`RunColumns`]' order.
pub(crate) const COLUMNS: &str = "run_id, job, slot, trigger, status, attempt, users_requested, \
    created_at, started_at, ended_at, users_fetched, users_published, api_errors, error, owner";

/// One row as the databases hand it back, before checking.
pub(crate) struct RunColumns {
    pub run_id: String,
    pub job: String,
    pub slot: Option<i64>,
    pub trigger: String,
    pub status: String,
    pub attempt: i64,
    pub users_requested: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub users_fetched: i64,
    pub users_published: i64,
    pub api_errors: String,
    pub error: Option<String>,
    pub owner: Option<String>,
}

impl RunColumns {
    pub fn into_record(self) -> Result<RunRecord, HistoryError> {
        let corrupt = |what: &str, v: &dyn std::fmt::Debug| {
            HistoryError::Corrupt(format!("run {}: {what} {v:?}", self.run_id))
        };
        let count = |v: i64, what: &str| u64::try_from(v).map_err(|_| corrupt(what, &v));
        Ok(RunRecord {
            slot: self.slot.map(from_micros).transpose()?,
            trigger: RunTrigger::parse(&self.trigger)
                .ok_or_else(|| corrupt("trigger", &self.trigger))?,
            status: RunStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", &self.status))?,
            attempt: u32::try_from(self.attempt).map_err(|_| corrupt("attempt", &self.attempt))?,
            users_requested: self
                .users_requested
                .map(|v| count(v, "users_requested"))
                .transpose()?,
            created_at: from_micros(self.created_at)?,
            started_at: self.started_at.map(from_micros).transpose()?,
            ended_at: self.ended_at.map(from_micros).transpose()?,
            users_fetched: count(self.users_fetched, "users_fetched")?,
            users_published: count(self.users_published, "users_published")?,
            api_errors: serde_json::from_str(&self.api_errors)
                .map_err(|_| corrupt("api_errors", &self.api_errors))?,
            error: self.error,
            owner: self.owner,
            run_id: self.run_id,
            job: self.job,
        })
    }
}

/// Whether a new run of a job is recorded queued or skipped, given the runs of the job already
/// pending. Decided in the transaction that inserts the run, so processes recording at once can
/// neither overlap runs nor overrun the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Queued whatever is pending: the missed slots of `catch_up = "all"`, which asks for every
    /// one of them to run (at most [`crate::scheduler::timing::MAX_SLOTS`]).
    Always,
    /// Skipped while a run of the job is live or queued (`overlap = "skip"`).
    WhenIdle,
    /// Queued behind the live run, unless `max_queued` runs already wait (`overlap = "queue"`):
    /// a job that keeps outrunning its schedule falls behind by a bounded number of slots and
    /// records the rest as skipped, rather than growing a backlog it can never work off.
    Queue { max_queued: u32 },
}

impl Admission {
    /// Why a new run is skipped, with `queued` runs waiting and `live` running; `None`: queue it.
    pub fn refusal(self, queued: u64, live: u64) -> Option<String> {
        match self {
            Admission::WhenIdle if queued + live > 0 => {
                Some("the job's previous run was still going (overlap = skip)".into())
            }
            Admission::Queue { max_queued } if queued >= u64::from(max_queued) => Some(format!(
                "{queued} runs of the job were already queued (overlap = queue, max_queued = {max_queued})"
            )),
            _ => None,
        }
    }
}

/// A new run's record, before it is written; `refusal` (from [`Admission::refusal`]) records it
/// skipped with that reason, unless it is a skipped record already with a reason of its own.
pub(crate) fn new_record(run: NewRun, refusal: Option<String>, now: DateTime<Utc>) -> RunRecord {
    let refusal = refusal.filter(|_| run.status != RunStatus::Skipped);
    let skipped = refusal.is_some() || run.status == RunStatus::Skipped;
    RunRecord {
        run_id: uuid::Uuid::new_v4().to_string(),
        job: run.job,
        slot: run.slot,
        trigger: run.trigger,
        status: if skipped {
            RunStatus::Skipped
        } else {
            run.status
        },
        attempt: 0,
        users_requested: run.users_requested,
        created_at: now,
        started_at: None,
        ended_at: run
            .status
            .is_final()
            .then_some(now)
            .or(skipped.then_some(now)),
        users_fetched: 0,
        users_published: 0,
        api_errors: BTreeMap::new(),
        error: refusal.or(run.error),
        owner: None,
    }
}

#[cfg(test)]
mod tests;
