//! The Kafka scenarios, written once and run against every kind of cluster the tests have:
//! librdkafka's in-process mock cluster (`tests/kafka.rs`) and a real Tansu broker process
//! (`tests/tansu.rs`).

use super::python::python;
use super::tansu::Tansu;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use userstream::avro::USER_SCHEMA;
use userstream::bus::kafka::topics::ensure_topics;
use userstream::bus::kafka::{KafkaOptions, KafkaProcessor, Relay};
use userstream::ingest::{Ingestor, PageSettings, Schedule, run_schedule};
use userstream::log::{AppendSignal, RawLog, SqliteLog};
use userstream::registry::{RegistryClient, RegistryStore, server};
use userstream::sink::{SqliteStore, UserQuery};
use userstream::source::GeneratorSource;

/// What a scenario needs from a cluster.
pub trait TestCluster {
    fn bootstrap_servers(&self) -> String;
    /// How many brokers hold a replica of each partition.
    fn replication(&self) -> i32;
    /// Creates the topics by the cluster's own means where our `ensure_topics` cannot (the mock
    /// cluster has no CreateTopics API); a no-op where it can.
    fn precreate_topics(&self, options: &KafkaOptions);
    /// Every broker unreachable (`true`) or back (`false`).
    fn set_down(&self, down: bool);
    /// Whether the group coordinator hands a dead member's partitions to the survivors once its
    /// session times out. Tansu 0.6.0's does not: it drops the member but keeps the group's
    /// generation, so the survivors keep their old assignments. There the scenario does what a
    /// supervisor would: once the coordinator has dropped the dead member, it starts a
    /// replacement process, whose join rebalances the group.
    fn reassigns_dead_members(&self) -> bool {
        true
    }
    /// Producer settings the cluster needs. Tansu 0.6.0 answers a fetch that starts inside a
    /// record batch from the next batch on, silently skipping the rest of that batch, which a
    /// consumer resuming from a committed offset hits (reproduced with the Python client: 3000
    /// records in 5 batches, a fetch at offset 499 returns 2498 records starting at 701). One
    /// record per batch keeps every offset a batch start there.
    fn producer_properties(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
}

impl TestCluster for MockCluster<'static, DefaultProducerContext> {
    fn bootstrap_servers(&self) -> String {
        MockCluster::bootstrap_servers(self)
    }
    fn replication(&self) -> i32 {
        3
    }
    fn precreate_topics(&self, options: &KafkaOptions) {
        self.create_topic(&options.topic, options.partitions, 3)
            .unwrap();
        self.create_topic(&options.dlq_topic, 1, 3).unwrap();
    }
    fn set_down(&self, down: bool) {
        for broker in 1..=3 {
            if down {
                self.broker_down(broker).unwrap();
            } else {
                self.broker_up(broker).unwrap();
            }
        }
    }
}

impl TestCluster for Tansu {
    fn bootstrap_servers(&self) -> String {
        Tansu::bootstrap_servers(self)
    }
    fn replication(&self) -> i32 {
        1
    }
    fn precreate_topics(&self, _: &KafkaOptions) {}
    fn set_down(&self, down: bool) {
        Tansu::set_down(self, down);
    }
    fn reassigns_dead_members(&self) -> bool {
        false
    }
    fn producer_properties(&self) -> Vec<(&'static str, &'static str)> {
        vec![("batch.num.messages", "1")]
    }
}

/// A mock cluster of three brokers.
pub fn mock_cluster() -> MockCluster<'static, DefaultProducerContext> {
    MockCluster::new(3).unwrap()
}

/// Short consumer-group timeouts, so a killed member's partitions move on within seconds
/// (Tansu needs them to let members join at all).
pub const GROUP_TIMEOUTS: [(&str, &str); 2] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
];

/// Writes `userstream.toml` for `userstream` processes on `brokers`: data in `dir`, the given
/// `[registry]` line, the relay/consumer batch size and [`GROUP_TIMEOUTS`].
pub fn config_file(dir: &Path, registry: &str, brokers: &str, batch_size: usize) -> PathBuf {
    let timeouts: String = GROUP_TIMEOUTS
        .iter()
        .map(|(k, v)| format!("{k:?} = {v:?}\n"))
        .collect();
    let path = dir.join("userstream.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n[registry]\n{registry}\n[kafka]\nbrokers = {brokers:?}\n\
             batch_size = {batch_size}\n[kafka.consumer_properties]\n{timeouts}",
            dir.display().to_string(),
        ),
    )
    .unwrap();
    path
}

