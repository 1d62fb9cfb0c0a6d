//! `cargo bench --bench kafka`: the whole Kafka path (ingest -> log -> relay -> Avro on Kafka ->
//! consumer group -> store) against a real Apache Kafka 4.3 broker (KRaft, one node, started from
//! its Maven Central jars exactly as the tests start it), with 1 and with 3
//! consumer-group members in this process. Broker and pipeline share the machine's cores.
//!
//! `USERSTREAM_BENCH_USERS` sets the size (default 100000); `USERSTREAM_BENCH_RATE` holds a rate
//! (users/s) instead of full speed; `USERSTREAM_BENCH_PROCESSORS` runs one count ("1" or "3");
//! `USERSTREAM_BENCH_STORE=cassandra` stores into a real Cassandra 5.0 node (started as the tests
//! start it) instead of the embedded SQLite store; both JVMs and the pipeline then share the cores.

#[path = "../tests/support/servers.rs"]
mod support;

use std::sync::Arc;
use support::cassandra::{Cassandra, Variant};
use support::kafka_cluster::KafkaCluster;
use userstream::bench::{BenchOptions, run_bench};
use userstream::config::Config;
use userstream::registry::{RegistryStore, server};

fn main() {
    let env = |key: &str| std::env::var(key).ok();
    let users: u64 = env("USERSTREAM_BENCH_USERS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rate: Option<f64> = env("USERSTREAM_BENCH_RATE").and_then(|v| v.parse().ok());
    let counts: Vec<usize> = match env("USERSTREAM_BENCH_PROCESSORS") {
        Some(n) => vec![n.parse().expect("USERSTREAM_BENCH_PROCESSORS is a number")],
        None => vec![1, 3],
    };
    let cassandra = match env("USERSTREAM_BENCH_STORE").as_deref() {
        None | Some("sqlite") => None,
        Some("cassandra") => Some(Cassandra::start(Variant::Plain)),
        Some(other) => panic!("USERSTREAM_BENCH_STORE={other:?}: expected sqlite or cassandra"),
    };
    let cluster = KafkaCluster::start(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RegistryStore::open(&dir.path().join("registry.db")).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let registry_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, server::router(store)).await });
        for processors in counts {
            let topic = format!("users_created.bench{processors}");
            let mut config = Config::default();
            config.kafka.brokers = Some(cluster.bootstrap_servers());
            config.registry.url = Some(registry_url.clone());
            config.apply_registry();
            config.kafka.topic = topic.clone();
            config.kafka.dlq_topic = format!("{topic}.dlq");
            config.kafka.group_id = format!("{topic}-group");
            config.kafka.processors = processors;
            if let Some(node) = &cassandra {
                config.store.cassandra = Some(node.address());
                config.cassandra = node.options(&format!("bench{processors}"));
            }
            let data = tempfile::tempdir().unwrap();
            let options = BenchOptions {
                users,
                rate,
                data_dir: data.path().to_path_buf(),
            };
            let report = run_bench(&config, &options).await.unwrap();
            let store = if cassandra.is_some() {
                "real Cassandra"
            } else {
                "embedded SQLite"
            };
            println!("real Kafka, {processors} processor(s), {store} store:\n{report}\n");
        }
    });
}
