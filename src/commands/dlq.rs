//! `userstream dlq`: what failed validation and why.

use super::output::print_table;
use super::query::open_store;
use crate::cli::{DlqArgs, DlqCommand, OutputFormat};
use crate::config::Config;
use crate::process::redrive::{RedriveOptions, RedriveOutcome, redrive};
use crate::sink::AnyStore;

pub fn execute(config: &Config, args: DlqArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(dlq(config, args))
}

async fn dlq(config: &Config, args: DlqArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    match args.command {
        DlqCommand::Redrive {
            reason,
            dry_run,
            format,
        } => {
            let options = RedriveOptions {
                reason_contains: reason,
                dry_run,
            };
            let outcomes = redrive_store(config, &store, &options).await?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&outcomes)?),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = outcomes
                        .iter()
                        .map(|o| {
                            vec![
                                o.log_id.clone(),
                                o.log_seq.to_string(),
                                o.outcome.to_owned(),
                                o.reason.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["log_id", "log_seq", "outcome", "reason"], &rows);
                }
            }
            let count = |what| outcomes.iter().filter(|o| o.outcome == what).count();
            eprintln!(
                "{}{} dead letters re-driven: {} stored, {} still dead-lettered, {} skipped",
                if dry_run {
                    "dry run, nothing written: "
                } else {
                    ""
                },
                outcomes.len(),
                count("stored"),
                count("dead"),
                count("skipped"),
            );
        }
        DlqCommand::Count => println!("{}", store.dead_letter_count().await?),
        DlqCommand::List { limit, format } => {
            let letters = store.dead_letters(limit).await?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&letters)?),
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = letters
                        .iter()
                        .map(|l| {
                            vec![
                                l.log_seq.to_string(),
                                l.failed_at.clone(),
                                l.reason.clone(),
                                l.record.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["log_seq", "failed_at", "reason", "record"], &rows);
                }
            }
        }
    }
    Ok(())
}

/// Re-drives with this data directory's log, if it has one, and (on the Kafka path) the
/// configured registry to decode dead-lettered messages with.
async fn redrive_store(
    config: &Config,
    store: &AnyStore,
    options: &RedriveOptions,
) -> anyhow::Result<Vec<RedriveOutcome>> {
    let log = if config.log.postgres.is_some() || config.log_path().is_file() {
        Some(crate::pipeline::open_log(config).await?)
    } else {
        None
    };
    let registry = match config.kafka.brokers {
        Some(_) => registry_url(config)
            .await?
            .map(|url| crate::registry::RegistryClient::new(&url)),
        None => None,
    };
    redrive(store.as_ref(), log.as_deref(), registry.as_ref(), options).await
}

/// The registry to decode dead-lettered messages with. An external one (`[registry] url`) is
/// asked over HTTP. The embedded one is only served while a `run` is up, so re-driving would
/// depend on one running; instead its schemas are read from this data directory's
/// `registry.db` (SQLite, safe to share with a running registry), served for this command alone
/// on a loopback port, so the consumer's own decoding is used unchanged. `None` when there is no
/// registry to ask: Kafka letters are then skipped, untouched.
async fn registry_url(config: &Config) -> anyhow::Result<Option<String>> {
    if !config.registry.serves() {
        return Ok(Some(config.kafka.registry_url.clone()));
    }
    let path = config.data_dir.join("registry.db");
    if !path.is_file() {
        return Ok(None);
    }
    let schemas = std::sync::Arc::new(crate::registry::RegistryStore::open(&path)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        async move { axum::serve(listener, crate::registry::server::router(schemas)).await },
    );
    Ok(Some(url))
}
