//! The embedded pipeline as one process: an ingest task and a processor task around the log,
//! sharing an [`AppendSignal`] so a committed page is processed at once; the factories that
//! open the configured source, log and store for every path; [`kafka`], the same run with Kafka
//! between the log and the store; and [`endpoints`], what a long-running process serves.

pub mod endpoints;
pub mod jobs;
pub mod kafka;

use crate::config::{Config, SourceKind};
use crate::ingest::writer_lock::WriterLock;
use crate::ingest::{Ingestor, PageSettings, Schedule, ScheduleSummary, run_schedule};
use crate::log::{AppendSignal, Log, PostgresLog, SqliteLog};
use crate::process::processor::ProcessSummary;
use crate::process::{Processor, ProcessorConfig};
use crate::sink::{AnyStore, CassandraStore, PostgresStore, SqliteStore};
use crate::source::{AnySource, GeneratorSource, RandomUserClient};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What a pipeline run did.
#[derive(Debug)]
pub struct RunSummary {
    pub ingest: ScheduleSummary,
    pub process: ProcessSummary,
    pub elapsed: Duration,
}

/// The source the configuration asks for. The API budget is kept in `log`, the log the source's
/// pages go to, rather than in a second handle on the same database.
pub fn build_source(config: &Config, log: &Log) -> anyhow::Result<AnySource> {
    Ok(match config.ingest.source {
        SourceKind::Generator => AnySource::Generator(GeneratorSource::new()),
        SourceKind::Randomuser => {
            let mut client =
                RandomUserClient::new(config.randomuser.clone()).context("creating API client")?;
            if config.randomuser.budget_per_window() > 0 {
                client = client.with_shared_budget(Arc::clone(log));
            }
            AnySource::RandomUser(Box::new(client))
        }
    })
}

impl Config {
    pub fn processor_config(&self) -> ProcessorConfig {
        ProcessorConfig {
            batch_size: self.process.batch_size,
            poll_interval: self.process.poll_interval,
            commit_attempts: self.process.commit_attempts,
        }
    }

    /// How `run` ingests: at the configured pace, until stopped or `max_users`, riding out
    /// failed pages.
    pub fn pipeline_schedule(&self) -> Schedule {
        Schedule {
            interval: self.fetch_interval(),
            max_users: self.ingest.max_users,
            max_pages: None,
            stop_on_error: false,
        }
    }

    pub fn page_settings(&self) -> PageSettings {
        PageSettings {
            batch_size: self.ingest.batch_size,
            seed: self.ingest.seed.clone(),
            nat: self
                .ingest
                .nat
                .iter()
                .map(|n| n.trim().to_uppercase())
                .collect(),
        }
    }
}

/// Opens the configured raw log: PostgreSQL if `[log] postgres` is set, else SQLite under
/// `data_dir`. Each call is a new connection (ingest writes with one, the processor reads with
/// another).
pub async fn open_log(config: &Config) -> anyhow::Result<Log> {
    match &config.log.postgres {
        Some(url) => Ok(Arc::new(
            PostgresLog::open(url, &config.postgres)
                .await
                .with_context(|| {
                    format!(
                        "opening the raw log at {}",
                        crate::postgres::redact_url(url)
                    )
                })?,
        )),
        None => {
            config.ensure_data_dir()?;
            let path = config.log_path();
            Ok(Arc::new(
                SqliteLog::open(&path).with_context(|| format!("opening {}", path.display()))?,
            ))
        }
    }
}

/// Takes the log's ingest lock ([`WriterLock`]): the data directory's, or the PostgreSQL log's.
pub async fn lock_ingest(config: &Config) -> anyhow::Result<WriterLock> {
    if let Some(url) = &config.log.postgres {
        return Ok(WriterLock::acquire_postgres(url, &config.postgres).await?);
    }
    config.ensure_data_dir()?;
    Ok(WriterLock::acquire(&config.data_dir)?)
}

