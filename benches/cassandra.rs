//! `cargo bench --bench cassandra`: the embedded pipeline into the Cassandra sink, against a real
//! Apache Cassandra 5.0 node, started from its Maven Central jars exactly as the tests start it (1 GB
//! heap, C1 JIT only: on 2 cores the full JIT's compiler threads halved the figure, 3,900 against
//! 7,300 users/s). Node and pipeline share the machine's cores.
//!
//! `USERSTREAM_BENCH_USERS` sets the size (default 100000); `USERSTREAM_BENCH_RATE` holds a rate.

#[path = "../tests/support/servers.rs"]
mod support;

use support::cassandra::{Cassandra, Variant};
use userstream::bench::{BenchOptions, run_bench};
use userstream::config::Config;

fn main() {
    let env = |key: &str| std::env::var(key).ok();
    let users: u64 = env("USERSTREAM_BENCH_USERS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rate: Option<f64> = env("USERSTREAM_BENCH_RATE").and_then(|v| v.parse().ok());
    let node = Cassandra::start(Variant::Plain);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.store.cassandra = Some(node.address());
        config.cassandra = node.options("bench");
        let options = BenchOptions {
            users,
            rate,
            data_dir: dir.path().to_path_buf(),
        };
        run_bench(&config, &options).await.unwrap()
    });
    println!("Cassandra 5.0 store (one real node):\n{report}");
}
