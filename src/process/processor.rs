//! The embedded processor's run loop: read the log after the committed position, transform, and
//! commit rows + dead letters + new position to the sink in one step (through the
//! [`ProcessingCore`] it shares with the Kafka consumer).
//!
//! Exactly-once effect comes from two facts together: the position is committed atomically with
//! the batch's effects (so a crash never commits one without the other), and rows are upserts by
//! `login.uuid` (so a duplicated record, or a batch written twice by another path, changes nothing).

use super::core::{CommitFailed, ProcessingCore};
use super::transform::transform;
use crate::log::{AppendSignal, Log, LogError, LogRecord};
use crate::model::UserRow;
use crate::model::row::fetch_timestamp;
use crate::sink::{AnyStore, Commit, DeadLetter, SinkError};
use crate::telemetry::events::{Component, InternalEvent, LogEnd, ReaderPosition};
use crate::telemetry::{ProcessTally, ProcessedCounts};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("committing batch ending at log position {position}: {failed}")]
    Commit {
        position: u64,
        #[source]
        failed: CommitFailed,
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

pub struct Processor {
    log: Log,
    sink: AnyStore,
    config: ProcessorConfig,
    core: ProcessingCore,
}

impl Processor {
    pub fn new(log: Log, sink: AnyStore, config: ProcessorConfig) -> Self {
        Self {
            core: ProcessingCore::new(Component::Processor, config.commit_attempts),
            log,
            sink,
            config,
        }
    }

    pub fn tally(&self) -> Arc<ProcessTally> {
        Arc::clone(self.core.tally())
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
        LogEnd { last_seq: last }.emit();
        ReaderPosition {
            reader: Component::Processor,
            position,
        }
        .emit();
        let limit = self.config.batch_size;
        // The next batch, read and transformed while the one before it was committed.
        let mut upcoming: Option<Prepared> = None;
        // Handed back to the log at each read, to be refilled where it was allocated.
        let mut spare = Vec::new();
        loop {
            let prepared = match upcoming.take() {
                Some(prepared) => prepared,
                None => {
                    prepare(
                        &self.log,
                        position,
                        limit,
                        std::mem::take(&mut spare),
                        signal,
                    )
                    .await?
                }
            };
            let Some(end) = prepared.batch.last().map(|r| r.seq) else {
                spare = prepared.batch;
                if prepared.closing {
                    break;
                }
                signal.wait_past(position, self.config.poll_interval).await;
                continue;
            };
            let Prepared {
                batch,
                rows,
                dead,
                first_dead_type,
                ..
            } = prepared;
            self.core.received(batch.len());
            // Shared with the store while it writes, and freed here, where it was built.
            let batch_rows: Arc<[UserRow]> = rows.into();
            let commit = Commit {
                rows: Arc::clone(&batch_rows),
                dead_letters: &dead,
                log_id: &log_id,
                position: Some(end),
            };
            // The store writes this batch while the next is read and transformed: the two
            // share no state, and the read-ahead is only kept if this commit succeeds.
            let (committed, next) = tokio::join!(
                self.core.commit(&*self.sink, commit),
                prepare(&self.log, end, limit, std::mem::take(&mut spare), signal),
            );
            committed.map_err(|failed| ProcessError::Commit {
                position: end,
                failed,
            })?;
            self.core.done(
                batch.len(),
                batch_rows.len(),
                dead.first()
                    .zip(first_dead_type)
                    .map(|(first, kind)| (dead.len(), kind, first.reason.as_str())),
                batch.iter().map(|r| r.fetched_at_micros),
            );
            ReaderPosition {
                reader: Component::Processor,
                position: end,
            }
            .emit();
            position = end;
            spare = batch;
            upcoming = Some(next?);
        }
        // The tally is this processor's own, and a processor runs once.
        let tally = self.core.tally();
        let processed = tally.processed();
        Ok(ProcessSummary {
            records: processed.records,
            rows: processed.rows,
            dead_letters: processed.dead_letters,
            position,
            latency_micros: tally.latency_micros(),
        })
    }
}

/// A batch read from the log and transformed, ready to commit.
struct Prepared {
    batch: Vec<LogRecord>,
    /// Whether the signal was closed before the read: then the batch holds every record there
    /// will ever be (an append is committed before `close`).
    closing: bool,
    rows: Vec<UserRow>,
    dead: Vec<DeadLetter>,
    first_dead_type: Option<&'static str>,
}

/// Reads up to `limit` records after `position` into `buffer`, and transforms them.
async fn prepare(
    log: &Log,
    position: u64,
    limit: usize,
    buffer: Vec<LogRecord>,
    signal: &AppendSignal,
) -> Result<Prepared, ProcessError> {
    let closing = signal.is_closed();
    let batch = log.read_after_into(position, limit, buffer).await?;
    let mut rows = Vec::with_capacity(batch.len());
    let mut dead = Vec::new();
    let mut first_dead_type = None;
    for record in &batch {
        match transform(&record.record, fetch_timestamp(record.fetched_at_micros)) {
            Ok(row) => rows.push(row),
            Err(invalid) => {
                first_dead_type.get_or_insert(invalid.kind());
                dead.push(DeadLetter {
                    log_seq: record.seq,
                    reason: invalid.to_string(),
                    record: record.record.clone(),
                });
            }
        }
    }
    Ok(Prepared {
        batch,
        closing,
        rows,
        dead,
        first_dead_type,
    })
}
