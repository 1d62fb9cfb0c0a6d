//! The Kafka path against a real Kafka-compatible broker process: Tansu (in-memory storage),
//! started per test on a free port. Unlike the mock cluster it creates topics through the
//! CreateTopics API and runs consumer groups over real sockets; the scenarios are the same as
//! `tests/kafka.rs`'s (`support/kafka.rs`).

mod support;

use support::kafka::{
    outage_poison_and_exact_counts, python_client_reads_and_writes_our_topic,
    three_processors_one_killed,
};
use support::tansu::Tansu;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_outage_poison_and_exact_counts() {
    outage_poison_and_exact_counts(&Tansu::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processors_one_killed_store_every_record_exactly_once() {
    three_processors_one_killed(&Tansu::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_confluent_client_reads_and_writes_our_topic() {
    python_client_reads_and_writes_our_topic(&Tansu::start().await).await;
}
