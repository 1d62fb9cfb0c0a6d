//! The guarantees every [`RunHistory`] keeps, as checks that each implementation's tests run
//! with two handles on one database standing for two processes: SQLite's below, PostgreSQL's
//! in `tests/postgres.rs`. Each check uses its own job name, so they share a database.

use super::*;
use chrono::TimeZone;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn slot_run(job: &str, slot: i64) -> NewRun {
    NewRun {
        job: job.into(),
        slot: Some(at(slot)),
        trigger: RunTrigger::Schedule,
        users_requested: Some(100),
        status: RunStatus::Queued,
        error: None,
    }
}

/// `overlap = "queue"` with the default cap.
const QUEUE: Admission = Admission::Queue { max_queued: 10 };

fn lease(owner: &str, until: i64) -> Lease {
    Lease {
        owner: owner.into(),
        until: at(until),
    }
}

/// Panics when the guarantee does not hold.
#[allow(clippy::missing_panics_doc)]
pub async fn a_slot_is_recorded_once_whoever_sees_it(
    a: &dyn RunHistory,
    b: &dyn RunHistory,
    job: &str,
) {
    assert!(
        a.insert(slot_run(job, 60), QUEUE, at(60))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.insert(slot_run(job, 60), QUEUE, at(61))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b.insert(slot_run(job, 120), QUEUE, at(120))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(a.list(Some(job), 10).await.unwrap().len(), 2);
    assert_eq!(b.last_slot(job).await.unwrap(), Some(at(120)));
}

/// Panics when the guarantee does not hold.
#[allow(clippy::missing_panics_doc)]
pub async fn only_one_process_claims_and_a_busy_job_skips_new_slots(
    a: &dyn RunHistory,
    b: &dyn RunHistory,
    job: &str,
) {
    a.insert(slot_run(job, 60), Admission::WhenIdle, at(60))
        .await
        .unwrap()
        .unwrap();
    let claimed = a
        .claim(job, None, &lease("a", 90), 3, at(60))
        .await
        .unwrap();
    let claimed = claimed.expect("a queued run is claimed");
    assert_eq!((claimed.status, claimed.attempt), (RunStatus::Running, 1));
    assert!(
        b.claim(job, None, &lease("b", 90), 3, at(61))
            .await
            .unwrap()
            .is_none()
    );
    // The next slot comes due while the first run is live: skip.
    let skipped = b
        .insert(slot_run(job, 70), Admission::WhenIdle, at(70))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.status, RunStatus::Skipped);
    assert!(
        skipped.error.unwrap().contains("still going"),
        "the reason is recorded"
    );
    // Queue policy: recorded queued, claimed only after the first run ends.
    b.insert(slot_run(job, 80), QUEUE, at(80))
        .await
        .unwrap()
        .unwrap();
    assert!(
        b.claim(job, None, &lease("b", 110), 3, at(80))
            .await
            .unwrap()
            .is_none()
    );
    let mut done = claimed;
    done.status = RunStatus::Succeeded;
    done.ended_at = Some(at(85));
    assert!(a.update(&done, &lease("a", 115), at(85)).await.unwrap());
    let next = b
        .claim(job, None, &lease("b", 120), 3, at(86))
        .await
        .unwrap();
    assert_eq!(next.unwrap().slot, Some(at(80)));
}

