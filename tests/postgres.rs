//! PostgreSQL as the store and as the raw log, against a real server started for the test.

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use support::postgres::TestPostgres;
use tokio_util::sync::CancellationToken;
use userstream::config::Config;
use userstream::log::RawLog;
use userstream::pipeline::{open_log, open_store, run_pipeline};
use userstream::sink::UserFilter;

fn config(data_dir: &Path, users: u64) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.ingest.batch_size = 500;
    config.ingest.interval = Duration::ZERO;
    config.ingest.seed = Some("pg".into());
    config.ingest.max_users = Some(users);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_log_and_store_hold_the_same_rows_as_the_embedded_path() {
    let pg = TestPostgres::start();
    let users = 10_000;

    let embedded_dir = tempfile::tempdir().unwrap();
    let embedded = config(embedded_dir.path(), users);
    run_pipeline(&embedded, CancellationToken::new(), false)
        .await
        .unwrap();

    let pg_dir = tempfile::tempdir().unwrap();
    let mut remote = config(pg_dir.path(), users);
    remote.log.postgres = Some(pg.database("backup"));
    remote.store.postgres = Some(pg.database("store"));
    remote.validate().unwrap();
    let summary = run_pipeline(&remote, CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(
        (summary.process.rows, summary.process.dead_letters),
        (users, 0)
    );
    assert!(
        std::fs::read_dir(pg_dir.path()).unwrap().next().is_none(),
        "nothing written locally"
    );

    tokio::spawn(async move {
        let (w, g) = (
            open_store(&embedded).await.unwrap(),
            open_store(&remote).await.unwrap(),
        );
        assert_eq!(g.count().await.unwrap(), users);
        let everyone = w.latest(users as usize).await.unwrap();
        assert_eq!(everyone.len() as u64, users);
        // Two runs fetched the same users at different times: every column but that matches.
        for row in everyone {
            assert_eq!(
                g.get(row.id)
                    .await
                    .unwrap()
                    .map(support::without_fetch_time),
                Some(support::without_fetch_time(row)),
                "field by field"
            );
        }
        let filter = UserFilter {
            country: Some("germany".into()),
            gender: Some("male".into()),
            limit: 100_000,
        };
        let mut a: Vec<_> = w
            .filter(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut b: Vec<_> = g
            .filter(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        a.sort();
        b.sort();
        assert!(!a.is_empty());
        assert_eq!(a, b, "find answers the same on both stores");
        assert_eq!(g.dead_letter_count().await.unwrap(), 0);

        // `audit` pages through the PostgreSQL log and store (5,000 ids a page) and balances;
        // one row deleted behind its back is named.
        let log = open_log(&remote).await.unwrap();
        let report = userstream::audit::audit(log.as_ref(), g.as_ref(), None, 5)
            .await
            .unwrap();
        assert!(report.balanced(), "{report:?}");
        assert_eq!((report.log_users, report.stored_users), (users, users));
        let victim = a[0];
        let deleted = Command::new("psql")
            .arg(remote.store.postgres.as_deref().unwrap())
            .args([
                "-tAc",
                &format!("DELETE FROM created_users WHERE id = '{victim}'"),
            ])
            .status()
            .unwrap();
        assert!(deleted.success());
        let report = userstream::audit::audit(log.as_ref(), g.as_ref(), None, 5)
            .await
            .unwrap();
        assert!(!report.balanced());
        assert_eq!(report.missing_count, 1);
        assert_eq!(report.missing[0].0, victim.to_string());
    })
    .await
    .unwrap();
}

fn spawn_run(data_dir: &Path, env: &[(&str, String)], users: u64) -> Child {
    let mut command = support::userstream_bin();
    command
        .args(["-q", "--data-dir"])
        .arg(data_dir)
        .args([
            "run",
            "--seed",
            "pgcrash",
            "--batch-size",
            "500",
            "--rate",
            "3000",
        ])
        .args(["--max-users", &users.to_string()]);
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

fn pg_count(url: &str) -> u64 {
    let out = Command::new("psql")
        .args([url, "-tAc", "SELECT count(*) FROM created_users"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_store_outage_makes_the_pipeline_wait_and_lose_nothing() {
    let pg = TestPostgres::start();
    let store = pg.database("outage");
    let dir = tempfile::tempdir().unwrap();
    let users = 9_000;
    let mut child = spawn_run(
        dir.path(),
        &[("USERSTREAM_STORE__POSTGRES", store.clone())],
        users,
    );
    wait_until("first rows", || pg_count(&store) >= 1_000);
    pg.stop_server();
    // Ingest goes on into the local log while the store is away.
    let log_count = || support::count(&dir.path().join("log.db"), "raw_records");
    let before = log_count();
    wait_until("ingest to continue", || log_count() >= before + 1_500);
    pg.start_server();
    assert!(
        child.wait().unwrap().success(),
        "the run should ride out the outage"
    );
    assert_eq!(pg_count(&store), users);
    let (logged, distinct) = support::log_uuids(dir.path());
    assert_eq!((logged as u64, distinct.len() as u64), (users, users));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_postgres_log_and_store_then_restart_gives_the_same_result() {
    let pg = TestPostgres::start();
    let users = 10_000;
    let reference = tempfile::tempdir().unwrap();
    assert!(
        spawn_run(reference.path(), &[], users)
            .wait()
            .unwrap()
            .success()
    );

    let env = [
        ("USERSTREAM_STORE__POSTGRES", pg.database("crash_store")),
        ("USERSTREAM_LOG__POSTGRES", pg.database("crash_log")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_run(dir.path(), &env, users);
    wait_until("rows before the kill", || pg_count(&env[0].1) >= 3_000);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(pg_count(&env[0].1) < users);
    assert!(spawn_run(dir.path(), &env, users).wait().unwrap().success());

    let mut config = Config {
        data_dir: reference.path().to_path_buf(),
        ..Config::default()
    };
    let want = open_store(&config).await.unwrap();
    config.store.postgres = Some(env[0].1.clone());
    config.log.postgres = Some(env[1].1.clone());
    let got = open_store(&config).await.unwrap();
    assert_eq!(got.count().await.unwrap(), users);
    for row in want.latest(users as usize).await.unwrap() {
        assert_eq!(
            got.get(row.id)
                .await
                .unwrap()
                .map(support::without_fetch_time),
            Some(support::without_fetch_time(row))
        );
    }
    let log = open_log(&config).await.unwrap();
    assert_eq!(
        log.last_seq().await.unwrap(),
        users,
        "no page appended twice"
    );
}

/// TLS to PostgreSQL, for real: a server with `ssl=on` and a certificate the test made. Without
/// the certificate as `postgres.ca_file` the connection is refused as unverified; with it, every
/// user is stored over TLS, and the server reports the pipeline's connections as encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_verifies_the_server_and_encrypts() {
    let pg = TestPostgres::start_with_tls();
    pg.database("tls");
    let users = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), users);
    cfg.store.postgres = Some(pg.tls_url("tls"));

    let untrusted = cfg.clone();
    let refused = tokio::spawn(async move { open_store(&untrusted).await.err() })
        .await
        .unwrap()
        .expect("a self-signed server is refused without its certificate as ca_file");
    let refused = format!("{refused:#}");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");

    cfg.postgres.ca_file = Some(pg.tls.as_ref().unwrap().cert.clone());
    let summary = run_pipeline(&cfg, CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(summary.process.rows, users);

    let (url, plain) = (cfg.clone(), pg.url("tls"));
    tokio::spawn(async move {
        let store = open_store(&url).await.unwrap(); // holds a pooled connection open
        assert_eq!(store.count().await.unwrap(), users);
        let out = Command::new("psql")
            .args([
                plain.as_str(),
                "-tAc",
                "SELECT bool_and(s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a \
                 USING (pid) WHERE a.datname = 'tls' AND a.pid <> pg_backend_pid()",
            ])
            .output()
            .unwrap();
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let (all_tls, connections) = answer.split_once('|').unwrap();
        assert_eq!(all_tls, "t", "every pipeline connection is encrypted");
        assert!(connections.parse::<u32>().unwrap() >= 1);
    })
    .await
    .unwrap();
}

/// The API budget kept in a PostgreSQL log is one budget for every process using that log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_budget_is_shared_through_a_postgres_log() {
    let pg = TestPostgres::start();
    let url = pg.database("budget");
    let open = || async {
        userstream::log::PostgresLog::open(&url, &Default::default())
            .await
            .unwrap()
    };
    let (first, second) = (open().await, open().await);
    let window = Duration::from_secs(300);
    assert_eq!(
        first
            .spend_budget("randomuser.me", 600, 1000, window)
            .await
            .unwrap(),
        None
    );
    let wait = second
        .spend_budget("randomuser.me", 600, 1000, window)
        .await
        .unwrap()
        .expect("the other process spent the window");
    assert!(
        wait > Duration::from_secs(290) && wait <= window,
        "{wait:?}"
    );
    assert_eq!(
        second
            .spend_budget("randomuser.me", 400, 1000, window)
            .await
            .unwrap(),
        None
    );
    assert!(
        open()
            .await
            .spend_budget("randomuser.me", 1, 1000, window)
            .await
            .unwrap()
            .is_some()
    );
}

/// Two ingests into one PostgreSQL log would read one cursor and fetch every page twice: the
/// second is refused while the first holds the log's lock, and the lock goes with its holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ingest_into_a_postgres_log_is_refused() {
    use userstream::ingest::writer_lock::WriterLock;
    let pg = TestPostgres::start();
    let url = pg.database("locked");
    let first = WriterLock::acquire_postgres(&url, &Default::default())
        .await
        .unwrap();
    let err = WriterLock::acquire_postgres(&url, &Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already ingesting into the PostgreSQL log"),
        "{err}"
    );
    // The lock lives in the holder's session: once its connection is gone (the server sees
    // the socket close a moment later), the next ingest gets it.
    drop(first);
    support::wait_for("the lock to go with its holder", || async {
        WriterLock::acquire_postgres(&url, &Default::default())
            .await
            .is_ok()
    })
    .await;
}

/// `/readyz`'s probes with PostgreSQL as the log and the store: ready while the server is up,
/// not ready naming both while it is stopped, and ready again once it is back, on the same
/// probe connections (pooled, so they reconnect by themselves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_log_and_the_store_while_postgres_is_down() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), 100);
    config.log.postgres = Some(pg.database("ready_log"));
    config.store.postgres = Some(pg.database("ready_store"));
    config.scheduler.postgres = Some(pg.database("ready_history"));
    config.jobs = vec![toml_job()];
    let readiness = userstream::pipeline::endpoints::readiness(&config)
        .await
        .unwrap();
    assert_eq!(support::not_ready(&readiness).await, Vec::<&str>::new());
    tokio::task::block_in_place(|| pg.stop_server());
    assert_eq!(
        support::not_ready(&readiness).await,
        ["log", "store", "history"]
    );
    tokio::task::block_in_place(|| pg.start_server());
    support::wait_until_ready(&readiness, "PostgreSQL came back").await;
}

/// A job, as a configuration file gives it.
fn toml_job() -> userstream::scheduler::JobConfig {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(
        "name = \"hourly\"\nevery = \"1h\"\nusers = 100\n",
    ))
    .extract()
    .unwrap()
}

/// The run history's guarantees on PostgreSQL, with two pools standing for two processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_history_keeps_its_guarantees_on_postgres() {
    use userstream::scheduler::history::PostgresRunHistory;
    use userstream::scheduler::history::contract::*;
    let pg = TestPostgres::start();
    let url = pg.database("history");
    let options = userstream::postgres::PostgresOptions::default();
    let a = PostgresRunHistory::open(&url, &options).await.unwrap();
    let b = PostgresRunHistory::open(&url, &options).await.unwrap();
    a_slot_is_recorded_once_whoever_sees_it(&a, &b, "once").await;
    only_one_process_claims_and_a_busy_job_skips_new_slots(&a, &b, "claim").await;
    a_lapsed_lease_resumes_the_run_elsewhere_until_attempts_run_out(&a, &b, "lease").await;
    a_record_round_trips_every_field(&a, "fields").await;
    a_queued_run_can_be_cancelled_and_a_started_one_cannot(&a, "cancel").await;
    the_queue_is_capped_whoever_records(&a, &b, "cap").await;
}

/// `jobs runs` as JSON, through the binary.
fn job_runs(dir: &Path) -> Vec<serde_json::Value> {
    let out = support::userstream_bin()
        .current_dir(dir)
        .env_remove("USERSTREAM_CONFIG")
        .args(["-q", "jobs", "runs", "--format", "json", "--limit", "1000"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

fn succeeded(runs: &[serde_json::Value]) -> usize {
    runs.iter().filter(|r| r["status"] == "succeeded").count()
}

/// The run history in PostgreSQL goes down under a running scheduler and comes back: the
/// scheduler keeps going, and the slots that came due meanwhile are recorded, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_rides_out_a_stopped_history_database() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("userstream.toml"),
        format!(
            r#"data_dir = "data"

[ingest]
batch_size = 10
interval = "0s"

[scheduler]
postgres = "{}"
lease = "3s"
poll_interval = "100ms"

[[jobs]]
name = "tick"
every = "1s"
users = 10
"#,
            pg.database("history")
        ),
    )
    .unwrap();
    let stderr = dir.path().join("stderr.log");
    let mut child = support::userstream_bin()
        .current_dir(dir.path())
        .env_remove("USERSTREAM_CONFIG")
        .args(["jobs", "schedule"])
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    support::wait_until("two runs", || succeeded(&job_runs(dir.path())) >= 2).await;
    tokio::task::block_in_place(|| pg.stop_server());
    support::wait_until("the scheduler to notice", || {
        std::fs::read_to_string(&stderr)
            .unwrap_or_default()
            .contains("could not read or write the run history")
    })
    .await;
    tokio::task::block_in_place(|| pg.start_server());
    let before = succeeded(&job_runs(dir.path()));
    support::wait_until("runs after the restart", || {
        succeeded(&job_runs(dir.path())) >= before + 2
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the scheduler kept running"
    );
    support::interrupt(&child);
    assert!(child.wait().unwrap().success());

    let runs = job_runs(dir.path());
    let mut slots: Vec<chrono::DateTime<chrono::Utc>> = runs
        .iter()
        .filter_map(|r| r["slot"].as_str())
        .map(|s| s.parse().unwrap())
        .collect();
    slots.sort();
    let seconds = (*slots.last().unwrap() - slots[0]).num_seconds() as usize;
    assert_eq!(
        slots.len(),
        seconds + 1,
        "every slot once, outage included: {runs:#?}"
    );
    for run in &runs {
        assert!(
            ["succeeded", "skipped", "queued"].contains(&run["status"].as_str().unwrap()),
            "{run}"
        );
    }
}
