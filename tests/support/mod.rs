//! Shared test helpers: a scripted, misbehaving HTTP server and readers of the embedded files.

#![allow(dead_code)] // each test crate uses a different subset

pub mod apicurio;
pub mod cassandra;
pub mod certs;
pub mod java;
pub mod kafka;
pub mod kafka_cluster;
pub mod metrics;
pub mod postgres;
pub mod prometheus;
pub mod python;
pub mod scripted_server;
pub mod tcp_proxy;

use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::Path;

/// All `login.uuid`s in the raw log, as a multiset count and a distinct set.
pub fn log_uuids(data_dir: &Path) -> (usize, BTreeSet<String>) {
    let conn = Connection::open(data_dir.join("log.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT record FROM raw_records ORDER BY seq")
        .unwrap();
    let records: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let ids: BTreeSet<String> = records
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok())
        .filter_map(|v| {
            v.pointer("/login/uuid")
                .and_then(|u| u.as_str())
                .map(str::to_owned)
        })
        .collect();
    (records.len(), ids)
}

/// `row` with its fetch time (`timestamp`) cleared: the same users fetched by two separate runs
/// match on every other column.
pub fn without_fetch_time(row: userstream::model::UserRow) -> userstream::model::UserRow {
    userstream::model::UserRow {
        timestamp: chrono::DateTime::UNIX_EPOCH,
        ..row
    }
}

/// Every stored row, as the text of all its columns but the fetch time (`timestamp`, which
/// differs between two runs fetching the same users), ordered by id.
pub fn store_rows(data_dir: &Path) -> Vec<Vec<String>> {
    let conn = Connection::open(data_dir.join("store.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT lower(hex(id)), first_name, last_name, gender, address, post_code, email, username,
                    dob, registered_date, phone, picture FROM created_users ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        (0..12)
            .map(|i| r.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

pub fn store_ids(data_dir: &Path) -> BTreeSet<String> {
    store_rows(data_dir)
        .into_iter()
        .map(|row| uuid::Uuid::parse_str(&row[0]).unwrap().to_string())
        .collect()
}

/// `n` generated users (seeded by `seed`) with their credentials removed, as JSON text: what
/// ingest publishes.
pub fn redacted_users(seed: &str, n: u32) -> Vec<String> {
    let mut page = Vec::new();
    userstream::source::generator::write_page(&mut page, seed, 1, n, &Default::default()).unwrap();
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            userstream::model::redact::redact_credentials(
                &serde_json::value::to_raw_value(u).unwrap(),
            )
            .into_record()
        })
        .collect()
}

/// The `userstream` binary under test. Its HTTP endpoints (`[http] listen`) go on a port of its
/// own choosing: tests run processes side by side, and the default port would be taken by the
/// first. A test that scrapes them sets the variable again, to a port it knows.
pub fn userstream_bin() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_userstream"));
    command.env("USERSTREAM_HTTP__LISTEN", "127.0.0.1:0");
    command
}

/// Sends `child` SIGINT, as a first Ctrl-C would.
pub fn interrupt(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// A TCP port that was free a moment ago, for a server that must be given its port up front
/// (a child process, a config file) rather than bind port 0 itself; see [`java::free_ports`].
pub fn free_port() -> u16 {
    java::free_ports(1)[0]
}

/// Polls `done` until it holds, failing the test with `what` after 240 s (a server restart on a
/// loaded 2-core machine takes a good part of that).
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub fn count(db: &Path, table: &str) -> u64 {
    let Ok(conn) = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap_or(0)
}

/// Every byte of every file (database, WAL) in `dir`, as text (invalid UTF-8 replaced), for
/// "this secret is nowhere" checks; `str::contains` is a fast substring search.
///
/// A SQLite connection closes on its own thread after its owner is dropped, and the last one
/// to close folds the WAL into the database and deletes it: a file that vanishes mid-read means
/// the files changed under us, so the whole directory is read again.
pub fn all_bytes(dir: &Path) -> String {
    'again: loop {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            match std::fs::read(entry.unwrap().path()) {
                Ok(file) => bytes.extend(file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    continue 'again;
                }
                Err(e) => panic!("reading {}: {e}", dir.display()),
            }
        }
        return String::from_utf8_lossy(&bytes).into_owned();
    }
}

/// The dependencies `readiness` finds not ready, by name.
pub async fn not_ready(readiness: &userstream::http::Readiness) -> Vec<&'static str> {
    readiness
        .check()
        .await
        .into_iter()
        .filter(|(_, result)| result.is_err())
        .map(|(name, _)| name)
        .collect()
}

/// As [`wait_until`], for a condition that must be awaited (a store query).
pub async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until every probe of `readiness` passes, failing the test after 120 s with `what`.
pub async fn wait_until_ready(readiness: &userstream::http::Readiness, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let failing = not_ready(readiness).await;
        if failing.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{failing:?} not ready 120 s after {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
