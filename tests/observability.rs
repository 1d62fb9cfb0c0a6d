//! Metrics for real: a Prometheus server (Debian's `prometheus`) scrapes a running userstream
//! and what it reads back through its query API matches the store; the shipped scrape config
//! and alert rules pass `promtool`. (That every metric the dashboard and the rules query is
//! exported is checked on a Kafka run, in `tests/kafka.rs`.)

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::prometheus::{PROMTOOL, Prometheus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_counts_that_match_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let users = 2_000;
    let ingest = support::userstream_bin()
        .args(["-q", "--data-dir"])
        .arg(dir.path())
        .args(["ingest", "--batch-size", "500", "--max-users", "2000"])
        .output()
        .unwrap();
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let http = format!("127.0.0.1:{}", support::free_port());
    let mut process = support::userstream_bin()
        .env("USERSTREAM_HTTP__LISTEN", &http)
        .args(["-q", "--data-dir"])
        .arg(dir.path())
        .args(["process", "--follow"])
        .spawn()
        .unwrap();
    let prometheus = Prometheus::start(std::slice::from_ref(&http)).await;

    let stored = "sum(userstream_records_stored_total)";
    let deadline = Instant::now() + Duration::from_secs(120);
    while prometheus.value(stored).await != Some(users as f64) {
        assert!(
            Instant::now() < deadline,
            "Prometheus never read {users} stored records: {:?}",
            prometheus.value(stored).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let store = dir.path().join("store.db");
    assert_eq!(support::count(&store, "created_users"), users);
    for (query, want) in [
        (
            r#"sum(userstream_records_received_total{component="processor"})"#,
            users as f64,
        ),
        ("sum(userstream_records_dead_lettered_total)", 0.0),
        ("max(userstream_log_end_position)", users as f64),
        (
            r#"max(userstream_reader_position{reader="processor"})"#,
            users as f64,
        ),
        (
            "sum(userstream_end_to_end_latency_seconds_count)",
            users as f64,
        ),
        (r#"max(up{job="userstream"})"#, 1.0),
    ] {
        assert_eq!(prometheus.value(query).await, Some(want), "{query}");
    }
    support::interrupt(&process);
    assert!(process.wait().unwrap().success());
}

#[test]
fn the_shipped_prometheus_config_and_alert_rules_pass_promtool() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    for (what, file) in [("rules", "alerts.yml"), ("config", "prometheus.yml")] {
        let out = std::process::Command::new(PROMTOOL)
            .args(["check", what])
            .arg(deploy.join(file))
            .output()
            .unwrap_or_else(|e| panic!("running {PROMTOOL} (apt-get install prometheus): {e}"));
        assert!(
            out.status.success(),
            "promtool check {what} {file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `/readyz`'s probes on the embedded defaults, where taking a dependency away means taking its
/// SQLite file: each file removed, or replaced (as a restore from backup renames a copy over
/// it), is named with what happened, and the others stay ready. The process could not tell
/// otherwise: its open connections go on writing to the old file, which no one opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_each_embedded_file_taken_away() {
    use figment::providers::{Format, Toml};
    let dir = tempfile::tempdir().unwrap();
    let mut config = userstream::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    config.jobs = vec![
        figment::Figment::from(Toml::string(
            "name = \"hourly\"\nevery = \"1h\"\nusers = 10\n",
        ))
        .extract()
        .unwrap(),
    ];
    let readiness = userstream::pipeline::endpoints::readiness(&config)
        .await
        .unwrap();
    assert_eq!(support::not_ready(&readiness).await, Vec::<&str>::new());

    std::fs::remove_file(config.store_path()).unwrap();
    assert_eq!(support::not_ready(&readiness).await, ["store"]);
    let copy = dir.path().join("log.db.restored");
    std::fs::copy(config.log_path(), &copy).unwrap();
    std::fs::rename(&copy, config.log_path()).unwrap();
    assert_eq!(support::not_ready(&readiness).await, ["log", "store"]);
    std::fs::remove_file(config.meta_path()).unwrap();
    assert_eq!(
        support::not_ready(&readiness).await,
        ["log", "store", "history"]
    );

    let reasons: std::collections::HashMap<_, _> = readiness.check().await.into_iter().collect();
    let reason = |name: &str| reasons[name].clone().unwrap_err();
    assert!(
        reason("store").contains("store.db was removed"),
        "{}",
        reason("store")
    );
    assert!(
        reason("log").contains("log.db was replaced"),
        "{}",
        reason("log")
    );
    assert!(
        reason("history").contains("meta.db was removed"),
        "{}",
        reason("history")
    );
}
