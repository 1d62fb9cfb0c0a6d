//! `userstream process`: the raw log into the store, once or following.

use super::{runtime, shutdown_on_signal};
use crate::cli::ProcessArgs;
use crate::config::Config;
use crate::log::AppendSignal;
use crate::pipeline::endpoints::Endpoints;
use crate::pipeline::{open_log, open_store};
use crate::process::Processor;
use crate::telemetry::ProcessedCounts;
use axum::Router;
use tokio_util::sync::CancellationToken;

pub fn execute(config: Config, args: ProcessArgs) -> anyhow::Result<()> {
    config.validate()?;
    if config.kafka.brokers.is_some() {
        return consume_kafka(config, args);
    }
    runtime()?.block_on(async {
        let reader = open_log(&config).await?;
        let store = open_store(&config).await?;
        let mut processor = Processor::new(reader, store, config.processor_config());
        let signal = AppendSignal::new();
        // Without --follow the processor drains the log once and stops; with it, until Ctrl-C.
        // A following processor is a service: it serves the endpoints until it stops.
        let mut endpoints = None;
        if args.follow {
            let cancel = shutdown_on_signal();
            endpoints = Some(Endpoints::start(&config, Router::new(), cancel.clone()).await?);
            let closer = signal.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                closer.close();
            });
        } else {
            signal.close();
        }
        let summary = processor.run(&signal).await;
        if let Some(endpoints) = endpoints {
            endpoints.stop().await?;
        }
        let summary = summary?;
        tracing::info!(
            processed = summary.records,
            stored = summary.rows,
            dead_lettered = summary.dead_letters,
            log_position = summary.position,
            "processing stopped"
        );
        Ok(())
    })
}

/// With `[kafka] brokers`: join the consumer group; until caught up, or until Ctrl-C with
/// `--follow`.
fn consume_kafka(config: Config, args: ProcessArgs) -> anyhow::Result<()> {
    use crate::bus::kafka::KafkaProcessor;
    let rt = runtime()?;
    rt.block_on(async {
        crate::bus::kafka::topics::ensure_topics(&config.kafka).await?;
        let mut processor = KafkaProcessor::new(open_store(&config).await?, &config.kafka)?
            .with_commit_attempts(config.process.commit_attempts);
        let tally = processor.tally();
        let cancel = shutdown_on_signal();
        let drain = CancellationToken::new();
        let endpoints = if args.follow {
            Some(Endpoints::start(&config, Router::new(), cancel.clone()).await?)
        } else {
            drain.cancel();
            None
        };
        let result = processor.run_until(&cancel, &drain).await;
        if let Some(endpoints) = endpoints {
            endpoints.stop().await?;
        }
        result?;
        let processed = tally.processed();
        tracing::info!(
            messages = processed.records,
            stored = processed.rows,
            dead_lettered = processed.dead_letters,
            "processing stopped"
        );
        Ok(())
    })
}