/// Opens the configured store: Cassandra or PostgreSQL if `[store]` names one, else SQLite.
pub async fn open_store(config: &Config) -> anyhow::Result<AnyStore> {
    if let Some(nodes) = &config.store.cassandra {
        return Ok(Arc::new(
            CassandraStore::open(nodes, &config.cassandra)
                .await
                .with_context(|| format!("opening the Cassandra store at {nodes}"))?,
        ));
    }
    match &config.store.postgres {
        Some(url) => Ok(Arc::new(
            PostgresStore::open(url, &config.postgres)
                .await
                .with_context(|| {
                    format!("opening the store at {}", crate::postgres::redact_url(url))
                })?,
        )),
        None => {
            config.ensure_data_dir()?;
            let path = config.store_path();
            Ok(Arc::new(
                SqliteStore::open(&path).with_context(|| format!("opening {}", path.display()))?,
            ))
        }
    }
}

/// Opens the run history: in `[scheduler] postgres`, else `[log] postgres`, else `[store]
/// postgres` (the database every process sharing the configuration already reaches), else the
/// embedded `DATA_DIR/meta.db`.
pub async fn open_history(config: &Config) -> anyhow::Result<crate::scheduler::History> {
    use crate::scheduler::history::{PostgresRunHistory, SqliteRunHistory};
    let postgres = (config.scheduler.postgres.as_ref())
        .or(config.log.postgres.as_ref())
        .or(config.store.postgres.as_ref());
    match postgres {
        Some(url) => Ok(Arc::new(
            PostgresRunHistory::open(url, &config.postgres)
                .await
                .with_context(|| {
                    format!(
                        "opening the run history at {}",
                        crate::postgres::redact_url(url)
                    )
                })?,
        )),
        None => {
            config.ensure_data_dir()?;
            let path = config.meta_path();
            Ok(Arc::new(SqliteRunHistory::open(&path).with_context(
                || format!("opening the run history {}", path.display()),
            )?))
        }
    }
}

/// Where the log and the store live, for log lines (passwords removed).
pub fn describe_backends(config: &Config) -> (String, String) {
    let describe = |url: &Option<String>, path: std::path::PathBuf| match url {
        Some(url) => crate::postgres::redact_url(url),
        None => path.display().to_string(),
    };
    let store = match &config.store.cassandra {
        Some(nodes) => format!("cassandra://{nodes}/{}", config.cassandra.keyspace),
        None => describe(&config.store.postgres, config.store_path()),
    };
    (describe(&config.log.postgres, config.log_path()), store)
}

/// The processor of an in-process pipeline, as a task of its own beside ingest; a failure
/// cancels `cancel` so that ingest stops too, since nothing ingested from then on could be
/// processed. It drains what is in the log and ends once `signal` is closed.
pub(crate) fn spawn_processor(
    config: &Config,
    reader: Log,
    store: AnyStore,
    signal: &AppendSignal,
    cancel: &CancellationToken,
) -> (
    tokio::task::JoinHandle<Result<ProcessSummary, crate::process::processor::ProcessError>>,
    Arc<crate::telemetry::ProcessTally>,
) {
    let mut processor = Processor::new(reader, store, config.processor_config());
    let tally = processor.tally();
    let (signal, cancel) = (signal.clone(), cancel.clone());
    let task = tokio::spawn(async move {
        let result = processor.run(&signal).await;
        if result.is_err() {
            cancel.cancel();
        }
        result
    });
    (task, tally)
}

/// The ingest side of a run, as a future that ends when ingest is done, and the tally the
/// progress display reads: continuous ingest's. Jobs have none; their runs are in `jobs runs`.
pub(crate) struct IngestSide<'a> {
    pub tally: Option<Arc<crate::telemetry::IngestTally>>,
    pub run: std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<ScheduleSummary>> + Send + 'a>,
    >,
}

