//! The Kafka path against real Apache Kafka 4.3 in KRaft mode (`support/kafka_cluster.rs`):
//! one shared single-node cluster, and clusters of their own for the tests that kill a broker.
//! The scenarios are in `support/kafka.rs`.

mod support;

use support::kafka::{
    broker_killed_mid_run, exact_counts_and_poison, exit_status, own_cluster, published,
    python_client_reads_and_writes_our_topic, redrive_after_the_schema_is_registered,
    registry_outage_dead_letters_nothing, run_env, shared_cluster,
    the_relay_validates_as_the_processor_does, three_processors_one_killed, userstream,
};
use userstream::bus::kafka::KafkaOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_with_a_poison_message_dead_lettered() {
    exact_counts_and_poison(shared_cluster().await, "exact").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processors_one_killed_the_survivors_store_every_record_exactly_once() {
    three_processors_one_killed(shared_cluster().await, "three").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_confluent_client_reads_and_writes_our_topic() {
    python_client_reads_and_writes_our_topic(shared_cluster().await, "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_killed_and_restarted_on_its_data_loses_nothing() {
    broker_killed_mid_run(own_cluster(1).await, "restarted", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_brokers_killed_with_acks_all_and_min_isr_2_loses_nothing() {
    broker_killed_mid_run(own_cluster(3).await, "replicated", false).await;
}

/// `userstream run` with only brokers configured: it creates its missing topics, serves its own
/// registry, relays through Kafka and stores every user, then exits at `--max-users`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_creates_its_topics_and_uses_its_embedded_registry() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut run = userstream(dir.path(), &run_env(cluster, "run"));
    run.args(["run", "--batch-size", "500", "--interval", "0s"])
        .args(["--max-users", "3000"]);
    let status = tokio::task::spawn_blocking(move || run.status().unwrap())
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
    let options = KafkaOptions {
        brokers: Some(brokers),
        ..KafkaOptions::default()
    };
    let on_topic = tokio::task::spawn_blocking(move || published(&options, "users_created.run"));
    assert_eq!(
        on_topic.await.unwrap(),
        3000,
        "created by run, holding every user once"
    );
}

/// `userstream run` on Kafka at a steady rate, where the consumer sits idle in `recv` between
/// pages, ends by itself once `--max-users` are stored. (It used to wait for a message that
/// never came: starting the drain did not wake an idle member.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_a_steady_rate_ends_once_max_users_are_stored() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = userstream(dir.path(), &run_env(cluster, "steady"))
        .args(["run", "--batch-size", "100", "--rate", "500"])
        .args(["--max-users", "1000"])
        .spawn()
        .unwrap();
    let status = exit_status(
        &mut child,
        // The bug this guards against hung for 45 s to 10 min; a drain takes a few seconds.
        std::time::Duration::from_secs(30),
        "run did not end within 30 s of starting a 2 s ingest",
    )
    .await;
    assert!(status.success());
    assert_eq!(
        support::count(&dir.path().join("store.db"), "created_users"),
        1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_is_waited_out_and_dead_letters_nothing() {
    registry_outage_dead_letters_nothing(shared_cluster().await, "registry_outage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_login_is_dead_lettered_on_the_kafka_path_too() {
    the_relay_validates_as_the_processor_does(shared_cluster().await, "duplicate_login").await;
}

/// `userstream run` on Kafka whose only processor fails (its store stays locked past every commit
/// attempt) ends with an error naming the processor, instead of fetching and publishing on for
/// nobody. (It used to run on: the consumer tasks were awaited only at shutdown.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_processor_ends_run_with_an_error_naming_it() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = userstream(dir.path(), &run_env(cluster, "supervised"))
        .args(["run", "--batch-size", "100", "--rate", "500"])
        .env("USERSTREAM_PROCESS__COMMIT_ATTEMPTS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let store = dir.path().join("store.db");
    support::wait_until("rows being stored", || {
        support::count(&store, "created_users") > 0
    })
    .await;
    // Another writer holds the store from here on.
    let lock = rusqlite::Connection::open(&store).unwrap();
    lock.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let status = exit_status(
        &mut child,
        std::time::Duration::from_secs(180),
        "run went on for 180 s with its only processor failed",
    )
    .await;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("processor 1 failed"), "{stderr}");
    drop(lock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_stores_a_message_once_its_schema_is_registered() {
    redrive_after_the_schema_is_registered(shared_cluster().await, "redrive").await;
}

/// The first Ctrl-C (SIGINT) on a Kafka `run` whose consumer sits idle between pages drains and
/// exits, with every logged user stored; `audit` then balances the log, the store and the
/// topic's end offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_drains_a_kafka_run_and_audit_balances_it() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let env = run_env(cluster, "ctrlc");
    let mut child = userstream(dir.path(), &env)
        .args(["run", "--batch-size", "50", "--rate", "200"])
        .spawn()
        .unwrap();
    let store = dir.path().join("store.db");
    support::wait_until("rows stored", || {
        support::count(&store, "created_users") >= 200
    })
    .await;
    support::interrupt(&child);
    let status = exit_status(
        &mut child,
        std::time::Duration::from_secs(30),
        "run still going 30 s after one Ctrl-C",
    )
    .await;
    assert!(status.success(), "{status}");
    let (records, _) = support::log_uuids(dir.path());
    assert_eq!(support::count(&store, "created_users"), records as u64);

    let audit = userstream(dir.path(), &env)
        .args(["audit", "-f", "json"])
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(report["missing_count"], 0);
    assert_eq!(report["topic"]["expected"], records);
    assert!(report["topic"]["end_offsets"].as_u64().unwrap() >= records as u64);
}

/// A Kafka `run` fetching from a local randomuser-compatible API serves `/healthz`, a `/readyz`
/// whose every dependency (log, store, bus, registry) answers, and a `/metrics` scrape that
/// holds every metric the shipped Grafana dashboard and Prometheus alert rules query, so
/// neither watches a name that is never exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_run_exports_every_metric_the_dashboard_and_alerts_use() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}/api/", api.local_addr().unwrap());
    tokio::spawn(userstream::http::serve(
        api,
        userstream::source::serve_api::router(),
        tokio_util::sync::CancellationToken::new(),
    ));
    let http = format!("127.0.0.1:{}", support::free_port());
    let mut child = userstream(dir.path(), &run_env(cluster, "metrics"))
        .env("USERSTREAM_HTTP__LISTEN", &http)
        // A budget for the local API too, so that its gauge is exported.
        .env("USERSTREAM_RANDOMUSER__USERS_PER_WINDOW", "1000000")
        .args([
            "run",
            "--url",
            &api_url,
            "--batch-size",
            "100",
            "--rate",
            "500",
        ])
        .spawn()
        .unwrap();
    let store = dir.path().join("store.db");
    support::wait_until("rows stored", || {
        support::count(&store, "created_users") >= 500
    })
    .await;
    let get = |path: &str| {
        let url = format!("http://{http}{path}");
        async move {
            let answer = reqwest::get(&url).await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    for dependency in ["log", "store", "bus", "registry"] {
        assert_eq!(ready["checks"][dependency], "ok", "{body}");
    }
    // Job metrics come with [[jobs]], which drive the embedded path: checked in tests/jobs.rs.
    let names: std::collections::BTreeSet<String> = support::metrics::queried_by_deploy_files()
        .into_iter()
        .filter(|name| !name.starts_with("userstream_job_"))
        .collect();
    assert!(names.len() > 10, "the dashboard and rules query metrics");
    // Consumer lag comes with librdkafka's statistics, every 5 s: scrape until every name is in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let scrape = get("/metrics").await.1;
        let exported = support::metrics::exported(&scrape);
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !exported.contains(name.as_str()))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "queried but not exported: {missing:?}\n{scrape}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    support::interrupt(&child);
    let status = exit_status(
        &mut child,
        std::time::Duration::from_secs(60),
        "run still going 60 s after one Ctrl-C",
    )
    .await;
    assert!(status.success(), "{status}");
}

/// `/readyz`'s registry probe: ready while the external registry answers, not ready naming the
/// registry alone once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_registry_when_it_is_gone() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry_url = format!("http://{}", listener.local_addr().unwrap());
    let schemas = std::sync::Arc::new(
        userstream::registry::RegistryStore::open(&dir.path().join("registry.db")).unwrap(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let registry = tokio::spawn(userstream::http::serve(
        listener,
        userstream::registry::server::router(schemas),
        stop.clone(),
    ));
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        registry_url,
        topic: "users_created.readiness".into(),
        dlq_topic: "users_created.readiness.dlq".into(),
        ..KafkaOptions::default()
    };
    userstream::bus::kafka::topics::ensure_topics(&options)
        .await
        .unwrap();
    let readiness = userstream::pipeline::endpoints::readiness(&support::kafka::path_config(
        dir.path(),
        &options,
    ))
    .await
    .unwrap();
    support::wait_until_ready(&readiness, "start-up").await;
    stop.cancel();
    registry.await.unwrap().unwrap();
    assert_eq!(support::not_ready(&readiness).await, ["registry"]);
}

/// The end-to-end Kafka path with `[registry] url` naming a registry that is not ours: Apicurio
/// Registry 2.4 through its Confluent-compatible API. `run` registers the value schema there,
/// the consumer resolves it by id from there, and every user is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_through_apicurio_registry() {
    let cluster = shared_cluster().await;
    let apicurio = tokio::task::spawn_blocking(support::apicurio::Apicurio::shared)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = run_env(cluster, "apicurio");
    env.push(("USERSTREAM_REGISTRY__URL", apicurio.ccompat_url()));
    let mut run = userstream(dir.path(), &env);
    run.args(["run", "--batch-size", "500", "--interval", "0s"])
        .args(["--max-users", "3000"]);
    let out = tokio::task::spawn_blocking(move || run.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        support::count(&dir.path().join("store.db"), "created_users"),
        3000
    );
    assert!(
        !dir.path().join("registry.db").exists(),
        "no embedded registry with an external one configured"
    );
    let subjects = reqwest::get(format!("{}/subjects", apicurio.ccompat_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        subjects.contains("users_created.apicurio-value"),
        "{subjects}"
    );
    let options = KafkaOptions {
        brokers: Some(cluster.bootstrap_servers()),
        ..KafkaOptions::default()
    };
    let on_topic =
        tokio::task::spawn_blocking(move || published(&options, "users_created.apicurio"));
    assert_eq!(on_topic.await.unwrap(), 3000);
}

/// `run` with `[[jobs]]` on the Kafka path: nothing is fetched until a run is triggered over
/// HTTP; the triggered run's users then travel log -> relay -> topic -> consumer -> store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triggered_job_run_travels_through_kafka_to_the_store() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(
        &config,
        "[ingest]\nbatch_size = 10\ninterval = \"0s\"\n\n[[jobs]]\nname = \"hourly\"\nevery = \"1h\"\nusers = 100\n",
    )
    .unwrap();
    let http = format!("127.0.0.1:{}", support::free_port());
    let mut child = userstream(dir.path(), &run_env(cluster, "jobs"))
        .env("USERSTREAM_HTTP__LISTEN", &http)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let trigger = format!("http://{http}/jobs/hourly/trigger?users=50");
    support::wait_for("the jobs endpoint", || {
        let (client, url) = (client.clone(), trigger.clone());
        async move {
            client
                .post(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 202)
        }
    })
    .await;
    let store = dir.path().join("store.db");
    support::wait_until("the run's users stored through Kafka", || {
        support::count(&store, "created_users") == 50
    })
    .await;
    let runs: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!("http://{http}/jobs/runs?job=hourly"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    assert_eq!(runs[0]["users_published"], 50);
    support::interrupt(&child);
    let status = exit_status(
        &mut child,
        std::time::Duration::from_secs(60),
        "run to drain",
    )
    .await;
    assert!(status.success());
    assert_eq!(support::count(&store, "created_users"), 50);
}
