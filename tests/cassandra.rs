//! Cassandra as the store, against real Apache Cassandra 5.0 nodes (`support/cassandra.rs`): one
//! shared node for most tests (each in its own keyspace), and nodes of their own for the test that
//! kills its node and for password authentication with TLS.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use std::time::Duration;
use support::cassandra::{Cassandra, SUPERUSER, Variant, session};
use support::tcp_proxy::TcpProxy;
use support::wait_until;
use tokio_util::sync::CancellationToken;
use userstream::config::Config;
use userstream::pipeline::{RunSummary, open_store, run_pipeline};
use userstream::sink::{UserFilter, UserQuery};

/// The shared node, started off the test's runtime (start-up blocks for seconds).
async fn shared() -> &'static Cassandra {
    tokio::task::spawn_blocking(Cassandra::shared)
        .await
        .unwrap()
}

/// A run of `users` generated users (seed "cql") on the embedded log, stored in `keyspace` on
/// `node` at `address` (the node's own, or a proxy's), or in the embedded store if `node` is None.
fn config(data_dir: &Path, node: Option<(&Cassandra, &str)>, keyspace: &str, users: u64) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    config.ingest.batch_size = 500;
    config.ingest.interval = Duration::ZERO;
    config.ingest.seed = Some("cql".into());
    config.ingest.max_users = Some(users);
    if let Some((node, address)) = node {
        config.store.cassandra = Some(address.to_owned());
        config.cassandra = node.options(keyspace);
    }
    config
}

/// Runs `cfg` at 2,000 users/s and breaks its store with `break_store` once `before` users are
/// logged. Once ingest has logged `during` more meanwhile (it never waits for the store), awaits
/// `mend`, then the run's end: every logged user is distinct, and the store holds them all.
async fn run_through_store_outage(
    mut cfg: Config,
    before: u64,
    during: u64,
    break_store: impl FnOnce(),
    mend: impl std::future::Future<Output = ()>,
) -> RunSummary {
    cfg.ingest.rate = Some(2_000.0);
    let users = cfg.ingest.max_users.unwrap();
    let run = tokio::spawn({
        let cfg = cfg.clone();
        async move { run_pipeline(&cfg, CancellationToken::new(), false).await }
    });
    let log = cfg.data_dir.join("log.db");
    let logged = || support::count(&log, "raw_records");
    wait_until("the first pages", || logged() >= before).await;
    break_store();
    let at_outage = logged();
    wait_until("ingest to go on while the store is away", || {
        logged() >= at_outage + during
    })
    .await;
    mend.await;
    let summary = run
        .await
        .unwrap()
        .expect("the run waits and retries through the outage");
    let (logged, distinct) = support::log_uuids(&cfg.data_dir);
    assert_eq!((logged as u64, distinct.len() as u64), (users, users));
    let count = tokio::spawn(async move { open_store(&cfg).await.unwrap().count().await.unwrap() });
    assert_eq!(count.await.unwrap(), users);
    summary
}

