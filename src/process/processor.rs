//! The processor's run loop: read the log after the committed position, transform, and commit
//! rows + dead letters + new position to the sink in one step.
//!
//! Exactly-once effect comes from two facts together: the position is committed atomically with
//! the batch's effects (so a crash never commits one without the other), and rows are upserts by
//! `login.uuid` (so a duplicated record, or a batch written twice by another path, changes nothing).

use super::transform::transform;
use crate::log::{AppendSignal, LogError, RawLog};
use crate::model::row::fetch_timestamp;
use crate::sink::{Commit, DeadLetter, Sink, SinkError};
use crate::telemetry::events::{
    Component, EndToEndLatency, InternalEvent, LogEnd, ReaderPosition, RecordsDeadLettered,
    RecordsFailed, RecordsReceived, RecordsStored,
};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("committing batch ending at log position {position} failed {attempts} times: {error}")]
    Commit {
        position: u64,
        attempts: u32,
        error: SinkError,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The store remembers more of the log than the log holds: the log was replaced or lost its
    /// tail. Continuing would silently skip new records, so we refuse.
    #[error(
        "the store's position {position} is past the end of the log ({last}); was the log replaced or restored from an older copy?"
    )]
    PositionPastEnd { position: u64, last: u64 },
}

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub batch_size: usize,
    pub poll_interval: Duration,
    pub commit_attempts: u32,
}

/// Live counters, readable from other threads for progress reports.
#[derive(Debug, Default)]
pub struct ProcessorStats {
    pub records: AtomicU64,
    pub rows: AtomicU64,
    pub dead_letters: AtomicU64,
    pub batches: AtomicU64,
    pub position: AtomicU64,
}

/// What one run of the processor did.
#[derive(Debug)]
pub struct ProcessSummary {
    pub records: u64,
    pub rows: u64,
    pub dead_letters: u64,
    pub position: u64,
    /// Fetch-to-commit latency of every record, in microseconds.
    pub latency_micros: Histogram<u64>,
}

pub struct Processor<L, S> {
    log: L,
    sink: S,
    config: ProcessorConfig,
    stats: Arc<ProcessorStats>,
}

