//! The run history's guarantees, on SQLite, with two handles on one file standing for two
//! processes (PostgreSQL runs the same transactions; see tests/jobs.rs).

use super::*;
use chrono::TimeZone;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

fn slot_run(slot: i64) -> NewRun {
    NewRun {
        job: "hourly".into(),
        slot: Some(at(slot)),
        trigger: RunTrigger::Schedule,
        users_requested: Some(100),
        status: RunStatus::Queued,
        error: None,
    }
}

fn lease(owner: &str, until: i64) -> Lease {
    Lease {
        owner: owner.into(),
        until: at(until),
    }
}

fn two_processes() -> (tempfile::TempDir, SqliteRunHistory, SqliteRunHistory) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let a = SqliteRunHistory::open(&path).unwrap();
    let b = SqliteRunHistory::open(&path).unwrap();
    (dir, a, b)
}

#[tokio::test]
async fn a_slot_is_recorded_once_whoever_sees_it() {
    let (_dir, a, b) = two_processes();
    assert!(
        a.insert(slot_run(60), false, at(60))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        b.insert(slot_run(60), false, at(61))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        b.insert(slot_run(120), false, at(120))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(a.list(Some("hourly"), 10).await.unwrap().len(), 2);
    assert_eq!(b.last_slot("hourly").await.unwrap(), Some(at(120)));
}

#[tokio::test]
async fn only_one_process_claims_and_a_busy_job_skips_new_slots() {
    let (_dir, a, b) = two_processes();
    a.insert(slot_run(60), true, at(60)).await.unwrap().unwrap();
    let claimed = a
        .claim("hourly", None, &lease("a", 90), 3, at(60))
        .await
        .unwrap();
    let claimed = claimed.expect("a queued run is claimed");
    assert_eq!((claimed.status, claimed.attempt), (RunStatus::Running, 1));
    assert!(
        b.claim("hourly", None, &lease("b", 90), 3, at(61))
            .await
            .unwrap()
            .is_none()
    );
    // The next slot comes due while the first run is live: skip.
    let skipped = b.insert(slot_run(70), true, at(70)).await.unwrap().unwrap();
    assert_eq!(skipped.status, RunStatus::Skipped);
    assert!(
        skipped.error.unwrap().contains("still going"),
        "the reason is recorded"
    );
    // Queue policy: recorded queued, claimed only after the first run ends.
    b.insert(slot_run(80), false, at(80))
        .await
        .unwrap()
        .unwrap();
    assert!(
        b.claim("hourly", None, &lease("b", 110), 3, at(80))
            .await
            .unwrap()
            .is_none()
    );
    let mut done = claimed;
    done.status = RunStatus::Succeeded;
    done.ended_at = Some(at(85));
    assert!(a.update(&done, &lease("a", 115)).await.unwrap());
    let next = b
        .claim("hourly", None, &lease("b", 120), 3, at(86))
        .await
        .unwrap();
    assert_eq!(next.unwrap().slot, Some(at(80)));
}

#[tokio::test]
async fn a_lapsed_lease_resumes_the_run_elsewhere_until_attempts_run_out() {
    let (_dir, a, b) = two_processes();
    let run = a
        .insert(slot_run(60), false, at(60))
        .await
        .unwrap()
        .unwrap();
    a.claim("hourly", None, &lease("a", 90), 2, at(60))
        .await
        .unwrap()
        .unwrap();
    // Before the lease lapses, b cannot take it.
    assert!(
        b.claim("hourly", None, &lease("b", 120), 2, at(89))
            .await
            .unwrap()
            .is_none()
    );
    // a died; after its lease, b resumes the same run as attempt 2.
    let resumed = b
        .claim("hourly", None, &lease("b", 130), 2, at(91))
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
    assert!(!a.update(&stale, &lease("a", 140)).await.unwrap());
    // b dies too, with no attempt left: the run is failed, with the reason.
    assert!(
        a.claim("hourly", None, &lease("a", 200), 2, at(131))
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

#[tokio::test]
async fn a_record_round_trips_every_field() {
    let (_dir, a, _) = two_processes();
    let mut run = a
        .insert(slot_run(60), false, at(60))
        .await
        .unwrap()
        .unwrap();
    run = a
        .claim("hourly", Some(&run.run_id), &lease("a", 90), 1, at(61))
        .await
        .unwrap()
        .unwrap();
    run.users_fetched = 120;
    run.users_published = 100;
    run.api_errors.insert("rate_limited".into(), 3);
    run.status = RunStatus::TimedOut;
    run.error = Some("stopped after its timeout of 1m".into());
    run.ended_at = Some(at(70));
    assert!(a.update(&run, &lease("a", 95)).await.unwrap());
    assert_eq!(a.get(&run.run_id).await.unwrap().unwrap(), run);
}
