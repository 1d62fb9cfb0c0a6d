//! `run` with `[kafka] brokers` set: ingest -> raw log (outbox) -> relay -> Kafka -> consumer
//! group -> store, in one process. Other `userstream process` instances may join the group.

use super::{KafkaProcessor, Relay};
use crate::avro::USER_SCHEMA;
use crate::config::Config;
use crate::ingest::{Ingestor, Schedule, run_schedule};
use crate::log::AppendSignal;
use crate::pipeline::{RunSummary, build_source, open_log, open_store};
use crate::process::processor::ProcessSummary;
use crate::registry::RegistryClient;
use anyhow::Context;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Runs until `cancel` (or `max_users`); then the relay publishes what is left in the log and the
/// processor drains the topic before returning.
pub async fn run_kafka_pipeline(
    config: &Config,
    cancel: CancellationToken,
) -> anyhow::Result<RunSummary> {
    let started = Instant::now();
    let options = config.kafka.clone();
    if options.serve_registry {
        serve_embedded_registry(config).await?;
    }
    super::topics::ensure_topics(&options)
        .await
        .context("creating topics")?;
    let schema_id = RegistryClient::new(&options.registry_url)
        .register(&options.subject(), USER_SCHEMA)
        .await
        .context("registering the users_created value schema")?;
    let signal = AppendSignal::new();
    let mut ingestor = Ingestor::new(
        build_source(config)?,
        open_log(config)?,
        &config.page_settings(),
        uuid::Uuid::new_v4().to_string(),
        signal.clone(),
    )?;
    let mut relay = Relay::new(open_log(config)?, &options, schema_id)?;
    let mut processors = Vec::new();
    for _ in 0..options.processors.max(1) {
        processors.push(
            KafkaProcessor::new(open_store(config)?, &options)?
                .with_commit_attempts(config.process.commit_attempts),
        );
    }
    let stats: Vec<_> = processors.iter().map(|p| p.stats()).collect();
    tracing::info!(topic = %options.topic, schema_id, brokers = ?options.brokers, "Kafka pipeline started");

    let ingest_done = CancellationToken::new();
    let relay_task = {
        let done = ingest_done.clone();
        let signal = signal.clone();
        tokio::spawn(async move {
            let mut published = 0u64;
            loop {
                // Read `done` before relaying: if it was set, this pass sees every record.
                let finishing = done.is_cancelled();
                let n = relay.relay_batch().await?;
                published += n as u64;
                if n == 0 {
                    if finishing {
                        return Ok::<_, anyhow::Error>(published);
                    }
                    // Woken by ingest's next append rather than a poll interval, which would
                    // add itself to every record's latency.
                    let (signal, seen) = (signal.clone(), relay.position());
                    tokio::task::spawn_blocking(move || {
                        signal.wait_past(seen, Duration::from_millis(200));
                    })
                    .await?;
                }
            }
        })
    };
    let drain = CancellationToken::new();
    let processor_tasks: Vec<_> = processors
        .into_iter()
        .map(|mut processor| {
            let drain = drain.clone();
            tokio::spawn(
                async move { processor.run_until(&CancellationToken::new(), &drain).await },
            )
        })
        .collect();
    let schedule = Schedule {
        interval: config.fetch_interval(),
        max_users: config.ingest.max_users,
        max_pages: None,
        stop_on_error: false,
    };
    let ingest = run_schedule(&mut ingestor, &schedule, &cancel).await;
    ingest_done.cancel();
    signal.close();
    let published = relay_task.await.context("relay task")??;
    drain.cancel();
    for task in processor_tasks {
        task.await.context("processor task")??;
    }
    tracing::info!(published, "relay and consumer drained");
    Ok(RunSummary {
        ingest: ingest.context("ingesting")?,
        process: ProcessSummary {
            records: stats.iter().map(|s| s.messages.load(Relaxed)).sum(),
            rows: stats.iter().map(|s| s.rows.load(Relaxed)).sum(),
            dead_letters: stats.iter().map(|s| s.dead_letters.load(Relaxed)).sum(),
            position: 0,
            latency_micros: merged_latency(&stats),
        },
        elapsed: started.elapsed(),
    })
}

fn merged_latency(
    stats: &[std::sync::Arc<super::consumer::KafkaProcessorStats>],
) -> hdrhistogram::Histogram<u64> {
    let mut all =
        hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for s in stats {
        if let Some(h) = s.latency_micros.lock().expect("stats lock").as_ref() {
            all.add(h).expect("same bounds");
        }
    }
    all
}

/// Starts the embedded Schema Registry on `registry.listen`, for the life of the process.
async fn serve_embedded_registry(config: &Config) -> anyhow::Result<()> {
    let addr: std::net::SocketAddr = config
        .registry
        .listen
        .parse()
        .with_context(|| format!("registry.listen = {:?}", config.registry.listen))?;
    config.ensure_data_dir()?;
    let store = crate::registry::RegistryStore::open(&config.data_dir.join("registry.db"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("serving the embedded schema registry on {addr} (or set registry.url to use an external one)"))?;
    tracing::info!(%addr, "embedded schema registry serving");
    let router = crate::registry::server::router(std::sync::Arc::new(store));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(())
}
