//! `run` with `[kafka] brokers` set: ingest -> raw log (outbox) -> relay -> Kafka -> consumer
//! group -> store, in one process. Other `userstream process` instances may join the group.

use super::{RunSummary, open_log, open_store};
use crate::avro::USER_SCHEMA;
use crate::bus::kafka::{KafkaProcessor, Relay};
use crate::config::Config;
use crate::log::AppendSignal;
use crate::process::processor::ProcessSummary;
use crate::registry::RegistryClient;
use crate::supervisor::{Ended, Supervisor, stopped_early};
use crate::telemetry::ProcessedCounts;
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Runs until `cancel` (or `max_users`); then the relay publishes what is left in the log and the
/// processors drain the topic before returning. Every task (the embedded registry, the relay,
/// each processor) runs under a [`Supervisor`]: one that fails, or stops before it is asked to,
/// ends the run with an error naming it, rather than leaving ingest fetching for nobody. With
/// `jobs`, ingest runs on the jobs' schedules ([`super::start_ingest`]).
pub async fn run_kafka_pipeline(
    config: &Config,
    cancel: CancellationToken,
    show_progress: bool,
    jobs: Option<&super::jobs::Jobs>,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let options = config.kafka.clone();
    let mut tasks = Supervisor::new();
    if options.serve_registry {
        tasks.spawn(
            REGISTRY_TASK,
            embedded_registry(config, CancellationToken::new()).await?,
        );
    }
    crate::bus::kafka::topics::ensure_topics(&options)
        .await
        .context("creating topics")?;
    let schema_id = RegistryClient::new(&options.registry_url)
        .register(&options.subject(), USER_SCHEMA)
        .await
        .context("registering the users_created value schema")?;
    let signal = AppendSignal::new();
    let ingest = super::start_ingest(config, jobs, &signal, &cancel).await?;
    let relay = Relay::new(
        open_log(config).await?,
        open_store(config).await?,
        &options,
        schema_id,
    )?;
    let mut processors = Vec::new();
    for _ in 0..options.processors.max(1) {
        processors.push(
            KafkaProcessor::new(open_store(config).await?, &options)?
                .with_commit_attempts(config.process.commit_attempts),
        );
    }
    let tallies: Vec<_> = processors.iter().map(|p| p.tally()).collect();
    tracing::info!(topic = %options.topic, schema_id, brokers = ?options.brokers, "Kafka pipeline started");

    let ingest_done = CancellationToken::new();
    tasks.spawn(
        RELAY_TASK,
        relay_until_done(relay, signal.clone(), ingest_done.clone()),
    );
    let drain = CancellationToken::new();
    let processor_count = processors.len();
    for (i, mut processor) in processors.into_iter().enumerate() {
        let drain = drain.clone();
        tasks.spawn(format!("processor {}", i + 1), async move {
            Ok(processor
                .run_until(&CancellationToken::new(), &drain)
                .await?)
        });
    }
    let progress_done = CancellationToken::new();
    let _stop_progress = progress_done.clone().drop_guard();
    let progress = ingest.tally.filter(|_| show_progress).map(|tally| {
        crate::telemetry::spawn_progress(
            tally,
            Arc::new(tallies.clone()),
            config.ingest.max_users,
            progress_done.clone(),
        )
    });
    // No task may end while ingest runs.
    let ingest = tokio::select! {
        ingest = ingest.run => ingest,
        ended = tasks.next() => return Err(match ended {
            Ended::Finished(name) => stopped_early(&name),
            Ended::Failed(err) => err,
        }),
    };
    ingest_done.cancel();
    signal.close();
    tasks.expect_finished(RELAY_TASK).await?;
    drain.cancel();
    for _ in 0..processor_count {
        match tasks.next().await {
            Ended::Finished(name) if name != REGISTRY_TASK => {}
            Ended::Finished(name) => return Err(stopped_early(&name)),
            Ended::Failed(err) => return Err(err),
        }
    }
    progress_done.cancel();
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    let processed = tallies.processed();
    tracing::info!(processed = processed.records, "relay and consumers drained");
    Ok(RunSummary {
        ingest: ingest.context("ingesting")?,
        process: ProcessSummary {
            records: processed.records,
            rows: processed.rows,
            dead_letters: processed.dead_letters,
            position: 0,
            latency_micros: crate::telemetry::ProcessTally::merged_latency_micros(&tallies),
        },
        elapsed: started.elapsed(),
    })
}

const REGISTRY_TASK: &str = "the embedded schema registry";
const RELAY_TASK: &str = "the relay";

/// Publishes the log as it grows until ingest is done (`done`) and every record is published.
async fn relay_until_done(
    mut relay: Relay,
    signal: AppendSignal,
    done: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        // Read `done` before relaying: if it was set, this pass sees every record.
        let finishing = done.is_cancelled();
        let n = relay.relay_batch().await?;
        if n == 0 {
            if finishing {
                return Ok(());
            }
            // Woken by ingest's next append rather than a poll interval, which would add itself
            // to every record's latency.
            signal
                .wait_past(relay.position(), Duration::from_millis(200))
                .await;
        }
    }
}

/// Binds the embedded Schema Registry on `registry.listen` and returns it as a task to supervise:
/// binding first, so a taken port is a start-up error rather than a task failing later.
async fn embedded_registry(
    config: &Config,
    shutdown: CancellationToken,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>> + use<>> {
    let addr: std::net::SocketAddr = config
        .registry
        .listen
        .parse()
        .with_context(|| format!("registry.listen = {:?}", config.registry.listen))?;
    let router = super::endpoints::embedded_registry(config)?;
    let listener = crate::http::bind(
        addr,
        "the embedded schema registry (or set registry.url to use an external one)",
    )
    .await?;
    tracing::info!(%addr, "embedded schema registry serving");
    Ok(async move {
        crate::http::serve(listener, router, shutdown.clone()).await?;
        if shutdown.is_cancelled() {
            return Ok(());
        }
        Err(anyhow::anyhow!("stopped serving"))
    })
}
