//! The store's commit contract: rows, dead letters and position together; upserts by id.

use super::*;
use crate::process::transform;
use crate::sink::DeadLetter;

/// A user fetched at `second` seconds past the epoch.
fn row_at(uuid: &str, first: &str, second: i64) -> UserRow {
    let record = serde_json::json!({
        "gender": "male", "name": {"first": first, "last": "Smith"},
        "location": {"street": {"number": 1, "name": "High St"}, "city": "Leeds",
                     "state": "West Yorkshire", "country": "United Kingdom", "postcode": "LS1 4AP"},
        "email": "x@example.com", "login": {"uuid": uuid, "username": "u"},
        "dob": {"date": "1990-01-01T00:00:00.000Z"}, "registered": {"date": "2010-01-01T00:00:00.000Z"},
        "phone": "p", "picture": {"medium": "m"}
    });
    let fetched_at = chrono::DateTime::from_timestamp(second, 0).unwrap();
    transform(&record.to_string(), fetched_at).unwrap()
}

fn row(uuid: &str, first: &str) -> UserRow {
    row_at(uuid, first, 1_700_000_000)
}

const A: &str = "7a0eed16-9430-4d68-901f-c0d4c1c3bf00";
const B: &str = "0b7e6a38-8f1b-4f4e-9c1c-2b1a2c3d4e5f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_idempotent_and_keeps_position_per_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    assert_eq!(store.position("log").await.unwrap(), None);
    let rows = [row(A, "Ann"), row(B, "Bob")];
    let dead = [DeadLetter {
        log_seq: 3,
        reason: "r".into(),
        record: "{}".into(),
    }];
    for _ in 0..2 {
        store
            .commit(Commit {
                rows: rows.as_slice().into(),
                dead_letters: &dead,
                log_id: "log",
                position: Some(3),
            })
            .await
            .unwrap();
    }
    assert_eq!(store.count().await.unwrap(), 2);
    assert_eq!(store.dead_letter_count().await.unwrap(), 1);
    assert_eq!(store.position("log").await.unwrap(), Some(3));
    assert_eq!(store.position("other").await.unwrap(), None);
    assert_eq!(
        store.get(rows[0].id).await.unwrap().as_ref(),
        Some(&rows[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_write_wins_and_queries_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    let first = [row_at(A, "Ann", 1), row_at(B, "Bob", 2)];
    store
        .commit(Commit {
            rows: first.as_slice().into(),
            dead_letters: &[],
            log_id: "l",
            position: Some(2),
        })
        .await
        .unwrap();
    assert_eq!(store.latest(1).await.unwrap()[0].first_name, "Bob");
    let again = [row_at(A, "Anna", 3)];
    store
        .commit(Commit {
            rows: again.as_slice().into(),
            dead_letters: &[],
            log_id: "l",
            position: Some(3),
        })
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 2);
    assert_eq!(
        store.get(first[0].id).await.unwrap().unwrap().first_name,
        "Anna"
    );
    // Latest by fetch time: A was fetched again after B.
    let latest: Vec<_> = store
        .latest(2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.first_name)
        .collect();
    assert_eq!(latest, ["Anna", "Bob"]);
    let uk = UserFilter {
        country: Some("united kingdom".into()),
        gender: Some("MALE".into()),
        limit: 10,
    };
    assert_eq!(store.filter(&uk).await.unwrap().len(), 2);
    let fr = UserFilter {
        country: Some("France".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(store.filter(&fr).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_store_gains_the_timestamp_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE created_users (id BLOB PRIMARY KEY, first_name TEXT NOT NULL,
                 last_name TEXT NOT NULL, gender TEXT NOT NULL, address TEXT NOT NULL,
                 post_code TEXT NOT NULL, email TEXT NOT NULL, username TEXT NOT NULL,
                 dob TEXT NOT NULL, registered_date TEXT NOT NULL, phone TEXT NOT NULL,
                 picture TEXT NOT NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        let old = row(A, "Ann");
        conn.execute(
            "INSERT INTO created_users VALUES (?1, 'Ann', 'S', 'male', 'a', 'p', 'e', 'u',
                 '1990-01-01T00:00:00.000Z', '2010-01-01T00:00:00.000Z', 'p', 'm')",
            [old.id.as_bytes()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let old = store.get(row(A, "Ann").id).await.unwrap().unwrap();
    assert_eq!(
        old.timestamp.timestamp(),
        0,
        "rows from before the column sort oldest"
    );
    let new = [row(B, "Bob")];
    store
        .commit(Commit {
            rows: new.as_slice().into(),
            dead_letters: &[],
            log_id: "l",
            position: Some(1),
        })
        .await
        .unwrap();
    assert_eq!(store.latest(1).await.unwrap()[0].first_name, "Bob");
}
