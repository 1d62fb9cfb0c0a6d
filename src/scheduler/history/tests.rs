//! The run history's guarantees ([`super::contract`]) on SQLite, with two handles on one file
//! standing for two processes.

use super::SqliteRunHistory;
use super::contract::*;

fn two_processes() -> (tempfile::TempDir, SqliteRunHistory, SqliteRunHistory) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let a = SqliteRunHistory::open(&path).unwrap();
    let b = SqliteRunHistory::open(&path).unwrap();
    (dir, a, b)
}

#[tokio::test]
async fn sqlite_records_a_slot_once() {
    let (_dir, a, b) = two_processes();
    a_slot_is_recorded_once_whoever_sees_it(&a, &b, "j").await;
}

#[tokio::test]
async fn sqlite_lets_one_process_claim() {
    let (_dir, a, b) = two_processes();
    only_one_process_claims_and_a_busy_job_skips_new_slots(&a, &b, "j").await;
}

#[tokio::test]
async fn sqlite_resumes_a_lapsed_lease_elsewhere() {
    let (_dir, a, b) = two_processes();
    a_lapsed_lease_resumes_the_run_elsewhere_until_attempts_run_out(&a, &b, "j").await;
}

#[tokio::test]
async fn sqlite_round_trips_a_record() {
    let (_dir, a, _) = two_processes();
    a_record_round_trips_every_field(&a, "j").await;
}

#[tokio::test]
async fn sqlite_cancels_only_queued_runs() {
    let (_dir, a, _) = two_processes();
    a_queued_run_can_be_cancelled_and_a_started_one_cannot(&a, "j").await;
}

#[tokio::test]
async fn sqlite_caps_the_queue() {
    let (_dir, a, b) = two_processes();
    the_queue_is_capped_whoever_records(&a, &b, "j").await;
}
