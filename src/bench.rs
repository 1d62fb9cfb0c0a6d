//! `userstream bench`: the complete embedded pipeline (generator -> JSON -> parse -> redact ->
//! log -> transform -> store) on synthetic users, measured from the outside.

use crate::config::{Config, SourceKind};
use crate::pipeline::run_pipeline;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Pages per second at a steady rate: small pages keep the wait inside a page short.
const STEADY_PAGES_PER_SEC: f64 = 20.0;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub users: u64,
    pub rate: Option<f64>,
    /// A fresh directory for the run's log and store.
    pub data_dir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub users: u64,
    pub rows: u64,
    pub dead_letters: u64,
    pub mode: String,
    pub seconds: f64,
    pub users_per_sec: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub peak_rss_mb: Option<f64>,
}

/// The config a benchmark runs with: the user's, with the source and pace the bench needs.
pub fn bench_config(base: &Config, options: &BenchOptions) -> Config {
    let mut config = base.clone();
    config.data_dir = options.data_dir.clone();
    config.ingest.source = SourceKind::Generator;
    config.ingest.seed = Some("userstream-bench".into());
    config.ingest.max_users = Some(options.users);
    match options.rate {
        Some(rate) => {
            config.ingest.batch_size =
                ((rate / STEADY_PAGES_PER_SEC).round() as u32).clamp(1, 5000);
            config.ingest.rate = Some(rate);
        }
        None => {
            config.ingest.batch_size = 5000;
            config.ingest.rate = None;
            config.ingest.interval = Duration::ZERO;
        }
    }
    config
}

pub async fn run_bench(base: &Config, options: &BenchOptions) -> anyhow::Result<BenchReport> {
    let config = bench_config(base, options);
    config.validate()?;
    let summary = run_pipeline(&config, CancellationToken::new(), true).await?;
    let latency = &summary.process.latency_micros;
    let ms = |micros: u64| micros as f64 / 1000.0;
    let seconds = summary.elapsed.as_secs_f64();
    let report = BenchReport {
        users: summary.process.records,
        rows: summary.process.rows,
        dead_letters: summary.process.dead_letters,
        mode: format!(
            "{}{}",
            match options.rate {
                Some(rate) => format!("steady {rate} users/s"),
                None => "full speed".into(),
            },
            match &config.kafka.brokers {
                Some(brokers) => format!(
                    ", via Kafka {brokers} with {} processor(s)",
                    config.kafka.processors
                ),
                None => String::new(),
            }
        ),
        seconds,
        users_per_sec: summary.process.records as f64 / seconds,
        latency_p50_ms: ms(latency.value_at_quantile(0.50)),
        latency_p99_ms: ms(latency.value_at_quantile(0.99)),
        latency_max_ms: ms(latency.max()),
        peak_rss_mb: crate::telemetry::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0)),
    };
    // A figure for a run that lost records is no figure: say so rather than print it as one.
    // (More than ingested is fine: a rebalance redelivers, and the upserts absorb it.)
    let ingested = summary.ingest.users;
    anyhow::ensure!(
        report.users >= ingested,
        "{report}
{} of the {ingested} ingested users never reached a processor, though the \
         pipeline drained: the broker skipped them",
        ingested - report.users
    );
    Ok(report)
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "mode:        {}", self.mode)?;
        writeln!(
            f,
            "users:       {} ({} stored, {} dead-lettered)",
            self.users, self.rows, self.dead_letters
        )?;
        writeln!(f, "elapsed:     {:.2} s", self.seconds)?;
        writeln!(f, "throughput:  {:.0} users/s", self.users_per_sec)?;
        writeln!(
            f,
            "latency:     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (fetch -> committed row)",
            self.latency_p50_ms, self.latency_p99_ms, self.latency_max_ms
        )?;
        match self.peak_rss_mb {
            Some(mb) => write!(f, "peak memory: {mb:.0} MB resident"),
            None => write!(f, "peak memory: unknown on this platform"),
        }
    }
}
