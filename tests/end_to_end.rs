//! 10,000 users over HTTP from the local randomuser.me-compatible server, through the client, the
//! log and the processor into the store; then a replay with duplicates and poison records.

mod support;

use std::collections::BTreeSet;
use support::{all_bytes, log_uuids, store_ids};
use tokio_util::sync::CancellationToken;
use userstream::config::{Config, SourceKind};
use userstream::log::{AppendBatch, AppendSignal, RawLog, SqliteLog};
use userstream::model::row::COLUMNS;
use userstream::pipeline::run_pipeline;
use userstream::process::{Processor, transform};
use userstream::sink::{SqliteStore, UserQuery};
use userstream::source::serve_api;

const USERS: u64 = 10_000;
const PAGE: u32 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_is_stored_exactly_once_and_no_credential_is_kept() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/1.4/", listener.local_addr().unwrap());
    tokio::spawn(userstream::http::serve(
        listener,
        serve_api::router(),
        tokio_util::sync::CancellationToken::new(),
    ));

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.ingest.source = SourceKind::Randomuser;
    config.randomuser.url = url.clone();
    config.randomuser.users_per_window = Some(0);
    config.ingest.batch_size = PAGE;
    config.ingest.interval = std::time::Duration::ZERO;
    config.ingest.seed = Some("e2e".into());
    config.ingest.max_users = Some(USERS);
    config.validate().unwrap();

    // Fetch times are kept to the millisecond.
    let started_at = userstream::model::row::fetch_timestamp(chrono::Utc::now().timestamp_micros());
    let summary = run_pipeline(&config, CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(summary.ingest.users, USERS);
    assert_eq!(summary.process.rows, USERS);
    assert_eq!(summary.process.dead_letters, 0);

    // The same pages straight from the server, credentials and all: the expected rows, and the
    // secrets that must be nowhere on disk.
    let http = reqwest::Client::new();
    let mut originals = Vec::new();
    for page in 1..=USERS / u64::from(PAGE) {
        let response = http
            .get(format!("{url}?results={PAGE}&seed=e2e&page={page}"))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        originals.extend(body["results"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(originals.len() as u64, USERS);

    let store = SqliteStore::open(&config.store_path()).unwrap();
    assert_eq!(store.count().await.unwrap(), USERS);
    let ran_until = chrono::Utc::now();
    for original in &originals {
        let id = transform(&original.to_string(), ran_until).unwrap().id;
        let stored = store.get(id).await.unwrap().expect("user stored");
        // Stamped with the time its page was fetched, during the run.
        assert!(
            stored.timestamp >= started_at && stored.timestamp <= ran_until,
            "timestamp {} outside the run",
            stored.timestamp
        );
        let expected = transform(&original.to_string(), stored.timestamp).unwrap();
        assert_eq!(stored, expected, "columns {COLUMNS:?}");
    }

    let bytes = all_bytes(dir.path());
    for key in [
        "\"password\"",
        "\"salt\"",
        "\"md5\"",
        "\"sha1\"",
        "\"sha256\"",
    ] {
        assert!(
            !bytes.contains(key),
            "credential field {key} found in the data directory"
        );
    }
    for original in originals.iter().step_by(97) {
        for field in ["salt", "md5", "sha1", "sha256"] {
            let secret = original["login"][field].as_str().unwrap();
            assert!(
                !bytes.contains(secret),
                "login.{field} value {secret} found on disk"
            );
        }
    }

    // Replay: the first 500 records again, plus poison. Duplicates change nothing, poison goes
    // to the dead-letter table with its reason, and the rest of the batch is still stored.
    let log = SqliteLog::open(&config.log_path()).unwrap();
    let mut records: Vec<String> = log
        .read_after(0, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.record)
        .collect();
    records.extend([
        r#"{"name":{"first":"No","last":"Id"}}"#.to_owned(),
        "[1,2,3]".to_owned(),
        originals[0].to_string().replace(
            originals[0]["login"]["uuid"].as_str().unwrap(),
            "not-a-uuid",
        ),
    ]);
    log.append(AppendBatch {
        run_id: "replay",
        source: "test",
        fetched_at_micros: 0,
        records,
        cursor: None,
    })
    .await
    .unwrap();
    let signal = AppendSignal::new();
    signal.close();
    let reader = SqliteLog::open(&config.log_path()).unwrap();
    let sink = SqliteStore::open(&config.store_path()).unwrap();
    let replay = Processor::new(
        std::sync::Arc::new(reader),
        std::sync::Arc::new(sink),
        config.processor_config(),
    )
    .run(&signal)
    .await
    .unwrap();
    assert_eq!(
        (replay.records, replay.rows, replay.dead_letters),
        (503, 500, 3)
    );

    let (logged, logged_ids) = log_uuids(dir.path());
    assert_eq!(logged as u64, USERS + 503);
    let valid: BTreeSet<String> = logged_ids
        .into_iter()
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .collect();
    assert_eq!(
        store_ids(dir.path()),
        valid,
        "store holds exactly the distinct ids of the log"
    );
    assert_eq!(store.count().await.unwrap(), USERS);

    let reasons: BTreeSet<String> = store
        .dead_letters(10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.reason)
        .collect();
    let expected: BTreeSet<String> = [
        "login is missing".to_owned(),
        "not a JSON object: [1,2,3]".to_owned(),
        "login.uuid is not a valid UUID: \"not-a-uuid\"".to_owned(),
    ]
    .into();
    assert_eq!(reasons, expected);
}
