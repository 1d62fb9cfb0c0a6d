//! Fault injection a real broker can't give cheaply, on librdkafka's in-process mock cluster:
//! a 300 ms broker round trip, so that a SIGKILL reliably lands while a relay batch waits for
//! its acknowledgements. Everything else runs on real Kafka (`tests/kafka.rs`).

mod support;

use rdkafka::mocking::MockCluster;
use std::time::Duration;
use support::kafka::{config_file, published, relay_checkpoint};
use support::wait_until;
use userstream::bus::kafka::KafkaOptions;

/// `userstream run` SIGKILLed while it ingests and relays, then started again on the same data
/// directory: ingest finishes where it stopped, the relay republishes at most its unacknowledged
/// batch, and every user is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_killed_mid_relay_republishes_at_most_one_batch() {
    const RELAY_BATCH: usize = 500;
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("users_created", 6, 1).unwrap();
    cluster.create_topic("users_created.dlq", 1, 1).unwrap();
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config_file = config_file(
        dir.path(),
        &format!("listen = \"127.0.0.1:{port}\""),
        &cluster.bootstrap_servers(),
        "users_created",
        RELAY_BATCH,
    );
    let run = move |args: &[&str]| {
        let mut command = support::userstream_bin();
        command
            .arg("-q")
            .arg("--config")
            .arg(&config_file)
            .args(["run", "--batch-size", "500"])
            .args(args);
        command
    };

    // 20,000 users at 2,000/s, acknowledged only after a 300 ms round trip: the kill lands while
    // ingest is under way and a relay batch is waiting for its acknowledgements.
    cluster
        .broker_round_trip_time(1, Duration::from_millis(300))
        .unwrap();
    let mut first = run(&["--rate", "2000", "--max-users", "20000"])
        .spawn()
        .unwrap();
    wait_until("2,000 users relayed", || {
        relay_checkpoint(dir.path(), "users_created") >= 2000
    })
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let (logged_at_kill, _) = support::log_uuids(dir.path());
    assert!(logged_at_kill < 20_000, "killed before ingest finished");
    cluster.broker_round_trip_time(1, Duration::ZERO).unwrap();

    let status = tokio::task::spawn_blocking(move || {
        // max_users counts on the log's stored cursor: the restart ingests only what is left.
        run(&["--interval", "0s", "--max-users", "20000"])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());

    let (records, logged) = support::log_uuids(dir.path());
    assert_eq!(records, 20_000);
    assert_eq!(
        logged.len(),
        records,
        "every logged record is a distinct user"
    );
    assert_eq!(support::store_ids(dir.path()), logged);
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        ..KafkaOptions::default()
    };
    let published = published(&options, "users_created") as usize;
    assert!(
        published >= records && published - records <= RELAY_BATCH,
        "{published} messages for {records} logged users: a record went missing, or more than \
         the one unacknowledged batch was republished"
    );
}
