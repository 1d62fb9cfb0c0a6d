//! The scheduler against a scripted executor and the real SQLite history. Schedules are fast
//! (a slot every 200 ms) and every wait is for an event in the history, so timing never decides
//! a result; what is asserted is which slots were recorded and how each run ended.

use super::config::{CatchUpPolicy, JobConfig, OverlapPolicy, RunSize};
use super::executor::JobExecutor;
use super::history::{Admission, History, Lease, NewRun, SqliteRunHistory};
use super::scheduler::{record_manual, run_manual};
use super::*;
use crate::telemetry::IngestTally;
use crate::telemetry::events::{InternalEvent, PageAppended, PageFetched};
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the scripted executor does on each call.
#[derive(Clone, Copy)]
enum Script {
    /// Fetches the users asked for (minus what earlier attempts fetched) at once.
    Succeed,
    /// Fails its first `n` calls, then succeeds.
    FailFirst(usize),
    /// Fetches until told to stop.
    UntilStopped,
    /// Takes this long (or until told to stop).
    Take(Duration),
}

struct Scripted {
    script: Script,
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl JobExecutor for Scripted {
    async fn execute(
        &self,
        _job: &JobConfig,
        run_id: &str,
        size: RunSize,
        stop: CancellationToken,
        tally: Arc<IngestTally>,
    ) -> Result<(), String> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(run_id.to_owned());
            calls.len()
        };
        // Counted as the ingest counts: through the events.
        let fetch = |users: u64| {
            PageFetched {
                page: call as u64,
                count: users as usize,
                tally: &tally,
            }
            .emit();
            PageAppended {
                count: users,
                last_seq: None,
                tally: &tally,
            }
            .emit();
        };
        match self.script {
            Script::Succeed => {}
            Script::FailFirst(n) if call <= n => {
                return Err(format!("source down (call {call})"));
            }
            Script::FailFirst(_) => {}
            Script::UntilStopped => {
                stop.cancelled().await;
                fetch(1);
                return Ok(());
            }
            Script::Take(d) => {
                tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
        if let RunSize::Users(users) = size {
            fetch(users.saturating_sub(tally.records()));
        }
        Ok(())
    }
}

fn job(name: &str) -> JobConfig {
    JobConfig {
        name: name.into(),
        cron: None,
        timezone: "UTC".into(),
        every: Some(Duration::from_millis(200)),
        users: Some(300),
        duration: None,
        retries: 0,
        retry_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(30),
        overlap: OverlapPolicy::Skip,
        max_queued: 10,
        catch_up: CatchUpPolicy::Latest,
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    history: History,
    executor: Arc<Scripted>,
}

impl Harness {
    fn new(script: Script) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let history: History =
            Arc::new(SqliteRunHistory::open(&dir.path().join("meta.db")).unwrap());
        Self {
            _dir: dir,
            history,
            executor: Arc::new(Scripted {
                script,
                calls: Mutex::new(Vec::new()),
            }),
        }
    }

    fn context(
        &self,
        clock: Clock,
        shutdown: CancellationToken,
        on_shutdown: OnShutdown,
    ) -> RunContext {
        RunContext {
            history: Arc::clone(&self.history),
            executor: self.executor.clone(),
            clock,
            owner: "test".into(),
            lease: Duration::from_secs(3),
            shutdown,
            on_shutdown,
        }
    }

    /// Runs a scheduler over `jobs` until `done` holds of the history (checked as it changes),
    /// then shuts it down and returns every run, oldest first.
    async fn schedule_until(
        &self,
        jobs: Vec<JobConfig>,
        clock: Clock,
        done: impl Fn(&[RunRecord]) -> bool,
    ) -> Vec<RunRecord> {
        let shutdown = CancellationToken::new();
        let jobs = jobs.into_iter().map(|j| Job::new(j).unwrap()).collect();
        let scheduler = Scheduler::new(
            jobs,
            self.context(clock, shutdown.clone(), OnShutdown::Requeue),
            Duration::from_millis(50),
            Arc::new(Notify::new()),
        );
        let task = tokio::spawn(scheduler.run());
        self.wait_for(done).await;
        shutdown.cancel();
        task.await.unwrap().unwrap();
        self.runs().await
    }

    async fn wait_for(&self, done: impl Fn(&[RunRecord]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let runs = self.runs().await;
            if done(&runs) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never happened; runs: {runs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn runs(&self) -> Vec<RunRecord> {
        let mut runs = self.history.list(None, 10_000).await.unwrap();
        runs.reverse();
        runs
    }

    fn calls(&self) -> Vec<String> {
        self.executor.calls.lock().unwrap().clone()
    }
}

fn count(runs: &[RunRecord], status: RunStatus) -> usize {
    runs.iter().filter(|r| r.status == status).count()
}

#[tokio::test]
async fn a_fast_schedule_runs_every_slot_exactly_once() {
    let h = Harness::new(Script::Succeed);
    let start = Utc::now();
    let runs = h
        .schedule_until(vec![job("fast")], Clock::System, |runs| {
            count(runs, RunStatus::Succeeded) >= 6
        })
        .await;
    let slots: Vec<DateTime<Utc>> = runs.iter().filter_map(|r| r.slot).collect();
    let timing = Job::new(job("fast")).unwrap().timing;
    // Every slot from the first after start to the last recorded, none missing, none twice.
    assert_eq!(slots, timing.slots_between(start, *slots.last().unwrap()));
    for run in runs.iter().filter(|r| r.status == RunStatus::Succeeded) {
        assert_eq!(
            (run.attempt, run.users_fetched, run.users_published),
            (1, 300, 300)
        );
        assert_eq!(run.trigger, RunTrigger::Schedule);
    }
    let calls = h.calls();
    let mut distinct = calls.clone();
    distinct.dedup();
    assert_eq!(calls.len(), distinct.len(), "no run executed twice");
}

#[tokio::test]
async fn a_failing_run_is_retried_then_recorded_failed() {
    let h = Harness::new(Script::FailFirst(usize::MAX));
    let job = Job::new(JobConfig {
        retries: 2,
        ..job("flaky")
    })
    .unwrap();
    let ctx = h.context(Clock::System, CancellationToken::new(), OnShutdown::Fail);
    let run = record_manual(&h.history, &ctx.clock, &job, None)
        .await
        .unwrap();
    let run = run_manual(&ctx, &job, run, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!((run.status, run.attempt), (RunStatus::Failed, 3));
    assert_eq!(run.error.as_deref(), Some("source down (call 3)"));
    assert_eq!(h.calls().len(), 3);
    assert_eq!(h.history.get(&run.run_id).await.unwrap().unwrap(), run);
}

#[tokio::test]
async fn a_retry_that_succeeds_fetches_only_the_rest() {
    let h = Harness::new(Script::FailFirst(1));
    let job = Job::new(JobConfig {
        retries: 1,
        ..job("flaky")
    })
    .unwrap();
    let ctx = h.context(Clock::System, CancellationToken::new(), OnShutdown::Fail);
    let run = record_manual(&h.history, &ctx.clock, &job, Some(50))
        .await
        .unwrap();
    let run = run_manual(&ctx, &job, run, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        (run.status, run.attempt, run.users_fetched),
        (RunStatus::Succeeded, 2, 50)
    );
    assert_eq!(run.trigger, RunTrigger::Manual);
    assert_eq!(run.error, None);
}

#[tokio::test]
async fn a_run_past_its_timeout_is_stopped_and_recorded_timed_out() {
    let h = Harness::new(Script::UntilStopped);
    let job = Job::new(JobConfig {
        timeout: Duration::from_millis(300),
        retries: 3,
        ..job("slow")
    })
    .unwrap();
    let ctx = h.context(Clock::System, CancellationToken::new(), OnShutdown::Fail);
    let run = record_manual(&h.history, &ctx.clock, &job, None)
        .await
        .unwrap();
    let run = run_manual(&ctx, &job, run, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::TimedOut);
    assert_eq!(
        run.error.as_deref(),
        Some("stopped after its timeout of 300ms")
    );
    // Stopped gracefully (the executor kept what it fetched), and a timeout is not retried.
    assert_eq!((run.users_fetched, run.attempt, h.calls().len()), (1, 1, 1));
}

/// No two runs of one job were ever running at the same moment.
fn assert_never_overlapped(runs: &[RunRecord]) {
    let mut spans: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Succeeded)
        .map(|r| (r.started_at.unwrap(), r.ended_at.unwrap()))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlap: {pair:?}");
    }
}

#[tokio::test]
async fn a_slot_due_during_a_run_is_skipped_under_the_skip_policy() {
    let h = Harness::new(Script::Take(Duration::from_millis(500)));
    let runs = h
        .schedule_until(vec![job("long")], Clock::System, |runs| {
            count(runs, RunStatus::Succeeded) >= 2 && count(runs, RunStatus::Skipped) >= 2
        })
        .await;
    assert_never_overlapped(&runs);
    for skipped in runs.iter().filter(|r| r.status == RunStatus::Skipped) {
        assert_eq!(
            skipped.error.as_deref(),
            Some("the job's previous run was still going (overlap = skip)")
        );
    }
    assert_eq!(
        h.calls().len(),
        count(&runs, RunStatus::Succeeded) + count(&runs, RunStatus::Queued)
    );
}

#[tokio::test]
async fn a_slot_due_during_a_run_waits_under_the_queue_policy() {
    let h = Harness::new(Script::Take(Duration::from_millis(300)));
    let queueing = JobConfig {
        overlap: OverlapPolicy::Queue,
        ..job("long")
    };
    let runs = h
        .schedule_until(vec![queueing], Clock::System, |runs| {
            count(runs, RunStatus::Succeeded) >= 3
        })
        .await;
    assert_never_overlapped(&runs);
    assert_eq!(count(&runs, RunStatus::Skipped), 0);
    // The shutdown hands the run in progress back; the rest stay queued for the next start.
    assert!(runs.iter().all(|r| r.status != RunStatus::Running));
}

/// A job that keeps outrunning its schedule under the queue policy falls behind by at most
/// `max_queued` slots; the slots past that are recorded skipped, saying why.
#[tokio::test]
async fn the_queue_policy_queues_at_most_max_queued_runs() {
    let h = Harness::new(Script::Take(Duration::from_millis(700)));
    let queueing = JobConfig {
        overlap: OverlapPolicy::Queue,
        max_queued: 1,
        ..job("slow")
    };
    // The most runs seen waiting in any snapshot of the history while the scheduler ran (after
    // it, the run in progress is handed back queued too).
    let most_queued = std::sync::atomic::AtomicUsize::new(0);
    let runs = h
        .schedule_until(vec![queueing], Clock::System, |runs| {
            most_queued.fetch_max(count(runs, RunStatus::Queued), Relaxed);
            count(runs, RunStatus::Succeeded) >= 2 && count(runs, RunStatus::Skipped) >= 1
        })
        .await;
    assert_never_overlapped(&runs);
    assert_eq!(most_queued.into_inner(), 1);
    let skipped = runs
        .iter()
        .find(|r| r.status == RunStatus::Skipped)
        .unwrap();
    assert!(
        skipped.error.as_deref().unwrap().contains("max_queued = 1"),
        "{:?}",
        skipped.error
    );
}

/// A history whose newest slot of `every-minute` is ten minutes before `now`.
async fn after_downtime(h: &Harness, now: DateTime<Utc>) -> JobConfig {
    let job = JobConfig {
        every: Some(Duration::from_secs(60)),
        ..job("minutely")
    };
    let timing = Job::new(job.clone()).unwrap().timing;
    let last = timing.slots_between(now - chrono::Duration::minutes(11), now)[0];
    let recorded = h
        .history
        .insert(
            NewRun {
                job: job.name.clone(),
                slot: Some(last),
                trigger: RunTrigger::Schedule,
                users_requested: Some(300),
                status: RunStatus::Skipped,
                error: None,
            },
            Admission::Always,
            last,
        )
        .await
        .unwrap();
    assert!(recorded.is_some());
    job
}

/// 30 s past a minute boundary: the newest missed slot is no longer "just due".
fn mid_minute() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    DateTime::from_timestamp(now - now % 60 + 30, 0).unwrap()
}

#[tokio::test]
async fn catch_up_all_runs_every_missed_slot_oldest_first() {
    let h = Harness::new(Script::Succeed);
    let now = mid_minute();
    let job = after_downtime(&h, now).await;
    let runs = h
        .schedule_until(
            vec![JobConfig {
                catch_up: CatchUpPolicy::All,
                ..job
            }],
            Clock::following_tokio(now),
            |runs| count(runs, RunStatus::Succeeded) == 10,
        )
        .await;
    let caught: Vec<_> = runs
        .iter()
        .filter(|r| r.trigger == RunTrigger::CatchUp)
        .collect();
    assert_eq!(caught.len(), 10);
    assert!(
        caught
            .windows(2)
            .all(|w| w[0].slot < w[1].slot && w[0].started_at <= w[1].started_at)
    );
    assert_eq!(
        caught.last().unwrap().slot.unwrap(),
        now - chrono::Duration::seconds(30)
    );
}

#[tokio::test]
async fn catch_up_latest_runs_only_the_newest_missed_slot() {
    let h = Harness::new(Script::Succeed);
    let now = mid_minute();
    let job = after_downtime(&h, now).await;
    let runs = h
        .schedule_until(vec![job], Clock::following_tokio(now), |runs| {
            count(runs, RunStatus::Succeeded) == 1
        })
        .await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[1].trigger, RunTrigger::CatchUp);
    assert_eq!(runs[1].slot.unwrap(), now - chrono::Duration::seconds(30));
    assert_eq!(h.calls().len(), 1);
}

#[tokio::test]
async fn catch_up_none_runs_nothing_and_says_so() {
    let h = Harness::new(Script::Succeed);
    let now = mid_minute();
    let job = after_downtime(&h, now).await;
    let runs = h
        .schedule_until(
            vec![JobConfig {
                catch_up: CatchUpPolicy::None,
                ..job
            }],
            Clock::following_tokio(now),
            |runs| runs.len() == 2,
        )
        .await;
    assert_eq!(runs[1].status, RunStatus::Skipped);
    assert!(
        runs[1]
            .error
            .as_deref()
            .unwrap()
            .contains("passes over 10 slot(s)"),
        "{:?}",
        runs[1].error
    );
    assert!(h.calls().is_empty());
}

#[tokio::test]
async fn a_run_whose_process_died_resumes_once_with_what_is_left() {
    let h = Harness::new(Script::Succeed);
    let job = JobConfig {
        retries: 1,
        every: Some(Duration::from_secs(3600)),
        ..job("hourly")
    };
    let now = Utc::now();
    let slot = Job::new(job.clone())
        .unwrap()
        .timing
        .slots_between(now - chrono::Duration::hours(1), now)[0];
    // A process claimed the slot, fetched 100 of 300 users, and was killed.
    let run = h
        .history
        .insert(
            NewRun {
                job: job.name.clone(),
                slot: Some(slot),
                trigger: RunTrigger::Schedule,
                users_requested: Some(300),
                status: RunStatus::Queued,
                error: None,
            },
            Admission::Always,
            slot,
        )
        .await
        .unwrap()
        .unwrap();
    let dead = Lease {
        owner: "dead".into(),
        until: now - chrono::Duration::seconds(1),
    };
    let mut claimed = h
        .history
        .claim(
            &job.name,
            None,
            &dead,
            2,
            now - chrono::Duration::seconds(5),
        )
        .await
        .unwrap()
        .unwrap();
    claimed.users_fetched = 100;
    claimed.users_published = 100;
    assert!(
        h.history
            .update(&claimed, &dead, now - chrono::Duration::seconds(5))
            .await
            .unwrap()
    );
    let runs = h
        .schedule_until(vec![job], Clock::System, |runs| {
            count(runs, RunStatus::Succeeded) == 1
        })
        .await;
    assert_eq!(runs.len(), 1, "the slot is not recorded again: {runs:#?}");
    let resumed = &runs[0];
    assert_eq!(resumed.run_id, run.run_id);
    assert_eq!((resumed.attempt, resumed.users_published), (2, 300));
    assert_eq!(h.calls(), vec![run.run_id.clone()]);
}

#[tokio::test]
async fn a_run_interrupted_by_shutdown_resumes_at_the_next_start() {
    let h = Harness::new(Script::UntilStopped);
    let job_config = JobConfig {
        every: Some(Duration::from_secs(3600)),
        ..job("hourly")
    };
    let job = Job::new(job_config.clone()).unwrap();
    let run = record_manual(&h.history, &Clock::System, &job, Some(10))
        .await
        .unwrap();
    let runs = h
        .schedule_until(vec![job_config.clone()], Clock::System, |runs| {
            runs.iter().any(|r| r.status == RunStatus::Running)
        })
        .await;
    assert_eq!(runs[0].status, RunStatus::Queued, "handed back: {runs:#?}");
    assert_eq!(
        runs[0].attempt, 0,
        "an interrupted attempt is not held against the run"
    );
    let h2 = Harness {
        _dir: tempfile::tempdir().unwrap(),
        history: Arc::clone(&h.history),
        executor: Arc::new(Scripted {
            script: Script::Succeed,
            calls: Mutex::new(Vec::new()),
        }),
    };
    let runs = h2
        .schedule_until(vec![job_config], Clock::System, |runs| {
            count(runs, RunStatus::Succeeded) == 1
        })
        .await;
    assert_eq!(
        (runs[0].run_id.as_str(), runs[0].attempt),
        (run.run_id.as_str(), 1)
    );
    assert_eq!(runs[0].users_published, 10);
}

/// The SQLite history, whose lease renewals can be made to fail (a database gone away).
struct Unreachable {
    inner: History,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl super::history::RunHistory for Unreachable {
    async fn insert(
        &self,
        run: NewRun,
        admission: Admission,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, super::history::HistoryError> {
        self.inner.insert(run, admission, now).await
    }
    async fn claim(
        &self,
        job: &str,
        run_id: Option<&str>,
        lease: &Lease,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, super::history::HistoryError> {
        self.inner
            .claim(job, run_id, lease, max_attempts, now)
            .await
    }
    async fn update(
        &self,
        run: &RunRecord,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<bool, super::history::HistoryError> {
        if self.down.load(Relaxed) {
            return Err(super::history::HistoryError::Corrupt(
                "database unreachable".into(),
            ));
        }
        self.inner.update(run, lease, now).await
    }
    async fn cancel_queued(
        &self,
        run_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, super::history::HistoryError> {
        self.inner.cancel_queued(run_id, reason, now).await
    }
    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, super::history::HistoryError> {
        self.inner.get(run_id).await
    }
    async fn list(
        &self,
        job: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, super::history::HistoryError> {
        self.inner.list(job, limit).await
    }
    async fn last_slot(
        &self,
        job: &str,
    ) -> Result<Option<DateTime<Utc>>, super::history::HistoryError> {
        self.inner.last_slot(job).await
    }
}

#[tokio::test]
async fn a_run_that_cannot_renew_its_lease_stops_before_another_process_may_take_it() {
    let mut h = Harness::new(Script::UntilStopped);
    let unreachable = Arc::new(Unreachable {
        inner: Arc::clone(&h.history),
        down: std::sync::atomic::AtomicBool::new(false),
    });
    h.history = unreachable.clone();
    let job = Job::new(job("hourly")).unwrap();
    let ctx = h.context(Clock::System, CancellationToken::new(), OnShutdown::Fail);
    let run = record_manual(&h.history, &ctx.clock, &job, None)
        .await
        .unwrap();
    let running = tokio::spawn({
        let (ctx, job) = (ctx.clone(), job.clone());
        async move { run_manual(&ctx, &job, run, Duration::from_millis(50)).await }
    });
    h.wait_for(|runs| runs[0].status == RunStatus::Running)
        .await;
    unreachable.down.store(true, Relaxed);
    let started = tokio::time::Instant::now();
    let err = running.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("lost the lease"), "{err}");
    assert!(
        started.elapsed() < ctx.lease,
        "stopped within the lease ({:?}), before it could lapse",
        started.elapsed()
    );
    assert_eq!(h.calls().len(), 1);
}

#[tokio::test]
async fn a_trigger_stopped_while_its_run_waits_fails_the_run_rather_than_leave_it_queued() {
    let h = Harness::new(Script::Succeed);
    let job = Job::new(JobConfig {
        overlap: OverlapPolicy::Queue,
        ..job("hourly")
    })
    .unwrap();
    // Another process is in the middle of a run of the job.
    let other = record_manual(&h.history, &Clock::System, &job, None)
        .await
        .unwrap();
    let elsewhere = Lease {
        owner: "elsewhere".into(),
        until: Utc::now() + chrono::Duration::hours(1),
    };
    h.history
        .claim("hourly", Some(&other.run_id), &elsewhere, 1, Utc::now())
        .await
        .unwrap()
        .unwrap();
    let shutdown = CancellationToken::new();
    let ctx = h.context(Clock::System, shutdown.clone(), OnShutdown::Fail);
    let mine = record_manual(&h.history, &ctx.clock, &job, None)
        .await
        .unwrap();
    assert_eq!(mine.status, RunStatus::Queued);
    shutdown.cancel();
    let ended = run_manual(&ctx, &job, mine, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(ended.status, RunStatus::Failed);
    assert_eq!(
        h.history
            .get(&ended.run_id)
            .await
            .unwrap()
            .unwrap()
            .error
            .as_deref(),
        Some("cancelled before it started: the trigger was stopped")
    );
    assert!(h.calls().is_empty());
}
