//! `userstream bench`: see [`crate::bench`].

use super::runtime;
use crate::bench::{BenchOptions, run_bench};
use crate::cli::BenchArgs;
use crate::config::Config;
use anyhow::Context;

pub fn execute(config: Config, args: BenchArgs) -> anyhow::Result<()> {
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
