//! `cargo bench --bench kafka`: the whole Kafka path (ingest -> log -> relay -> Avro on Kafka ->
//! consumer group -> store) against librdkafka's in-process mock cluster, with 1 and with 3
//! consumer-group members. The mock brokers share the process and its cores, so the figures
//! measure our path's overhead, not a real cluster.
//!
//! `USERSTREAM_BENCH_USERS` sets the size (default 100000).

use rdkafka::mocking::MockCluster;
use std::sync::Arc;
use userstream::bench::{BenchOptions, run_bench};
use userstream::config::Config;
use userstream::registry::{RegistryStore, server};

fn main() {
    let users: u64 = std::env::var("USERSTREAM_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RegistryStore::open(&dir.path().join("registry.db")).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let registry_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, server::router(store)).await });
        let cluster = MockCluster::new(3).unwrap();
        for processors in [1, 3] {
            let topic = format!("users_created.bench{processors}");
            cluster.create_topic(&topic, 6, 3).unwrap();
            cluster.create_topic(&format!("{topic}.dlq"), 1, 3).unwrap();
            let mut config = Config::default();
            config.kafka.brokers = Some(cluster.bootstrap_servers());
            config.registry.url = Some(registry_url.clone());
            config.apply_registry();
            config.kafka.topic = topic.clone();
            config.kafka.dlq_topic = format!("{topic}.dlq");
            config.kafka.group_id = format!("{topic}-group");
            config.kafka.processors = processors;
            let data = tempfile::tempdir().unwrap();
            let options = BenchOptions {
                users,
                rate: None,
                data_dir: data.path().to_path_buf(),
            };
            let report = run_bench(&config, &options).await.unwrap();
            println!("{report}\n");
        }
    });
}
