//! The Kafka path against librdkafka's mock cluster (in-process brokers speaking the real
//! protocol): relay from the raw log, consumer group into the store, dead letters, broker outage.

mod support;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::python::python;
use tokio_util::sync::CancellationToken;
use userstream::avro::USER_SCHEMA;
use userstream::bus::kafka::{KafkaOptions, KafkaProcessor, Relay};
use userstream::ingest::{Ingestor, PageSettings, Schedule, run_schedule};
use userstream::log::{AppendSignal, SqliteLog};
use userstream::registry::{RegistryClient, RegistryStore, server};
use userstream::sink::{SqliteStore, UserQuery};
use userstream::source::GeneratorSource;

async fn registry(dir: &std::path::Path) -> String {
    let store = Arc::new(RegistryStore::open(&dir.join("registry.db")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, server::router(store)).await });
    url
}

async fn ingest(dir: &std::path::Path, users: u64) {
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

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_consumer_group_and_dead_letters_store_every_user_exactly_once() {
    let cluster = MockCluster::new(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        registry_url: registry(dir.path()).await,
        batch_size: 2000,
        replication: 3,
        ..KafkaOptions::default()
    };
    // The mock cluster has no CreateTopics API: create them there, and check that existing
    // topics are left alone.
    cluster.create_topic("users_created", 6, 3).unwrap();
    cluster.create_topic("users_created.dlq", 1, 3).unwrap();
    userstream::bus::kafka::topics::ensure_topics(&options)
        .await
        .unwrap();
    let users = 10_000;
    ingest(dir.path(), users).await;
    let schema_id = RegistryClient::new(&options.registry_url)
        .register(&options.subject(), USER_SCHEMA)
        .await
        .unwrap();

    // Broker outage in the middle of relaying: records wait in the log, then go out.
    let mut relay = Relay::new(
        SqliteLog::open(&dir.path().join("log.db")).unwrap(),
        &options,
        schema_id,
    )
    .unwrap();
    assert_eq!(relay.relay_batch().await.unwrap(), 2000);
    for broker in 1..=3 {
        cluster.broker_down(broker).unwrap();
    }
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
        !outage.is_finished(),
        "nothing can be acknowledged while every broker is down"
    );
    for broker in 1..=3 {
        cluster.broker_up(broker).unwrap();
    }
    assert_eq!(outage.await.unwrap() as u64, users - 2000);

    // A poison message from someone else's producer.
    let producer: FutureProducer = options.client_config(&[]).create().unwrap();
    producer
        .send(
            FutureRecord::to("users_created")
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
        stats
            .dead_letters
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let (_, logged) = support::log_uuids(dir.path());
    assert_eq!(support::store_ids(dir.path()), logged);

    let dlq: StreamConsumer = options
        .client_config(&[
            ("group.id", "dlq-reader"),
            ("auto.offset.reset", "earliest"),
        ])
        .create()
        .unwrap();
    dlq.subscribe(&["users_created.dlq"]).unwrap();
    let letter = tokio::time::timeout(Duration::from_secs(30), dlq.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(letter.payload().unwrap(), b"{\"not\": \"avro\"}");
    let headers: Vec<(String, String)> = letter
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
    let header = |k: &str| {
        headers
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert!(header("error").contains("magic byte 123"), "{headers:?}");
    assert_eq!(header("source.topic"), "users_created");
    assert!(
        header("source.partition").parse::<i32>().is_ok()
            && header("source.offset").parse::<i64>().is_ok()
    );
}

/// Three `userstream process` processes share six partitions as one consumer group; one is
/// SIGKILLed mid-stream. Every record is still stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processors_one_killed_store_every_record_exactly_once() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic("users_created", 6, 3).unwrap();
    cluster.create_topic("users_created.dlq", 1, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry_url = registry(dir.path()).await;
    let config_file = dir.path().join("userstream.toml");
    std::fs::write(
        &config_file,
        format!(
            "data_dir = {:?}\n[kafka]\nbrokers = {:?}\nregistry_url = {registry_url:?}\nbatch_size = 500\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n",
            dir.path().display().to_string(),
            cluster.bootstrap_servers()
        ),
    )
    .unwrap();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_userstream"))
            .arg("-q")
            .arg("--config")
            .arg(&config_file)
            .args(["process", "--follow"])
            .spawn()
            .unwrap()
    };
    let mut processes = [spawn(), spawn(), spawn()];

    let users = 20_000;
    ingest(dir.path(), users).await;
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        registry_url,
        batch_size: 1000,
        ..KafkaOptions::default()
    };
    let schema_id = RegistryClient::new(&options.registry_url)
        .register(&options.subject(), USER_SCHEMA)
        .await
        .unwrap();
    let mut relay = Relay::new(
        SqliteLog::open(&dir.path().join("log.db")).unwrap(),
        &options,
        schema_id,
    )
    .unwrap();
    let relay_task = tokio::spawn(async move { while relay.relay_batch().await.unwrap() > 0 {} });

    let store = dir.path().join("store.db");
    wait_until("a quarter stored", || {
        support::count(&store, "created_users") >= users / 4
    })
    .await;
    processes[0].kill().unwrap(); // SIGKILL
    processes[0].wait().unwrap();
    relay_task.await.unwrap();
    wait_until("every user stored", || {
        support::count(&store, "created_users") == users
    })
    .await;
    for child in &mut processes[1..] {
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let (_, logged) = support::log_uuids(dir.path());
    assert_eq!(support::store_ids(dir.path()), logged);
    assert_eq!(support::count(&store, "created_users"), users);
}

/// The Python `confluent-kafka` client reads our topic through our registry, and what it
/// produces with its AvroSerializer is processed by us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_confluent_client_reads_and_writes_our_topic() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("users_created", 3, 1).unwrap();
    cluster.create_topic("users_created.dlq", 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        registry_url: registry(dir.path()).await,
        ..KafkaOptions::default()
    };
    ingest(dir.path(), 1000).await;
    let schema_id = RegistryClient::new(&options.registry_url)
        .register(&options.subject(), USER_SCHEMA)
        .await
        .unwrap();
    let mut relay = Relay::new(
        SqliteLog::open(&dir.path().join("log.db")).unwrap(),
        &options,
        schema_id,
    )
    .unwrap();
    while relay.relay_batch().await.unwrap() > 0 {}

    let (url, brokers) = (options.registry_url.clone(), cluster.bootstrap_servers());
    let read = tokio::task::spawn_blocking(move || {
        python(
            &["topic-consume", &url, &brokers, "users_created", "1000"],
            "",
        )
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
        support::log_uuids(dir.path()).1,
        "Python read every user we published"
    );

    // Python produces 200 other users with its AvroSerializer; we store all 1200.
    let mut page = Vec::new();
    userstream::source::generator::write_page(
        &mut page,
        "from-python",
        1,
        200,
        &Default::default(),
    )
    .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    let lines: String = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            userstream::model::redact::redact_credentials(
                &serde_json::value::to_raw_value(u).unwrap(),
            ) + "\n"
        })
        .collect();
    let schema_file = dir.path().join("user.avsc");
    std::fs::write(&schema_file, USER_SCHEMA).unwrap();
    let (url, brokers, schema) = (
        options.registry_url.clone(),
        cluster.bootstrap_servers(),
        schema_file.display().to_string(),
    );
    tokio::task::spawn_blocking(move || {
        python(
            &["topic-produce", &url, &brokers, "users_created", &schema],
            &lines,
        )
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
    let from_python = page["results"][0]["login"]["uuid"].as_str().unwrap();
    assert!(store.get(from_python.parse().unwrap()).unwrap().is_some());
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
                .env(
                    "USERSTREAM_KAFKA__REGISTRY_URL",
                    format!("http://127.0.0.1:{port}"),
                )
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
