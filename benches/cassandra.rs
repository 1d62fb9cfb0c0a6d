//! `cargo bench --bench cassandra`: the pipeline into the Cassandra sink, against the in-process
//! kassandra CQL server (the only Cassandra this build machine can run). The server shares the
//! process and its 2 cores, so the figure is a floor for the sink's overhead, not a cluster's.
//!
//! `USERSTREAM_BENCH_USERS` sets the size (default 50000); `USERSTREAM_BENCH_RATE` holds a rate.

use kassandra_tester::KassandraTester;
use kassandra_tester::kassandra::KassandraSession;
use userstream::bench::{BenchOptions, run_bench};
use userstream::config::Config;

fn main() {
    let env = |key: &str| std::env::var(key).ok();
    let users: u64 = env("USERSTREAM_BENCH_USERS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let rate: Option<f64> = env("USERSTREAM_BENCH_RATE").and_then(|v| v.parse().ok());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut once = Some(());
        KassandraTester::new(KassandraSession::new())
            .in_scope(|addr| {
                once.take().expect("one scope");
                async move {
                    let report = tokio::spawn(async move {
                        let dir = tempfile::tempdir().unwrap();
                        let mut config = Config::default();
                        config.store.cassandra = Some(addr.to_string());
                        config.cassandra.await_schema_agreement = false;
                        let options = BenchOptions {
                            users,
                            rate,
                            data_dir: dir.path().to_path_buf(),
                        };
                        run_bench(&config, &options).await.unwrap()
                    })
                    .await
                    .unwrap();
                    println!("cassandra sink (in-process kassandra):\n{report}");
                    Ok::<(), ()>(())
                }
            })
            .await
            .unwrap();
    });
}