/// Panics when the guarantee does not hold.
#[allow(clippy::missing_panics_doc)]
pub async fn a_lapsed_lease_resumes_the_run_elsewhere_until_attempts_run_out(
    a: &dyn RunHistory,
    b: &dyn RunHistory,
    job: &str,
) {
    let run = a
        .insert(slot_run(job, 60), QUEUE, at(60))
        .await
        .unwrap()
        .unwrap();
    a.claim(job, None, &lease("a", 90), 2, at(60))
        .await
        .unwrap()
        .unwrap();
    // Past its lease, a cannot write either, even before anyone claims the run.
    let mut late = run.clone();
    late.status = RunStatus::Running;
    assert!(!a.update(&late, &lease("a", 200), at(91)).await.unwrap());
    // Before the lease lapses, b cannot take it.
    assert!(
        b.claim(job, None, &lease("b", 120), 2, at(89))
            .await
            .unwrap()
            .is_none()
    );
    // a died; after its lease, b resumes the same run as attempt 2.
    let resumed = b
        .claim(job, None, &lease("b", 130), 2, at(91))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (resumed.run_id.as_str(), resumed.attempt),
        (run.run_id.as_str(), 2)
    );
    assert_eq!(resumed.owner.as_deref(), Some("b"));
    // a comes back to life: its lease is gone and its writes are refused.
    let mut stale = resumed.clone();
    stale.status = RunStatus::Succeeded;
    assert!(!a.update(&stale, &lease("a", 140), at(95)).await.unwrap());
    // b dies too, with no attempt left: the run is failed, with the reason.
    assert!(
        a.claim(job, None, &lease("a", 200), 2, at(131))
            .await
            .unwrap()
            .is_none()
    );
    let failed = a.get(&run.run_id).await.unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(
        failed
            .error
            .unwrap()
            .contains("(b) stopped renewing its lease")
    );
}

/// Panics when the guarantee does not hold.
#[allow(clippy::missing_panics_doc)]
pub async fn a_record_round_trips_every_field(a: &dyn RunHistory, job: &str) {
    let mut run = a
        .insert(slot_run(job, 60), QUEUE, at(60))
        .await
        .unwrap()
        .unwrap();
    run = a
        .claim(job, Some(&run.run_id), &lease("a", 90), 1, at(61))
        .await
        .unwrap()
        .unwrap();
    run.users_fetched = 120;
    run.users_published = 100;
    run.api_errors.insert("rate_limited".into(), 3);
    run.status = RunStatus::TimedOut;
    run.error = Some("stopped after its timeout of 1m".into());
    run.ended_at = Some(at(70));
    assert!(a.update(&run, &lease("a", 95), at(70)).await.unwrap());
    assert_eq!(a.get(&run.run_id).await.unwrap().unwrap(), run);
}

/// Panics when the guarantee does not hold.
#[allow(clippy::missing_panics_doc)]
pub async fn a_queued_run_can_be_cancelled_and_a_started_one_cannot(a: &dyn RunHistory, job: &str) {
    let queued = a
        .insert(slot_run(job, 60), QUEUE, at(60))
        .await
        .unwrap()
        .unwrap();
    assert!(
        a.cancel_queued(&queued.run_id, "stopped", at(61))
            .await
            .unwrap()
    );
    let cancelled = a.get(&queued.run_id).await.unwrap().unwrap();
    assert_eq!(
        (cancelled.status, cancelled.error.as_deref()),
        (RunStatus::Failed, Some("stopped"))
    );
    let started = a
        .insert(slot_run(job, 120), QUEUE, at(120))
        .await
        .unwrap()
        .unwrap();
    a.claim(job, None, &lease("a", 150), 1, at(120))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !a.cancel_queued(&started.run_id, "stopped", at(121))
            .await
            .unwrap()
    );
}

/// Panics when the guarantee does not hold.
#[allow(clippy::missing_panics_doc)]
pub async fn the_queue_is_capped_whoever_records(
    a: &dyn RunHistory,
    b: &dyn RunHistory,
    job: &str,
) {
    let cap = Admission::Queue { max_queued: 2 };
    a.insert(slot_run(job, 60), cap, at(60))
        .await
        .unwrap()
        .unwrap();
    a.claim(job, None, &lease("a", 600), 3, at(60))
        .await
        .unwrap()
        .unwrap();
    // Two wait behind the live run, whichever process records them; the third is refused.
    for (history, slot) in [(a, 70), (b, 80)] {
        let queued = history.insert(slot_run(job, slot), cap, at(slot)).await;
        assert_eq!(queued.unwrap().unwrap().status, RunStatus::Queued);
    }
    let refused = b
        .insert(slot_run(job, 90), cap, at(90))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused.status, RunStatus::Skipped);
    assert!(
        refused.error.as_deref().unwrap().contains("max_queued = 2"),
        "{:?}",
        refused.error
    );
    // Catch-up's `all` queues whatever waits.
    let caught_up = a
        .insert(slot_run(job, 100), Admission::Always, at(100))
        .await;
    assert_eq!(caught_up.unwrap().unwrap().status, RunStatus::Queued);
}