impl<L: RawLog, S: Sink> Processor<L, S> {
    pub fn new(log: L, sink: S, config: ProcessorConfig) -> Self {
        Self {
            log,
            sink,
            config,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<ProcessorStats> {
        Arc::clone(&self.stats)
    }

    /// Processes until the log is drained *and* `signal` is closed (no more appends coming from
    /// this process). With an already-closed signal this drains the log once and returns.
    pub async fn run(&mut self, signal: &AppendSignal) -> Result<ProcessSummary, ProcessError> {
        let log_id = self.log.log_id().to_owned();
        let mut position = self.sink.position(&log_id).await?.unwrap_or(0);
        let last = self.log.last_seq().await?;
        if position > last {
            return Err(ProcessError::PositionPastEnd { position, last });
        }
        self.stats.position.store(position, Relaxed);
        LogEnd { last_seq: last }.emit();
        ReaderPosition {
            reader: Component::Processor,
            position,
        }
        .emit();
        // 1 µs to 1 hour at 3 significant digits; anything slower is clamped, not lost.
        let mut latency =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        let (mut records, mut rows_total, mut dead_total) = (0u64, 0u64, 0u64);
        let mut rows = Vec::with_capacity(self.config.batch_size);
        let mut dead = Vec::new();
        loop {
            // Read `closed` before the log: an append is committed before `close`, so if we saw
            // the signal closed, this read sees every record there will ever be.
            let closing = signal.is_closed();
            let batch = self
                .log
                .read_after(position, self.config.batch_size)
                .await?;
            let Some(end) = batch.last().map(|r| r.seq) else {
                if closing {
                    break;
                }
                signal.wait_past(position, self.config.poll_interval).await;
                continue;
            };
            rows.clear();
            dead.clear();
            let mut first_dead_type = None;
            for record in &batch {
                match transform(&record.record, fetch_timestamp(record.fetched_at_micros)) {
                    Ok(row) => rows.push(row),
                    Err(invalid) => {
                        first_dead_type.get_or_insert(invalid.error_type());
                        dead.push(DeadLetter {
                            log_seq: record.seq,
                            reason: invalid.to_string(),
                            record: record.record.clone(),
                        });
                    }
                }
            }
            RecordsReceived {
                component: Component::Processor,
                count: batch.len(),
            }
            .emit();
            let started = Instant::now();
            self.commit_with_retry(&rows, &dead, &log_id, end).await?;
            RecordsStored {
                component: Component::Processor,
                count: rows.len(),
                took: started.elapsed(),
            }
            .emit();
            let committed_at = chrono::Utc::now().timestamp_micros();
            for record in &batch {
                let micros = (committed_at - record.fetched_at_micros).max(0) as u64;
                latency.saturating_record(micros);
            }
            emit_latency(
                Component::Processor,
                committed_at,
                batch.iter().map(|r| r.fetched_at_micros),
            );
            ReaderPosition {
                reader: Component::Processor,
                position: end,
            }
            .emit();
            position = end;
            records += batch.len() as u64;
            rows_total += rows.len() as u64;
            dead_total += dead.len() as u64;
            self.stats.records.fetch_add(batch.len() as u64, Relaxed);
            self.stats.rows.fetch_add(rows.len() as u64, Relaxed);
            self.stats
                .dead_letters
                .fetch_add(dead.len() as u64, Relaxed);
            self.stats.batches.fetch_add(1, Relaxed);
            self.stats.position.store(position, Relaxed);
            if let (Some(first), Some(error_type)) = (dead.first(), first_dead_type) {
                RecordsDeadLettered {
                    component: Component::Processor,
                    error_type,
                    count: dead.len(),
                    first_reason: &first.reason,
                }
                .emit();
            }
        }
        Ok(ProcessSummary {
            records,
            rows: rows_total,
            dead_letters: dead_total,
            position,
            latency_micros: latency,
        })
    }

    /// Commits one batch, retrying with [`commit_backoff`]: the position only moves once the store has
    /// taken the whole batch, so waiting here loses nothing.
    async fn commit_with_retry(
        &mut self,
        rows: &[crate::model::UserRow],
        dead: &[DeadLetter],
        log_id: &str,
        position: u64,
    ) -> Result<(), ProcessError> {
        let mut attempt = 1;
        loop {
            let commit = Commit {
                rows,
                dead_letters: dead,
                log_id,
                position: Some(position),
            };
            match self.sink.commit(commit).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt >= self.config.commit_attempts => {
                    return Err(ProcessError::Commit {
                        position,
                        attempts: attempt,
                        error,
                    });
                }
                Err(error) => {
                    let delay = commit_backoff(attempt);
                    RecordsFailed {
                        component: Component::Processor,
                        error_type: "store_commit",
                        count: rows.len() + dead.len(),
                        attempt,
                        retry_in: delay,
                        error: &error,
                    }
                    .emit();
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// The wait before commit attempt `attempt + 1`, for every commit that is retried (store
/// transactions, Kafka offsets): doubling from 200 ms to 12.8 s, so the default
/// `process.commit_attempts` (12) waits about 75 s in all.
pub fn commit_backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(attempt.min(7)))
}

/// Emits the end-to-end latency of records committed at `committed_at` (µs), one sample per
/// run of equal fetch times: a page's records share one, so a batch costs a few histogram
/// updates rather than one per record.
pub fn emit_latency(
    component: Component,
    committed_at: i64,
    fetched_at: impl Iterator<Item = i64>,
) {
    let mut run: Option<(i64, usize)> = None;
    let flush = |(at, count): (i64, usize)| {
        EndToEndLatency {
            component,
            latency: Duration::from_micros((committed_at - at).max(0) as u64),
            count,
        }
        .emit();
    };
    for at in fetched_at {
        run = match run {
            Some((same, n)) if same == at => Some((same, n + 1)),
            Some(done) => {
                flush(done);
                Some((at, 1))
            }
            None => Some((at, 1)),
        };
    }
    if let Some(done) = run {
        flush(done);
    }
}
