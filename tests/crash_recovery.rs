//! SIGKILL the real binary part-way through a run, restart it, and compare with a run that was
//! never interrupted: the same rows, and a log without a duplicated or missing page.

mod support;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};
use support::{count, log_uuids, store_rows};

const USERS: u64 = 20_000;

fn run(dir: &Path) -> Child {
    support::userstream_bin()
        .args(["-q", "--data-dir"])
        .arg(dir)
        .args([
            "run",
            "--seed",
            "crash",
            "--batch-size",
            "500",
            "--rate",
            "4000",
        ])
        .args(["--max-users", &USERS.to_string()])
        .spawn()
        .expect("starting userstream")
}

/// Waits until the store holds at least `rows` users (or the process ended).
fn wait_for_rows(child: &mut Child, dir: &Path, rows: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored = count(&dir.join("store.db"), "created_users");
        if stored >= rows || child.try_wait().unwrap().is_some() {
            return stored;
        }
        assert!(Instant::now() < deadline, "no progress: {stored} rows");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigkill_then_restart_gives_the_same_exact_result() {
    let reference = tempfile::tempdir().unwrap();
    assert!(run(reference.path()).wait().unwrap().success());

    let crashed = tempfile::tempdir().unwrap();
    for kill_at in [4_000, 12_000] {
        let mut child = run(crashed.path());
        wait_for_rows(&mut child, crashed.path(), kill_at);
        child.kill().unwrap(); // SIGKILL: no handler runs, no buffer is flushed
        child.wait().unwrap();
        let stored = count(&crashed.path().join("store.db"), "created_users");
        assert!(
            stored < USERS,
            "killed too late to test anything ({stored} rows)"
        );
    }
    assert!(run(crashed.path()).wait().unwrap().success());

    let expected = store_rows(reference.path());
    assert_eq!(expected.len() as u64, USERS);
    assert_eq!(
        store_rows(crashed.path()),
        expected,
        "rows differ after crash and restart"
    );
    let (logged, distinct) = log_uuids(crashed.path());
    assert_eq!(logged as u64, USERS, "a page was appended twice or lost");
    assert_eq!(distinct.len() as u64, USERS);
    assert_eq!(count(&crashed.path().join("store.db"), "dead_letters"), 0);
}

#[test]
fn ctrl_c_drains_everything_ingested_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = support::userstream_bin()
        .args(["-q", "--data-dir"])
        .arg(dir.path())
        .args(["run", "--batch-size", "200", "--rate", "2000"])
        .spawn()
        .unwrap();
    wait_for_rows(&mut child, dir.path(), 1_000);
    support::interrupt(&child);
    assert!(
        child.wait().unwrap().success(),
        "graceful shutdown should exit 0"
    );
    let (logged, distinct) = log_uuids(dir.path());
    assert!(logged >= 1_000);
    assert_eq!(
        count(&dir.path().join("store.db"), "created_users"),
        distinct.len() as u64,
        "every logged record is processed before exit"
    );
}
