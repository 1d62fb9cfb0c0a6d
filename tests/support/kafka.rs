//! The Kafka scenarios, run against real Apache Kafka (`support/kafka_cluster.rs`): the shared
//! single-node cluster, or a cluster of their own where a test kills a broker. Each test has its
//! own topics and consumer group, named after it.

use super::kafka_cluster::KafkaCluster;
use super::python::python;
use super::wait_until;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use userstream::avro::USER_SCHEMA;
use userstream::bus::kafka::topics::ensure_topics;
use userstream::bus::kafka::{KafkaOptions, KafkaProcessor, Relay};
use userstream::ingest::{Ingestor, PageSettings, Schedule, run_schedule};
use userstream::log::{AppendSignal, RawLog, SqliteLog};
use userstream::registry::{RegistryClient, RegistryStore, server};
use userstream::sink::{SqliteStore, UserQuery};
use userstream::source::GeneratorSource;
use userstream::telemetry::ProcessedCounts;

/// The shared single-node cluster, started off the test's runtime (start-up blocks).
pub async fn shared_cluster() -> &'static KafkaCluster {
    tokio::task::spawn_blocking(KafkaCluster::shared)
        .await
        .unwrap()
}

/// A cluster of its own with `brokers` nodes, for a test that kills one.
pub async fn own_cluster(brokers: usize) -> Arc<KafkaCluster> {
    Arc::new(
        tokio::task::spawn_blocking(move || KafkaCluster::start(brokers))
            .await
            .unwrap(),
    )
}

/// Short consumer-group timeouts, so a killed member's partitions move on within seconds (the
/// broker's `group.min.session.timeout.ms` is 6 s).
pub const GROUP_TIMEOUTS: [(&str, &str); 2] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
];

/// Writes `userstream.toml` for `userstream` processes on `brokers`: data in `dir`, the given
/// `[registry]` line, the relay/consumer batch size and [`GROUP_TIMEOUTS`].
pub fn config_file(
    dir: &Path,
    registry: &str,
    brokers: &str,
    topic: &str,
    batch_size: usize,
) -> PathBuf {
    let timeouts: String = GROUP_TIMEOUTS
        .iter()
        .map(|(k, v)| format!("{k:?} = {v:?}\n"))
        .collect();
    let path = dir.join("userstream.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {:?}\n[registry]\n{registry}\n[kafka]\nbrokers = {brokers:?}\n\
             topic = {topic:?}\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{topic}-group\"\n\
             batch_size = {batch_size}\n[kafka.consumer_properties]\n{timeouts}",
            dir.display().to_string(),
        ),
    )
    .unwrap();
    path
}

/// Options for `cluster` with a fresh registry and topics named after `name`, made to exist
/// through `ensure_topics` (CreateTopics, since they are missing; a second call leaves them
/// alone): six partitions, replicated as the cluster allows, as asserted from the metadata.
pub async fn options_with_topics(cluster: &KafkaCluster, dir: &Path, name: &str) -> KafkaOptions {
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        registry_url: registry(dir).await,
        topic: format!("users_created.{name}"),
        dlq_topic: format!("users_created.{name}.dlq"),
        group_id: format!("{name}-group"),
        replication: cluster.replication(),
        partitions: 6,
        consumer_properties: GROUP_TIMEOUTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..KafkaOptions::default()
    };
    let consumer: BaseConsumer = options.client_config(&[]).create().unwrap();
    let exists = |name: &str| {
        let metadata = consumer
            .fetch_metadata(Some(name), Duration::from_secs(30))
            .unwrap();
        metadata.topics()[0].error().is_none()
    };
    assert!(!exists(&options.topic), "the topic starts missing");
    ensure_topics(&options).await.unwrap();
    ensure_topics(&options).await.unwrap(); // existing topics are left alone
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .unwrap();
    let topic = |name: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .unwrap_or_else(|| panic!("topic {name} was not created"))
    };
    assert_eq!(topic(&options.topic).partitions().len(), 6);
    assert_eq!(topic(&options.dlq_topic).partitions().len(), 1);
    for partition in topic(&options.topic).partitions() {
        assert_eq!(partition.replicas().len() as i32, cluster.replication());
    }
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
        Arc::new(log),
        &settings,
        "run".into(),
        AppendSignal::new(),
    )
    .await
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
/// Its dead letters go to `dir/store.db`, where the consumers' go.
pub async fn relay(dir: &Path, options: &KafkaOptions) -> Relay {
    let schema_id = RegistryClient::new(&options.registry_url)
        .register(&options.subject(), USER_SCHEMA)
        .await
        .unwrap();
    Relay::new(
        Arc::new(SqliteLog::open(&dir.join("log.db")).unwrap()),
        Arc::new(SqliteStore::open(&dir.join("store.db")).unwrap()),
        options,
        schema_id,
    )
    .unwrap()
}

