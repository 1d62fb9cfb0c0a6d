//! The processing core both processors share: the embedded one, reading the raw log, and each
//! Kafka consumer-group member. Whatever the input, a batch ends the same way: its rows and dead
//! letters are committed to the store with the same retries, and the same events record what
//! happened, in the metrics and in the processor's tally. (The two run loops used to carry their own copies of this, and
//! had drifted: one retried store commits and the other did not.)

use crate::sink::{Commit, Sink, SinkError};
use crate::telemetry::ProcessTally;
use crate::telemetry::events::{
    BatchProcessed, Component, EndToEndLatency, InternalEvent, RecordsDeadLettered, RecordsFailed,
    RecordsReceived, RecordsStored,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A store commit that failed every attempt.
#[derive(Debug, thiserror::Error)]
#[error("store commit failed {attempts} times: {error}")]
pub struct CommitFailed {
    pub attempts: u32,
    #[source]
    pub error: SinkError,
}

/// One processor's commit, counting and telling, for `component`.
#[derive(Debug, Clone)]
pub struct ProcessingCore {
    component: Component,
    commit_attempts: u32,
    tally: Arc<ProcessTally>,
}

impl ProcessingCore {
    pub fn new(component: Component, commit_attempts: u32) -> Self {
        Self {
            component,
            commit_attempts,
            tally: Arc::default(),
        }
    }

    pub fn tally(&self) -> &Arc<ProcessTally> {
        &self.tally
    }

    /// A batch of `count` records taken in.
    pub fn received(&self, count: usize) {
        RecordsReceived {
            component: self.component,
            count,
        }
        .emit();
    }

    /// Commits to `sink`, retrying with [`commit_backoff`] up to the configured attempts: the
    /// caller's progress only moves once the store has taken the whole commit, so waiting here
    /// loses nothing (a database node can restart meanwhile).
    pub async fn commit<S: Sink + ?Sized>(
        &self,
        sink: &S,
        commit: Commit<'_>,
    ) -> Result<(), CommitFailed> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let attempt_commit = Commit {
                rows: Arc::clone(&commit.rows),
                dead_letters: commit.dead_letters,
                log_id: commit.log_id,
                position: commit.position,
            };
            match sink.commit(attempt_commit).await {
                Ok(()) => break,
                Err(error) if attempt >= self.commit_attempts => {
                    return Err(CommitFailed {
                        attempts: attempt,
                        error,
                    });
                }
                Err(error) => {
                    let delay = commit_backoff(attempt);
                    RecordsFailed {
                        component: self.component,
                        error_type: "store_commit",
                        count: commit.rows.len() + commit.dead_letters.len(),
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
        RecordsStored {
            component: self.component,
            count: commit.rows.len(),
            took: started.elapsed(),
        }
        .emit();
        Ok(())
    }

    /// A batch is done (committed, and for a consumer its offsets tried): `records` taken in,
    /// `rows` stored, `dead` dead-lettered (the first of kind `dead_type`, reason
    /// `first_reason`), and the fetch times of the records whose latency is known.
    pub fn done(
        &self,
        records: usize,
        rows: usize,
        dead: Option<(usize, &'static str, &str)>,
        fetched_at_micros: impl Iterator<Item = i64>,
    ) {
        let committed_at = chrono::Utc::now().timestamp_micros();
        emit_latency(self.component, committed_at, fetched_at_micros, &self.tally);
        if let Some((count, error_type, first_reason)) = dead {
            RecordsDeadLettered {
                component: self.component,
                error_type,
                count,
                first_reason,
                tally: Some(&self.tally),
            }
            .emit();
        }
        BatchProcessed {
            component: self.component,
            records,
            rows,
            tally: &self.tally,
        }
        .emit();
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
fn emit_latency(
    component: Component,
    committed_at: i64,
    fetched_at: impl Iterator<Item = i64>,
    tally: &ProcessTally,
) {
    let mut run: Option<(i64, usize)> = None;
    let flush = |(at, count): (i64, usize)| {
        EndToEndLatency {
            component,
            latency: Duration::from_micros((committed_at - at).max(0) as u64),
            count,
            tally,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    /// A store that refuses its first `fails` commits.
    struct Flaky {
        fails: u32,
        seen: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Sink for Flaky {
        async fn commit(&self, _: Commit<'_>) -> Result<(), SinkError> {
            if self.seen.fetch_add(1, Relaxed) < self.fails {
                return Err(SinkError::Incompatible {
                    path: "flaky".into(),
                    reason: "not now".into(),
                });
            }
            Ok(())
        }
        async fn position(&self, _: &str) -> Result<Option<u64>, SinkError> {
            Ok(None)
        }
        async fn remove_dead_letters(&self, _: &[(String, u64)]) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn empty(log_id: &str) -> Commit<'_> {
        Commit {
            rows: Arc::default(),
            dead_letters: &[],
            log_id,
            position: None,
        }
    }

    /// Both processors (the embedded one and every Kafka consumer) retry store commits the same
    /// way, and give up after the configured attempts.
    #[tokio::test(start_paused = true)]
    async fn store_commits_are_retried_up_to_the_configured_attempts() {
        let core = ProcessingCore::new(Component::Consumer, 3);
        let sink = Flaky {
            fails: 2,
            seen: AtomicU32::new(0),
        };
        core.commit(&sink, empty("p")).await.unwrap();
        assert_eq!(sink.seen.load(Relaxed), 3);

        let sink = Flaky {
            fails: 3,
            seen: AtomicU32::new(0),
        };
        let failed = core.commit(&sink, empty("p")).await.unwrap_err();
        assert_eq!(failed.attempts, 3);
    }
}
