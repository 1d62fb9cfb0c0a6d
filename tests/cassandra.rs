//! Cassandra as the store, against an in-process CQL server (kassandra) speaking the native
//! protocol to the real `scylla` driver.
//!
//! kassandra answers a full-table scan with at most 4999 rows and no paging, so every test keeps
//! below that to count exactly (a real cluster pages through any size).

mod support;

use kassandra_tester::KassandraTester;
use kassandra_tester::kassandra::KassandraSession;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::tcp_proxy::TcpProxy;
use tokio_util::sync::CancellationToken;
use userstream::config::Config;
use userstream::pipeline::{open_store, run_pipeline};
use userstream::sink::UserQuery;

fn config(data_dir: &Path, nodes: Option<SocketAddr>, users: u64) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.ingest.batch_size = 500;
    config.ingest.interval = Duration::ZERO;
    config.ingest.seed = Some("cql".into());
    config.ingest.max_users = Some(users);
    config.store.cassandra = nodes.map(|a| a.to_string());
    // kassandra has no system.peers schema versions to agree on.
    config.cassandra.await_schema_agreement = false;
    config
}

/// Runs `test` (given the server's address) while the in-process CQL server serves, on a task
/// of its own so the test's blocking calls never stall the server.
async fn with_cassandra<F, Fut>(test: F)
where
    F: FnOnce(SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut test = Some(test);
    KassandraTester::new(KassandraSession::new())
        .in_scope(|addr| {
            let test = test.take().expect("one scope");
            async move {
                tokio::spawn(test(addr)).await.expect("test panicked");
                Ok::<(), ()>(())
            }
        })
        .await
        .unwrap();
}

fn assert_same_rows(want: &Config, got: &Config, users: u64) {
    let (want, got) = (open_store(want).unwrap(), open_store(got).unwrap());
    assert_eq!(got.count().unwrap(), users);
    for row in want.latest(users as usize).unwrap() {
        assert_eq!(
            got.get(row.id).unwrap().as_ref(),
            Some(&row),
            "field by field"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_in_cassandra_match_the_embedded_store_field_by_field() {
    with_cassandra(|addr| async move {
        let users = 4_500;
        let reference = tempfile::tempdir().unwrap();
        let want = config(reference.path(), None, users);
        run_pipeline(&want, CancellationToken::new(), false)
            .await
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let got = config(dir.path(), Some(addr), users);
        got.validate().unwrap();
        let summary = run_pipeline(&got, CancellationToken::new(), false)
            .await
            .unwrap();
        assert_eq!(
            (summary.process.rows, summary.process.dead_letters),
            (users, 0)
        );
        assert_same_rows(&want, &got, users);
        assert_eq!(open_store(&got).unwrap().latest(10).unwrap().len(), 10);

        // Running again over the same log writes nothing new: the position is in Cassandra.
        let again = run_pipeline(&got, CancellationToken::new(), false)
            .await
            .unwrap();
        assert_eq!(again.process.records, 0);
        assert_eq!(open_store(&got).unwrap().count().unwrap(), users);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cassandra_outage_makes_the_pipeline_wait_and_lose_nothing() {
    with_cassandra(|addr| async move {
        let proxy = TcpProxy::start(addr).await;
        let users = 4_500;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), Some(proxy.addr), users);
        cfg.ingest.rate = Some(2_000.0);
        cfg.cassandra.write_attempts = 2;
        let run = tokio::spawn({
            let cfg = cfg.clone();
            async move { run_pipeline(&cfg, CancellationToken::new(), false).await }
        });
        let log = dir.path().join("log.db");
        let logged = || support::count(&log, "raw_records");
        wait_until("the first pages", || logged() >= 1_000).await;
        proxy.set_down(true);
        let at_outage = logged();
        wait_until("ingest to go on during the outage", || {
            logged() >= at_outage + 1_000
        })
        .await;
        proxy.set_down(false);
        let summary = run.await.unwrap().expect("the run rides out the outage");
        assert_eq!(summary.process.rows, users);
        let store = open_store(&cfg).unwrap();
        assert_eq!(store.count().unwrap(), users);
        let (_, distinct) = support::log_uuids(dir.path());
        assert_eq!(distinct.len() as u64, users);
    })
    .await;
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_a_cassandra_store_then_restart_gives_the_same_result() {
    with_cassandra(|addr| async move {
        let users = 4_500;
        let reference = tempfile::tempdir().unwrap();
        let want = config(reference.path(), None, users);
        run_pipeline(&want, CancellationToken::new(), false)
            .await
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let got = config(dir.path(), Some(addr), users);
        let path = dir.path().to_path_buf();
        let run = move || {
            Command::new(env!("CARGO_BIN_EXE_userstream"))
                .args(["-q", "--data-dir"])
                .arg(&path)
                .args([
                    "run",
                    "--seed",
                    "cql",
                    "--batch-size",
                    "500",
                    "--rate",
                    "2000",
                ])
                .args(["--max-users", &users.to_string()])
                .env("USERSTREAM_STORE__CASSANDRA", addr.to_string())
                .env("USERSTREAM_CASSANDRA__AWAIT_SCHEMA_AGREEMENT", "false")
                .spawn()
                .unwrap()
        };
        let mut child = tokio::task::spawn_blocking({
            let run = run.clone();
            move || run()
        })
        .await
        .unwrap();
        let store =
            userstream::sink::CassandraStore::open(&addr.to_string(), &got.cassandra).unwrap();
        wait_until("rows before the kill", || store.count().unwrap() >= 1_500).await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(store.count().unwrap() < users);
        let status = tokio::task::spawn_blocking(move || run().wait().unwrap())
            .await
            .unwrap();
        assert!(status.success());
        assert_same_rows(&want, &got, users);
        let (logged, _) = support::log_uuids(dir.path());
        assert_eq!(logged as u64, users);
    })
    .await;
}