/// A processor (one consumer-group member) storing into `dir/store.db`, run on a task of its
/// own until `cancel`.
pub fn spawn_processor(
    dir: &Path,
    options: &KafkaOptions,
    cancel: &CancellationToken,
) -> (
    tokio::task::JoinHandle<Result<(), userstream::bus::kafka::KafkaPathError>>,
    Arc<userstream::telemetry::ProcessTally>,
) {
    let store = SqliteStore::open(&dir.join("store.db")).unwrap();
    let mut processor = KafkaProcessor::new(Arc::new(store), options).unwrap();
    let tally = processor.tally();
    let cancel = cancel.clone();
    (
        tokio::spawn(async move { processor.run(&cancel).await }),
        tally,
    )
}

/// Relays the whole log on a task of its own; answers how many records it sent.
pub fn spawn_relay(mut relay: Relay) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut relayed = 0;
        loop {
            let n = relay.relay_batch().await.unwrap();
            if n == 0 {
                return relayed;
            }
            relayed += n;
        }
    })
}

/// The relay's checkpoint in `dir/log.db`: how far the log is acknowledged by the brokers.
/// Read straight from the file, so that it can be polled from a plain closure.
pub fn relay_checkpoint(dir: &Path, topic: &str) -> u64 {
    let name = userstream::bus::kafka::relay::checkpoint_name(topic);
    rusqlite::Connection::open_with_flags(
        dir.join("log.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .and_then(|conn| {
        conn.query_row(
            "SELECT position FROM checkpoints WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
    })
    .map_or(0, |p| p as u64)
}

/// Messages on `topic` (the sum of its partitions' end offsets), as `audit` counts them.
pub fn published(options: &KafkaOptions, topic: &str) -> i64 {
    userstream::bus::kafka::topics::end_offsets(options, topic).unwrap() as i64
}

/// The first message on the dead-letter topic, read from the start: its payload and headers.
pub async fn first_dead_letter(options: &KafkaOptions) -> (Vec<u8>, BTreeMap<String, String>) {
    let dlq: StreamConsumer = options
        .consumer_config(&[
            ("group.id", "dlq-reader"),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    dlq.subscribe(&[&options.dlq_topic]).unwrap();
    let letter = tokio::time::timeout(Duration::from_secs(60), dlq.recv())
        .await
        .unwrap()
        .unwrap();
    let headers = letter
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
    (letter.payload().unwrap().to_vec(), headers)
}

/// End to end with exact counts and normal batching: 10,000 users relayed in batches of 2,000,
/// a poison message from a foreign producer in the middle of the topic; the consumer group
/// stores every user exactly once and dead-letters the poison with headers naming the error and
/// where it came from.
pub async fn exact_counts_and_poison(cluster: &KafkaCluster, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options_with_topics(cluster, dir.path(), name).await;
    options.batch_size = 2000;
    let users = 10_000;
    ingest(dir.path(), users).await;
    let mut relay = relay(dir.path(), &options).await;
    assert_eq!(relay.relay_batch().await.unwrap(), 2000);

    // A poison message from someone else's producer, between two relay batches.
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
    assert_eq!(spawn_relay(relay).await.unwrap() as u64, users - 2000);

    let cancel = CancellationToken::new();
    let (run, tally) = spawn_processor(dir.path(), &options, &cancel);
    wait_until("every user stored", || {
        super::count(&dir.path().join("store.db"), "created_users") == users
    })
    .await;
    wait_until("the poison message dead-lettered", || {
        tally.processed().dead_letters == 1
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let (_, logged) = super::log_uuids(dir.path());
    assert_eq!(super::store_ids(dir.path()), logged);
    assert_eq!(published(&options, &options.topic), users as i64 + 1);

    let (payload, headers) = first_dead_letter(&options).await;
    assert_eq!(payload, b"{\"not\": \"avro\"}");
    assert!(headers["error"].contains("magic byte 123"), "{headers:?}");
    assert!(
        headers["source.log_id"].starts_with(&format!("kafka:{}:", options.topic)),
        "{headers:?}"
    );
    assert!(headers["source.log_seq"].parse::<u64>().is_ok());
    // The same dead letter, once, in the store: what `dlq list` shows in Kafka mode.
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    let letters = store.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, headers["error"]);
    assert_eq!(letters[0].record, "{\"not\": \"avro\"}");
    assert_eq!(letters[0].log_seq.to_string(), headers["source.log_seq"]);
    // A consumer's progress is its committed offsets alone: no second position in the store,
    // which nothing would read.
    assert_eq!(
        super::count(&dir.path().join("store.db"), "consumer_positions"),
        0
    );
}

/// A broker SIGKILLed while the relay publishes and a consumer group stores. With `restart`
/// (a single-node cluster) it is started again on the same data directory, and the relay and
/// the consumer reconnect by themselves. On a
/// cluster of three (replication 3, `min.insync.replicas=2`) the others carry on without it.
/// Either way every user is stored exactly once and none is missing from the topic.
pub async fn broker_killed_mid_run(cluster: Arc<KafkaCluster>, name: &str, restart: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options_with_topics(&cluster, dir.path(), name).await;
    options.batch_size = 1000;
    let users = 40_000;
    ingest(dir.path(), users).await;
    let cancel = CancellationToken::new();
    let (run, _) = spawn_processor(dir.path(), &options, &cancel);
    let relay_task = spawn_relay(relay(dir.path(), &options).await);
    let checkpoint = || relay_checkpoint(dir.path(), &options.topic);
    // `/readyz`'s probes for this configuration, connected while the broker is up.
    let readiness = userstream::pipeline::endpoints::readiness(&path_config(dir.path(), &options))
        .await
        .unwrap();
    assert_eq!(super::not_ready(&readiness).await, Vec::<&str>::new());
    wait_until("a quarter relayed", || checkpoint() >= users / 4).await;
    cluster.kill(0);
    let at_kill = checkpoint();
    assert!(at_kill < users, "killed mid-relay");
    if restart {
        // With its only broker down, the cluster is not ready, and readiness says which part.
        assert_eq!(super::not_ready(&readiness).await, ["bus"]);
        let restarting = cluster.clone();
        tokio::task::spawn_blocking(move || restarting.restart(0))
            .await
            .unwrap();
        super::wait_until_ready(&readiness, "the broker restarted").await;
    }
    assert_eq!(
        relay_task.await.unwrap() as u64,
        users,
        "the relay waited out the dead broker and sent every record"
    );
    let store = dir.path().join("store.db");
    wait_until("every user stored, or the processor stopped", || {
        super::count(&store, "created_users") == users || run.is_finished()
    })
    .await;
    assert!(!run.is_finished(), "the processor stopped: {:?}", run.await);
    cancel.cancel();
    run.await.unwrap().unwrap();
    let (_, logged) = super::log_uuids(dir.path());
    assert_eq!(super::store_ids(dir.path()), logged);
    let on_topic = published(&options, &options.topic);
    assert!(
        on_topic >= users as i64,
        "{on_topic} messages on the topic for {users} users: a record was lost"
    );
}

/// Three `userstream process` processes share six partitions as one consumer group; one is
/// SIGKILLed mid-stream. The survivors take its partitions over by themselves once its session
/// times out, and every record is stored exactly once.
pub async fn three_processors_one_killed(cluster: &KafkaCluster, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options_with_topics(cluster, dir.path(), name).await;
    options.batch_size = 500;
    let config_file = config_file(
        dir.path(),
        &format!("url = {:?}", options.registry_url),
        &cluster.bootstrap_servers(),
        &options.topic,
        500,
    );
    let spawn = || {
        super::userstream_bin()
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
    let relay_task = spawn_relay(relay(dir.path(), &options).await);

    let store = dir.path().join("store.db");
    wait_until("a quarter stored", || {
        super::count(&store, "created_users") >= users / 4
    })
    .await;
    let mut killed = processes.remove(0);
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    relay_task.await.unwrap();
    wait_until("every user stored by the survivors", || {
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
pub async fn python_client_reads_and_writes_our_topic(cluster: &KafkaCluster, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let options = options_with_topics(cluster, dir.path(), name).await;
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
        KafkaProcessor::new(Arc::new(SqliteStore::open(&store_path).unwrap()), &options).unwrap();
    let cancel = CancellationToken::new();
    let drained = CancellationToken::new();
    drained.cancel();
    processor.run_until(&cancel, &drained).await.unwrap();
    let store = SqliteStore::open(&store_path).unwrap();
    assert_eq!(store.count().await.unwrap(), 1200);
    let from_python: serde_json::Value = serde_json::from_str(&page[0]).unwrap();
    let from_python = from_python["login"]["uuid"].as_str().unwrap();
    assert!(
        store
            .get(from_python.parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

/// The schema registry unreachable when a consumer that has no schema cached yet starts (as a
/// `process` started during a registry restart): it backs off and retries, commits nothing, and
/// once the registry is back stores every user, dead-lettering none.
pub async fn registry_outage_dead_letters_nothing(cluster: &KafkaCluster, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options_with_topics(cluster, dir.path(), name).await;
    let users = 3_000;
    ingest(dir.path(), users).await;
    assert_eq!(
        spawn_relay(relay(dir.path(), &options).await)
            .await
            .unwrap() as u64,
        users
    );
    // The consumer reaches the registry only through a proxy, which is down.
    let registry: std::net::SocketAddr = options
        .registry_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = super::tcp_proxy::TcpProxy::start(registry).await;
    proxy.set_down(true);
    options.registry_url = format!("http://{}", proxy.addr);

    let cancel = CancellationToken::new();
    let (run, tally) = spawn_processor(dir.path(), &options, &cancel);
    wait_until("the consumer retried the unreachable registry", || {
        tally.registry_retries() >= 2
    })
    .await;
    let watch = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    assert_eq!(watch.count().await.unwrap(), 0);
    assert_eq!(tally.processed().dead_letters, 0);

    proxy.set_down(false);
    wait_until("every user stored", || {
        super::count(&dir.path().join("store.db"), "created_users") == users
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(tally.processed().dead_letters, 0);
    assert_eq!(published(&options, &options.dlq_topic), 0);
}

/// A record the embedded path dead-letters (a duplicated `login`, which a JSON-to-Avro encoder
/// would quietly resolve to one copy) is dead-lettered on the Kafka path too, by the relay, for
/// the same reason, and the others are stored.
pub async fn the_relay_validates_as_the_processor_does(cluster: &KafkaCluster, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let options = options_with_topics(cluster, dir.path(), name).await;
    let mut records = super::redacted_users(name, 3);
    let login = serde_json::from_str::<serde_json::Value>(&records[1]).unwrap()["login"].clone();
    records[1] = records[1].replacen('{', &format!(r#"{{"login":{login},"#), 1);
    let embedded = userstream::process::transform(&records[1], chrono::Utc::now()).unwrap_err();
    let log = SqliteLog::open(&dir.path().join("log.db")).unwrap();
    log.append(userstream::log::AppendBatch {
        run_id: "run",
        source: "test",
        fetched_at_micros: chrono::Utc::now().timestamp_micros(),
        records: records.clone(),
        cursor: None,
    })
    .await
    .unwrap();
    assert_eq!(
        spawn_relay(relay(dir.path(), &options).await)
            .await
            .unwrap(),
        3
    );
    assert_eq!(published(&options, &options.topic), 2);
    assert_eq!(published(&options, &options.dlq_topic), 1);

    // The relay's dead letters carry the consumer's header schema: the reason and the source key.
    let headers = first_dead_letter(&options).await.1;
    let log_id = SqliteLog::open(&dir.path().join("log.db"))
        .unwrap()
        .log_id()
        .to_owned();
    assert_eq!(headers["source.log_id"], log_id, "{headers:?}");
    assert_eq!(headers["source.log_seq"], "2", "{headers:?}");
    let error = headers["error"].clone();
    assert_eq!(error, embedded.to_string());
    assert!(error.contains("duplicate field `login`"), "{error}");
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    let letters = store.dead_letters(10).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0].log_seq, &letters[0].reason), (2, &error));
}

/// `dlq redrive` on the Kafka path: a message written with a schema id the registry did not know
/// yet is dead-lettered (in the store, where `dlq` reads, and on the topic); once the schema is
/// registered, re-driving decodes it with the consumer's own decoding and stores the user.
pub async fn redrive_after_the_schema_is_registered(cluster: &KafkaCluster, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let options = options_with_topics(cluster, dir.path(), name).await;
    let users = 1000; // one page
    ingest(dir.path(), users).await;
    assert_eq!(
        spawn_relay(relay(dir.path(), &options).await)
            .await
            .unwrap() as u64,
        users
    );
    // A producer ahead of its registration: schema id 2 does not exist yet.
    let late = super::redacted_users("late", 1).pop().unwrap();
    let (payload, key) = userstream::avro::encode_user_keyed(2, &late).unwrap();
    let producer: FutureProducer = options.client_config(&[]).create().unwrap();
    producer
        .send(
            FutureRecord::to(&options.topic)
                .key(&key.unwrap())
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let (run, tally) = spawn_processor(dir.path(), &options, &cancel);
    let watch = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    wait_until("every user stored and the late one dead-lettered", || {
        super::count(&dir.path().join("store.db"), "created_users") == users
            && tally.processed().dead_letters == 1
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let letters = watch.dead_letters(10).await.unwrap();
    assert!(
        letters[0].reason.contains("unknown schema id 2"),
        "{letters:?}"
    );

    // The same schema with a doc string is a new schema: id 2, and the same binary layout.
    let mut v2: serde_json::Value = serde_json::from_str(USER_SCHEMA).unwrap();
    v2["doc"] = "users, as registered by the late producer".into();
    let id = RegistryClient::new(&options.registry_url)
        .register("late-value", &v2.to_string())
        .await
        .unwrap();
    assert_eq!(id, 2);

    // No registry is running for this data directory (the embedded one is only served while a
    // `run` is up, and its port here answers nothing): redrive reads `registry.db` itself.
    let env = [
        ("USERSTREAM_KAFKA__BROKERS", cluster.bootstrap_servers()),
        (
            "USERSTREAM_REGISTRY__LISTEN",
            format!("127.0.0.1:{}", super::free_port()),
        ),
    ];
    let command = userstream(dir.path(), &env)
        .args(["dlq", "redrive"])
        .output();
    let out = command.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 dead letters re-driven: 1 stored"),
        "{stderr}"
    );
    assert_eq!(watch.count().await.unwrap(), users + 1);
    assert_eq!(watch.dead_letter_count().await.unwrap(), 0);
    let late_id: uuid::Uuid =
        serde_json::from_str::<serde_json::Value>(&late).unwrap()["login"]["uuid"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    assert!(watch.get(late_id).await.unwrap().is_some());
}

/// The environment of a `userstream` command on the Kafka path of `cluster`: topics and group
/// named after `name`, the embedded registry on a free port.
pub fn run_env(cluster: &KafkaCluster, name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("USERSTREAM_KAFKA__BROKERS", cluster.bootstrap_servers()),
        ("USERSTREAM_KAFKA__TOPIC", format!("users_created.{name}")),
        (
            "USERSTREAM_KAFKA__DLQ_TOPIC",
            format!("users_created.{name}.dlq"),
        ),
        ("USERSTREAM_KAFKA__GROUP_ID", format!("{name}-group")),
        (
            "USERSTREAM_REGISTRY__LISTEN",
            format!("127.0.0.1:{}", super::free_port()),
        ),
    ]
}

/// `userstream -q --data-dir DIR` with `env`; the caller adds the command.
pub fn userstream(dir: &Path, env: &[(&'static str, String)]) -> std::process::Command {
    let mut command = super::userstream_bin();
    command
        .args(["-q", "--data-dir"])
        .arg(dir)
        .envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Waits for `child` to exit; past `limit` it is killed and the test fails, saying `what`.
pub async fn exit_status(
    child: &mut std::process::Child,
    limit: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The configuration of a Kafka-path process on `dir` using `options` (and their registry).
pub fn path_config(dir: &Path, options: &KafkaOptions) -> userstream::config::Config {
    let mut config = userstream::config::Config {
        data_dir: dir.to_path_buf(),
        kafka: options.clone(),
        ..Default::default()
    };
    config.registry.url = Some(options.registry_url.clone());
    config.apply_registry();
    config
}
