//! One module per subcommand; this one loads configuration and hands over.

mod audit;
mod bench;
mod dlq;
mod ingest;
mod jobs;
mod output;
mod process;
mod query;
mod run;
mod serve_api;
mod serve_registry;

use crate::cli::{Cli, Command, GlobalArgs, SourceArgs};
use crate::config::{Config, SourceKind};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::execute(load(&cli.global)?, args),
        Command::Ingest(args) => ingest::execute(load(&cli.global)?, args),
        Command::Process(args) => process::execute(load(&cli.global)?, args),
        Command::Query(args) => query::execute(&load(&cli.global)?, args),
        Command::Dlq(args) => dlq::execute(&load(&cli.global)?, args),
        Command::Audit(args) => audit::execute(&load(&cli.global)?, args),
        Command::Jobs(args) => jobs::execute(load(&cli.global)?, args),
        Command::Bench(args) => bench::execute(load(&cli.global)?, args),
        Command::ServeApi(args) => serve_api::execute(args),
        Command::ServeRegistry(args) => serve_registry::execute(load(&cli.global)?, args),
    }
}

/// Exit code of a command that ran but had nothing to do: Airflow's `BashOperator` marks its task
/// skipped on it (its default `skip_on_exit_code`).
pub const EXIT_SKIPPED: u8 = 99;

/// A command's outcome as an exit code other than 0 and 1, with what to say on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

/// Config file and environment, then the global flags.
fn load(global: &GlobalArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(global.config.as_deref())?;
    if let Some(dir) = &global.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

/// Applies the source flags shared by `run` and `ingest`.
fn apply_source_args(config: &mut Config, args: &SourceArgs) {
    if let Some(source) = args.source {
        config.ingest.source = source;
    }
    if let Some(url) = &args.url {
        config.ingest.source = SourceKind::Randomuser;
        config.randomuser.url = url.clone();
    }
    if let Some(n) = args.batch_size {
        config.ingest.batch_size = n;
    }
    if let Some(seed) = &args.seed {
        config.ingest.seed = Some(seed.clone());
    }
    if let Some(nat) = &args.nat {
        config.ingest.nat = nat.clone();
    }
    if let Some(max) = args.max_users {
        config.ingest.max_users = Some(max);
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A token cancelled by the first Ctrl-C or SIGTERM (graceful: finish and drain); a second one
/// exits at once. Nothing is lost either way: the log and store are transactional.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight work (press Ctrl-C again to stop now)");
        cancel.cancel();
        wait_for_signal().await;
        tracing::warn!("stopping immediately; unfinished work resumes at the next start");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
