//! `userstream bench`: see [`crate::bench`].

use super::runtime;
use crate::bench::{BenchOptions, run_bench};
use crate::cli::BenchArgs;
use crate::config::Config;
use anyhow::Context;

pub fn execute(mut config: Config, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(brokers) = &args.kafka {
        config.kafka.brokers = Some(brokers.clone());
        // A fresh topic per run, so the bench measures its own users only.
        config.kafka.topic = format!("users_created.bench-{}", chrono::Utc::now().timestamp());
        config.kafka.dlq_topic = format!("{}.dlq", config.kafka.topic);
        config.kafka.group_id = format!("{}-group", config.kafka.topic);
    }
    if let Some(url) = &args.registry {
        config.registry.url = Some(url.clone());
        config.apply_registry();
    }
    config.kafka.processors = args.processors;
    // A fresh directory per run: a bench must not mix its users into a real store, nor measure
    // a store that already holds last run's rows. `--data-dir` keeps the files for inspection.
    let scratch = tempfile::Builder::new()
        .prefix("userstream-bench-")
        .tempdir()
        .context("creating a scratch directory")?;
    let data_dir = if config.data_dir == Config::default().data_dir {
        scratch.path().to_path_buf()
    } else {
        config.data_dir.join(format!(
            "bench-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ))
    };
    let options = BenchOptions {
        users: args.users,
        rate: args.rate,
        data_dir,
    };
    let report = runtime()?.block_on(run_bench(&config, &options))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
