//! `cargo bench`: the stages on their own (generator, parse + redact, transform), then the whole
//! embedded pipeline, so a regression can be pinned to a stage.
//!
//! `USERSTREAM_BENCH_USERS` sets the pipeline size (default 200000).

use std::hint::black_box;
use std::time::Instant;
use userstream::bench::{BenchOptions, run_bench};
use userstream::config::Config;
use userstream::model::redact::redact_credentials;
use userstream::process::transform;
use userstream::source::generator::{Filters, write_page};
use userstream::source::page::parse_page;

fn per_sec(n: usize, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    const PAGES: u64 = 40;
    const SIZE: u32 = 5000;
    let users = PAGES as usize * SIZE as usize;

    let started = Instant::now();
    let mut pages = Vec::new();
    for page in 1..=PAGES {
        let mut out = Vec::new();
        write_page(&mut out, "bench", page, SIZE, &Filters::default()).unwrap();
        pages.push(out);
    }
    println!(
        "generate JSON      {:>10.0} users/s",
        per_sec(users, started)
    );

    let started = Instant::now();
    let mut records = Vec::with_capacity(users);
    for body in &pages {
        for raw in parse_page(body).unwrap().records {
            records.push(redact_credentials(&raw).into_record());
        }
    }
    println!(
        "parse + redact     {:>10.0} users/s",
        per_sec(users, started)
    );

    let started = Instant::now();
    for record in &records {
        black_box(transform(record, chrono::DateTime::UNIX_EPOCH).unwrap());
    }
    println!(
        "validate+transform {:>10.0} users/s",
        per_sec(users, started)
    );

    let size = std::env::var("USERSTREAM_BENCH_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let options = BenchOptions {
        users: size,
        rate: None,
        data_dir: dir.path().to_path_buf(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime
        .block_on(run_bench(&Config::default(), &options))
        .unwrap();
    println!(
        "whole pipeline     {:>10.0} users/s ({size} users)",
        report.users_per_sec
    );
    println!("{report}");
}
