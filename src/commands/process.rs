//! `userstream process`: the raw log into the store, once or following.

use super::{runtime, shutdown_on_signal};
use crate::cli::ProcessArgs;
use crate::config::Config;
use crate::log::AppendSignal;
use crate::pipeline::{open_log, open_store};
use crate::process::Processor;

pub fn execute(config: Config, args: ProcessArgs) -> anyhow::Result<()> {
    config.validate()?;
    if config.kafka.brokers.is_some() {
        return consume_kafka(config, args);
    }
    let reader = open_log(&config)?;
    let store = open_store(&config)?;
    let mut processor = Processor::new(reader, store, config.processor_config());
    let signal = AppendSignal::new();
    // Without --follow the processor drains the log once and stops; with it, until Ctrl-C.
    let rt = runtime()?;
    if args.follow {
        let cancel = rt.block_on(async { shutdown_on_signal() });
        let closer = signal.clone();
        rt.spawn(async move {
            cancel.cancelled().await;
            closer.close();
        });
    } else {
        signal.close();
    }
    let summary = processor.run(&signal)?;
    tracing::info!(
        processed = summary.records,
        stored = summary.rows,
        dead_lettered = summary.dead_letters,
        log_position = summary.position,
        "processing stopped"
    );
    Ok(())
}

/// With `[kafka] brokers`: join the consumer group; until caught up, or until Ctrl-C with
/// `--follow`.
fn consume_kafka(config: Config, args: ProcessArgs) -> anyhow::Result<()> {
    use crate::bus::kafka::KafkaProcessor;
    use tokio_util::sync::CancellationToken;
    let rt = runtime()?;
    rt.block_on(async {
        crate::bus::kafka::topics::ensure_topics(&config.kafka).await?;
        let mut processor = KafkaProcessor::new(open_store(&config)?, &config.kafka)?
            .with_commit_attempts(config.process.commit_attempts);
        let stats = processor.stats();
        let cancel = shutdown_on_signal();
        let drain = CancellationToken::new();
        if !args.follow {
            drain.cancel();
        }
        processor.run_until(&cancel, &drain).await?;
        tracing::info!(
            messages = stats.messages.load(std::sync::atomic::Ordering::Relaxed),
            stored = stats.rows.load(std::sync::atomic::Ordering::Relaxed),
            dead_lettered = stats
                .dead_letters
                .load(std::sync::atomic::Ordering::Relaxed),
            "processing stopped"
        );
        Ok(())
    })
}