/// Every row's id and the write time of its cells, paged through.
async fn write_times(node: &Cassandra, keyspace: &str) -> BTreeMap<uuid::Uuid, i64> {
    use futures::TryStreamExt;
    let session = session(&node.address(), &node.options(keyspace))
        .await
        .unwrap();
    let mut statement = scylla::statement::Statement::new(format!(
        "SELECT id, WRITETIME(first_name) FROM {keyspace}.created_users"
    ));
    statement.set_page_size(5000);
    session
        .query_iter(statement, ())
        .await
        .unwrap()
        .rows_stream::<(uuid::Uuid, i64)>()
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// 100,000 users from one raw log, stored once in the embedded store and once in Cassandra:
/// the two hold the same rows, field by field (fetch time included, since both come from the same
/// log), in the same `latest` order, and `count` and `find` page through the Cassandra table
/// (100,000 rows is 50 pages). Running again over the same log writes nothing: no record is
/// processed and no cell's write time moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_users_match_the_embedded_store_and_a_second_run_writes_nothing() {
    let node = shared().await;
    let users = 100_000;
    let embedded_dir = tempfile::tempdir().unwrap();
    let mut embedded = config(embedded_dir.path(), None, "", users);
    embedded.ingest.batch_size = 5000;
    run_pipeline(&embedded, CancellationToken::new(), false)
        .await
        .unwrap();

    // The same log, processed into Cassandra; its cursor says every page is in, so nothing is
    // fetched again.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        embedded_dir.path().join("log.db"),
        dir.path().join("log.db"),
    )
    .unwrap();
    let mut got = config(
        dir.path(),
        Some((node, &node.address())),
        "match_embedded",
        users,
    );
    got.ingest.batch_size = 5000;
    got.validate().unwrap();
    let summary = run_pipeline(&got, CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(
        summary.ingest.users, 0,
        "nothing fetched: the log is complete"
    );
    assert_eq!(
        (summary.process.rows, summary.process.dead_letters),
        (users, 0)
    );

    let (want, got_store) = (embedded.clone(), got.clone());
    tokio::spawn(async move {
        let (want, got) = (
            open_store(&want).await.unwrap(),
            open_store(&got_store).await.unwrap(),
        );
        assert_eq!(got.count().await.unwrap(), users);
        let everyone = want.latest(users as usize).await.unwrap();
        assert_eq!(everyone.len() as u64, users);
        assert!(
            everyone == got.latest(users as usize).await.unwrap(),
            "every row field by field, newest first in both stores"
        );
        assert_eq!(got.latest(10).await.unwrap(), everyone[..10]);
        let germans = UserFilter {
            country: Some("germany".into()),
            gender: Some("female".into()),
            limit: 700,
        };
        let found = got.filter(&germans).await.unwrap();
        assert_eq!(found.len(), 700);
        assert_eq!(
            found,
            want.filter(&germans).await.unwrap(),
            "find answers alike"
        );
    })
    .await
    .unwrap();

    let before = write_times(node, "match_embedded").await;
    assert_eq!(before.len() as u64, users);
    let again = run_pipeline(&got, CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(again.process.records, 0);
    assert_eq!(
        write_times(node, "match_embedded").await,
        before,
        "no cell was written again"
    );

    // `audit` pages through the 100,000 rows and balances; a row deleted behind the pipeline's
    // back is named.
    let audit = |config: Config| {
        tokio::spawn(async move {
            let store = open_store(&config).await.unwrap();
            let log = userstream::pipeline::open_log(&config).await.unwrap();
            userstream::audit::audit(log.as_ref(), store.as_ref(), None, 5)
                .await
                .unwrap()
        })
    };
    let report = audit(got.clone()).await.unwrap();
    assert!(report.balanced(), "{report:?}");
    assert_eq!((report.log_users, report.stored_users), (users, users));
    let victim = *before.keys().next().unwrap();
    session(&node.address(), &node.options("match_embedded"))
        .await
        .unwrap()
        .query_unpaged(
            "DELETE FROM match_embedded.created_users WHERE id = ?",
            (victim,),
        )
        .await
        .unwrap();
    let report = audit(got).await.unwrap();
    assert_eq!(report.missing_count, 1, "{report:?}");
    assert_eq!(report.missing[0].0, victim.to_string());
}

/// Cassandra's connections cut (a TCP proxy refusing everything) in the middle of a run: ingest
/// goes on into the log, the processor's commits wait and retry, and once the connections come
/// back every user is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_makes_the_pipeline_wait_and_lose_nothing() {
    let node = shared().await;
    let proxy = TcpProxy::start(node.address().parse().unwrap()).await;
    let users = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        Some((node, &proxy.addr.to_string())),
        "cut",
        users,
    );
    cfg.cassandra.write_attempts = 2;
    let summary = run_through_store_outage(cfg, 1_000, 1_000, || proxy.set_down(true), async {
        proxy.set_down(false)
    })
    .await;
    assert_eq!(summary.process.rows, users);
}

/// The Cassandra node itself SIGKILLed in the middle of a run and started again on its data
/// directory (replaying its commit log): the pipeline waits and retries through the restart and
/// ends with every user stored exactly once, and `/readyz` names the store meanwhile. The node syncs its commit log before acknowledging
/// ([`Variant::KillSafe`]): exactly-once can only be as durable as the store's acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_killed_and_restarted_mid_run_the_pipeline_retries_and_ends_exact() {
    let node = tokio::task::spawn_blocking(|| Cassandra::start(Variant::KillSafe))
        .await
        .unwrap();
    let node = std::sync::Arc::new(node);
    let users = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        dir.path(),
        Some((&node, &node.address())),
        "restarted",
        users,
    );
    // The default (about 75 s of retries) outlasts a restart on an idle machine; on a loaded
    // 2-core CI runner a commit-log replay can take longer, and the harness allows 180 s.
    cfg.process.commit_attempts = 20;
    // `/readyz` on its own session: ready, then naming the store while the node is down.
    let readiness = userstream::pipeline::endpoints::readiness(&cfg)
        .await
        .unwrap();
    assert_eq!(support::not_ready(&readiness).await, Vec::<&str>::new());
    let restart = node.clone();
    let summary = run_through_store_outage(cfg, 4_000, 2_000, || node.kill(), async move {
        assert_eq!(support::not_ready(&readiness).await, ["store"]);
        tokio::task::spawn_blocking(move || restart.restart())
            .await
            .unwrap();
        support::wait_until_ready(&readiness, "the Cassandra node restarted").await;
    })
    .await;
    assert_eq!(summary.process.records, users);
}

