//! The Kafka path against librdkafka's mock cluster (in-process brokers speaking the real
//! protocol, with fault injection). The scenarios themselves are in `support/kafka.rs`, shared
//! with the real broker process in `tests/tansu.rs`.

mod support;

use rdkafka::mocking::MockCluster;
use support::kafka::{
    mock_cluster, outage_poison_and_exact_counts, python_client_reads_and_writes_our_topic,
    three_processors_one_killed,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_outage_poison_and_exact_counts() {
    outage_poison_and_exact_counts(&mock_cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processors_one_killed_store_every_record_exactly_once() {
    three_processors_one_killed(&mock_cluster()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_confluent_client_reads_and_writes_our_topic() {
    python_client_reads_and_writes_our_topic(&mock_cluster()).await;
}

/// `userstream run` with only brokers configured: it serves its own registry, relays through
/// Kafka and stores every user, then exits at `--max-users`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_uses_kafka_and_its_embedded_registry() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("users_created", 6, 1).unwrap();
    cluster.create_topic("users_created.dlq", 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = cluster.bootstrap_servers();
    let status = tokio::task::spawn_blocking({
        let data = dir.path().to_path_buf();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_userstream"))
                .args(["-q", "--data-dir"])
                .arg(&data)
                .args([
                    "run",
                    "--batch-size",
                    "500",
                    "--interval",
                    "0s",
                    "--max-users",
                    "3000",
                ])
                .env("USERSTREAM_KAFKA__BROKERS", brokers)
                .env("USERSTREAM_REGISTRY__LISTEN", format!("127.0.0.1:{port}"))
                .status()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(status.success());
    assert_eq!(
        support::count(&dir.path().join("store.db"), "created_users"),
        3000
    );
    assert!(
        dir.path().join("registry.db").exists(),
        "schemas kept durably by the embedded registry"
    );
}