/// Starts ingest for a run, waking `signal`'s readers: continuous, under the log's ingest lock
/// for as long as it runs; or, with `jobs`, on the jobs' schedules, each run taking the lock for
/// itself. Either way it stops when `cancel` fires (or, continuous, at `max_users`).
pub(crate) async fn start_ingest<'a>(
    config: &'a Config,
    jobs: Option<&'a jobs::Jobs>,
    signal: &AppendSignal,
    cancel: &CancellationToken,
) -> anyhow::Result<IngestSide<'a>> {
    let cancel = cancel.clone();
    if let Some(jobs) = jobs {
        let scheduler = jobs.scheduler(config, signal.clone(), cancel);
        tracing::info!(
            jobs = ?jobs.jobs.iter().map(|j| j.config.name.as_str()).collect::<Vec<_>>(),
            "ingest runs on the jobs' schedules"
        );
        return Ok(IngestSide {
            tally: None,
            run: Box::pin(async move {
                let users = scheduler.run().await?;
                Ok(ScheduleSummary {
                    users,
                    ..ScheduleSummary::default()
                })
            }),
        });
    }
    let lock = lock_ingest(config).await?;
    let log = open_log(config).await?;
    let mut ingestor = Ingestor::new(
        build_source(config, &log)?,
        log,
        &config.page_settings(),
        uuid::Uuid::new_v4().to_string(),
        signal.clone(),
    )
    .await?;
    tracing::info!(
        source = ?config.ingest.source,
        seed = %ingestor.cursor().seed,
        page = ingestor.cursor().next_page,
        batch_size = config.ingest.batch_size,
        interval = ?config.fetch_interval(),
        "ingest runs continuously"
    );
    let schedule = config.pipeline_schedule();
    Ok(IngestSide {
        tally: Some(ingestor.tally()),
        run: Box::pin(async move {
            let _lock = lock;
            Ok(run_schedule(&mut ingestor, &schedule, &cancel).await?)
        }),
    })
}

/// Runs ingest and processing until `cancel` fires or `ingest.max_users` is reached, then lets
/// the processor drain everything ingested before returning.
pub async fn run_pipeline(
    config: &Config,
    cancel: CancellationToken,
    show_progress: bool,
) -> anyhow::Result<RunSummary> {
    run_pipeline_with(config, cancel, show_progress, None).await
}

/// As [`run_pipeline`]; with `jobs`, ingest runs on the jobs' schedules instead of continuously
/// (see [`start_ingest`]), on the embedded and the Kafka path alike.
pub async fn run_pipeline_with(
    config: &Config,
    cancel: CancellationToken,
    show_progress: bool,
    jobs: Option<&jobs::Jobs>,
) -> anyhow::Result<RunSummary> {
    if config.kafka.brokers.is_some() {
        return kafka::run_kafka_pipeline(config, cancel, show_progress, jobs).await;
    }
    let started = Instant::now();
    let reader = open_log(config)
        .await
        .context("opening the log for reading")?;
    let store = open_store(config).await?;
    let signal = AppendSignal::new();
    let ingest = start_ingest(config, jobs, &signal, &cancel).await?;
    let (processor_task, process_tally) = spawn_processor(config, reader, store, &signal, &cancel);
    tracing::info!(
        log = %describe_backends(config).0,
        store = %describe_backends(config).1,
        "pipeline started"
    );
    let progress_done = CancellationToken::new();
    let progress = ingest.tally.filter(|_| show_progress).map(|tally| {
        crate::telemetry::spawn_progress(
            tally,
            process_tally,
            config.ingest.max_users,
            progress_done.clone(),
        )
    });
    let ingest_result = ingest.run.await;
    // From here the processor drains what is in the log and stops.
    signal.close();
    let process_result = processor_task
        .await
        .map_err(|_| anyhow::anyhow!("the processor panicked"))?;
    progress_done.cancel();
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    let process = process_result.context("processing")?;
    let ingest = ingest_result.context("ingesting")?;
    Ok(RunSummary {
        ingest,
        process,
        elapsed: started.elapsed(),
    })
}