/// `userstream run` SIGKILLed while it writes to Cassandra, then started again: the same rows
/// as an uninterrupted run (all but the fetch time, since the reference fetched separately).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_a_cassandra_store_then_restart_gives_the_same_result() {
    let node = shared().await;
    let users = 10_000;
    let reference = tempfile::tempdir().unwrap();
    let want = config(reference.path(), None, "", users);
    run_pipeline(&want, CancellationToken::new(), false)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let got = config(
        dir.path(),
        Some((node, &node.address())),
        "killed_run",
        users,
    );
    let (path, address) = (dir.path().to_path_buf(), node.address());
    let run = move || {
        support::userstream_bin()
            .args(["-q", "--data-dir"])
            .arg(&path)
            .args(["run", "--seed", "cql", "--batch-size", "500"])
            .args(["--rate", "2000", "--max-users", &users.to_string()])
            .env("USERSTREAM_STORE__CASSANDRA", &address)
            .env("USERSTREAM_CASSANDRA__KEYSPACE", "killed_run")
            .spawn()
            .unwrap()
    };
    let mut child = run();
    let watch = got.clone();
    let store = tokio::spawn(async move {
        userstream::sink::CassandraStore::open(
            watch.store.cassandra.as_deref().unwrap(),
            &watch.cassandra,
        )
        .await
        .unwrap()
    })
    .await
    .unwrap();
    let store = std::sync::Arc::new(store);
    support::wait_for("rows before the kill", || {
        let store = store.clone();
        async move { store.count().await.unwrap() >= 2_000 }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let status = tokio::task::spawn_blocking(move || run().wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let (logged, _) = support::log_uuids(dir.path());
    assert_eq!(logged as u64, users, "no page fetched twice");
    tokio::spawn(async move {
        let want = open_store(&want).await.unwrap();
        assert_eq!(store.count().await.unwrap(), users);
        for row in want.latest(users as usize).await.unwrap() {
            assert_eq!(
                store
                    .get(row.id)
                    .await
                    .unwrap()
                    .map(support::without_fetch_time),
                Some(support::without_fetch_time(row)),
                "field by field"
            );
        }
    })
    .await
    .unwrap();
}

/// `PasswordAuthenticator` and a TLS-only native port, with a certificate the test made: the
/// store refuses plain text, an untrusted certificate and a wrong password, each with an error
/// that says so; a role created for the pipeline stores every user over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_authentication_and_tls_against_a_real_node() {
    let node = tokio::task::spawn_blocking(|| Cassandra::start(Variant::AuthAndTls))
        .await
        .unwrap();
    let admin = session(&node.address(), &node.options("system"))
        .await
        .unwrap();
    for cql in [
        "CREATE ROLE IF NOT EXISTS pipeline WITH PASSWORD = 's3cret-pipeline' AND LOGIN = true",
        "CREATE KEYSPACE IF NOT EXISTS secured WITH replication = \
         {'class': 'SimpleStrategy', 'replication_factor': '1'}",
        "GRANT ALL PERMISSIONS ON KEYSPACE secured TO pipeline",
    ] {
        admin.query_unpaged(cql, ()).await.unwrap();
    }
    let users = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Some((&node, &node.address())), "secured", users);
    cfg.cassandra.username = Some("pipeline".into());
    cfg.cassandra.password = Some("s3cret-pipeline".into());

    let refused = |tweak: fn(&mut Config)| {
        let mut bad = cfg.clone();
        tweak(&mut bad);
        async move {
            let err = tokio::spawn(async move { open_store(&bad).await.err() })
                .await
                .unwrap()
                .expect("refused");
            format!("{err:#}")
        }
    };
    let plain = refused(|c| c.cassandra.tls = false).await;
    assert!(plain.contains("connect"), "{plain}");
    let untrusted = refused(|c| c.cassandra.ca_file = None).await;
    assert!(
        untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
    let wrong = refused(|c| c.cassandra.password = Some("guess".into())).await;
    assert!(
        wrong.contains("Bad credentials") || wrong.to_lowercase().contains("password"),
        "{wrong}"
    );
    assert_ne!(SUPERUSER.1, "s3cret-pipeline");

    let summary = run_pipeline(&cfg, CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(summary.process.rows, users);
    let count = tokio::spawn(async move { open_store(&cfg).await.unwrap().count().await.unwrap() });
    assert_eq!(count.await.unwrap(), users);
}