/// Options for `cluster` with a fresh registry, and the topics made to exist through
/// `ensure_topics` (for real on a broker with CreateTopics): six partitions, as asserted.
pub async fn options_with_topics(cluster: &impl TestCluster, dir: &Path) -> KafkaOptions {
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        registry_url: registry(dir).await,
        replication: cluster.replication(),
        partitions: 6,
        consumer_properties: GROUP_TIMEOUTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        producer_properties: cluster
            .producer_properties()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..KafkaOptions::default()
    };
    cluster.precreate_topics(&options);
    ensure_topics(&options).await.unwrap();
    ensure_topics(&options).await.unwrap(); // existing topics are left alone
    let consumer: StreamConsumer = options.client_config(&[]).create().unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .unwrap();
    let partitions = |name: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .map_or(0, |t| t.partitions().len())
    };
    assert_eq!(partitions(&options.topic), 6);
    assert_eq!(partitions(&options.dlq_topic), 1);
    options
}

/// Our Schema Registry on a free port, storing into `dir`.
pub async fn registry(dir: &Path) -> String {
    let store = Arc::new(RegistryStore::open(&dir.join("registry.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, server::router(store)).await });
    url
}

/// Generates `users` users into `dir/log.db`.
pub async fn ingest(dir: &Path, users: u64) {
    let log = SqliteLog::open(&dir.join("log.db")).unwrap();
    let settings = PageSettings {
        batch_size: 1000,
        seed: Some("kafka".into()),
        nat: vec![],
    };
    let mut ingestor = Ingestor::new(
        GeneratorSource::new(),
        log,
        &settings,
        "run".into(),
        AppendSignal::new(),
    )
    .unwrap();
    let schedule = Schedule {
        interval: Duration::ZERO,
        max_users: Some(users),
        max_pages: None,
        stop_on_error: true,
    };
    run_schedule(&mut ingestor, &schedule, &CancellationToken::new())
        .await
        .unwrap();
}

/// A relay from `dir/log.db`, with the schema registered.
pub async fn relay(dir: &Path, options: &KafkaOptions) -> Relay<SqliteLog> {
    let schema_id = RegistryClient::new(&options.registry_url)
        .register(&options.subject(), USER_SCHEMA)
        .await
        .unwrap();
    Relay::new(
        SqliteLog::open(&dir.join("log.db")).unwrap(),
        options,
        schema_id,
    )
    .unwrap()
}

pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// End to end with exact counts: relay through a broker outage, a poison message from a foreign
/// producer, the consumer group stores every user exactly once and dead-letters the poison with
/// headers naming the error and where it came from.
pub async fn outage_poison_and_exact_counts(cluster: &impl TestCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options_with_topics(cluster, dir.path()).await;
    options.batch_size = 2000;
    let users = 10_000;
    ingest(dir.path(), users).await;
    let mut relay = relay(dir.path(), &options).await;
    assert_eq!(relay.relay_batch().await.unwrap(), 2000);

    // Broker outage in the middle of relaying: records wait in the log, then go out.
    cluster.set_down(true);
    let checkpoint = || {
        SqliteLog::open(&dir.path().join("log.db"))
            .unwrap()
            .checkpoint(&Relay::<SqliteLog>::checkpoint_name(&options.topic))
            .unwrap()
    };
    let before = checkpoint();
    let outage = tokio::spawn(async move {
        let mut relayed = 0;
        loop {
            let n = relay.relay_batch().await.unwrap();
            if n == 0 {
                return relayed;
            }
            relayed += n;
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await; // let the producer hit the dead brokers
    assert!(
        !outage.is_finished() && checkpoint() == before,
        "nothing can be acknowledged while every broker is down"
    );
    cluster.set_down(false);
    assert_eq!(outage.await.unwrap() as u64, users - 2000);

    // A poison message from someone else's producer.
    let producer: FutureProducer = options.client_config(&[]).create().unwrap();
    producer
        .send(
            FutureRecord::to(&options.topic)
                .key("x")
                .payload("{\"not\": \"avro\"}"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    let store_path = dir.path().join("store.db");
    let mut processor =
        KafkaProcessor::new(SqliteStore::open(&store_path).unwrap(), &options).unwrap();
    let stats = processor.stats();
    let cancel = CancellationToken::new();
    let run = {
        let cancel = cancel.clone();
        tokio::spawn(async move { processor.run(&cancel).await })
    };
    let watch = SqliteStore::open(&store_path).unwrap();
    wait_until("every user stored", || watch.count().unwrap() == users).await;
    wait_until("the poison message dead-lettered", || {
        stats.dead_letters.load(Relaxed) == 1
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let (_, logged) = super::log_uuids(dir.path());
    assert_eq!(super::store_ids(dir.path()), logged);

    let dlq: StreamConsumer = options
        .client_config(&[
            ("group.id", "dlq-reader"),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    dlq.subscribe(&[&options.dlq_topic]).unwrap();
    let letter = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(letter.payload().unwrap(), b"{\"not\": \"avro\"}");
    let headers: BTreeMap<String, String> = letter
        .headers()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h.key.to_owned(),
                String::from_utf8_lossy(h.value.unwrap()).into_owned(),
            )
        })
        .collect();
    assert!(headers["error"].contains("magic byte 123"), "{headers:?}");
    assert_eq!(headers["source.topic"], options.topic);
    assert!(
        headers["source.partition"].parse::<i32>().is_ok()
            && headers["source.offset"].parse::<i64>().is_ok()
    );
}

/// Three `userstream process` processes share six partitions as one consumer group; one is
/// SIGKILLed mid-stream. Every record is still stored exactly once.
pub async fn three_processors_one_killed(cluster: &impl TestCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options_with_topics(cluster, dir.path()).await;
    options.batch_size = 500;
    let config_file = config_file(
        dir.path(),
        &format!("url = {:?}", options.registry_url),
        &cluster.bootstrap_servers(),
        500,
    );
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_userstream"))
            .arg("-q")
            .arg("--config")
            .arg(&config_file)
            .args(["process", "--follow"])
            .spawn()
            .unwrap()
    };
    let mut processes = vec![spawn(), spawn(), spawn()];

    let users = 20_000;
    ingest(dir.path(), users).await;
    let mut relay = relay(dir.path(), &options).await;
    let relay_task = tokio::spawn(async move { while relay.relay_batch().await.unwrap() > 0 {} });

    let store = dir.path().join("store.db");
    wait_until("a quarter stored", || {
        super::count(&store, "created_users") >= users / 4
    })
    .await;
    let mut killed = processes.remove(0);
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    if !cluster.reassigns_dead_members() {
        let admin: StreamConsumer = options.client_config(&[]).create().unwrap();
        wait_until("the dead member dropped from the group", || {
            tokio::task::block_in_place(|| {
                admin
                    .fetch_group_list(Some(&options.group_id), Duration::from_secs(10))
                    .is_ok_and(|list| list.groups().iter().all(|g| g.members().len() == 2))
            })
        })
        .await;
        processes.push(spawn());
    }
    relay_task.await.unwrap();
    wait_until("every user stored", || {
        super::count(&store, "created_users") == users
    })
    .await;
    for child in &mut processes {
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let (_, logged) = super::log_uuids(dir.path());
    assert_eq!(super::store_ids(dir.path()), logged);
    assert_eq!(super::count(&store, "created_users"), users);
}

/// The Python `confluent-kafka` client reads our topic through our registry, and what it
/// produces with its AvroSerializer is processed by us.
pub async fn python_client_reads_and_writes_our_topic(cluster: &impl TestCluster) {
    let dir = tempfile::tempdir().unwrap();
    let options = options_with_topics(cluster, dir.path()).await;
    ingest(dir.path(), 1000).await;
    let mut relay = relay(dir.path(), &options).await;
    while relay.relay_batch().await.unwrap() > 0 {}

    let (url, brokers, topic) = (
        options.registry_url.clone(),
        cluster.bootstrap_servers(),
        options.topic.clone(),
    );
    let read = tokio::task::spawn_blocking(move || {
        python(&["topic-consume", &url, &brokers, &topic, "1000"], "")
    })
    .await
    .unwrap();
    let theirs: std::collections::BTreeSet<String> = read
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["login"]["uuid"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        theirs,
        super::log_uuids(dir.path()).1,
        "Python read every user we published"
    );

    // Python produces 200 other users with its AvroSerializer; we store all 1200.
    let page = super::redacted_users("from-python", 200);
    let lines: String = page.iter().map(|u| u.clone() + "\n").collect();
    let schema_file = dir.path().join("user.avsc");
    std::fs::write(&schema_file, USER_SCHEMA).unwrap();
    let (url, brokers, topic, schema) = (
        options.registry_url.clone(),
        cluster.bootstrap_servers(),
        options.topic.clone(),
        schema_file.display().to_string(),
    );
    tokio::task::spawn_blocking(move || {
        python(&["topic-produce", &url, &brokers, &topic, &schema], &lines)
    })
    .await
    .unwrap();

    let store_path = dir.path().join("store.db");
    let mut processor =
        KafkaProcessor::new(SqliteStore::open(&store_path).unwrap(), &options).unwrap();
    let cancel = CancellationToken::new();
    let drained = CancellationToken::new();
    drained.cancel();
    processor.run_until(&cancel, &drained).await.unwrap();
    let store = SqliteStore::open(&store_path).unwrap();
    assert_eq!(store.count().unwrap(), 1200);
    let from_python: serde_json::Value = serde_json::from_str(&page[0]).unwrap();
    let from_python = from_python["login"]["uuid"].as_str().unwrap();
    assert!(store.get(from_python.parse().unwrap()).unwrap().is_some());
}
