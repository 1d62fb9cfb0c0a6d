//! A run's own counts: what its summary, its progress line and its run-history record report,
//! and what a retried scheduled run sizes its next attempt from.
//!
//! Prometheus counters are process-wide and only ever grow. Two runs at once (two jobs, or the
//! ingest beside its processors) add to the same series, so a run cannot read its own figures
//! back from them. A tally is that run's share. It is counted only by the events in
//! [`super::events`], in the same `emit` that feeds the metric and writes the log line, so a
//! run's summary and the metrics are the same facts and cannot drift apart.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// What an ingest run has done so far. (Failed requests and empty pages are the API's metrics,
/// and a scheduled run's [`ApiErrorTally`].)
#[derive(Debug, Default)]
pub struct IngestTally {
    /// Records appended to the log.
    pub(super) records: AtomicU64,
    /// Records the source handed back. More than `records` once an append has failed: the page
    /// it held and the page read ahead meanwhile were fetched, and are fetched again.
    pub(super) fetched: AtomicU64,
}

impl IngestTally {
    /// A tally that starts from what a run's earlier attempts did.
    pub fn resumed(fetched: u64, records: u64) -> Self {
        Self {
            records: AtomicU64::new(records),
            fetched: AtomicU64::new(fetched),
        }
    }

    pub fn records(&self) -> u64 {
        self.records.load(Relaxed)
    }

    pub fn fetched(&self) -> u64 {
        self.fetched.load(Relaxed)
    }
}

/// What a processor (the embedded one, or one Kafka consumer) has done so far.
#[derive(Debug)]
pub struct ProcessTally {
    /// Records whose batch is done: its rows and dead letters committed. A batch a consumer
    /// drops on a rebalance before committing it is not counted. One whose offsets were lost to
    /// a rebalance after its rows were stored is counted again by the member that redoes it
    /// (the store keeps its rows once), so a Kafka run may count more than was ingested.
    pub(super) records: AtomicU64,
    /// Rows committed to the store, by batches counted in `records`.
    pub(super) rows: AtomicU64,
    /// Records committed to the dead-letter queue.
    pub(super) dead_letters: AtomicU64,
    /// Schema-registry lookups retried because the registry was unavailable (an outage ridden
    /// out rather than good data dead-lettered).
    pub(super) registry_retries: AtomicU64,
    /// Fetch-to-commit latency of every record, in microseconds (1 µs to 1 hour at 3
    /// significant digits; anything slower is clamped, not lost). Prometheus' histogram has
    /// fixed buckets; the bench reports exact percentiles from this one.
    latency_micros: Mutex<Histogram<u64>>,
}

impl Default for ProcessTally {
    fn default() -> Self {
        Self {
            records: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            registry_retries: AtomicU64::new(0),
            latency_micros: Mutex::new(latency_histogram()),
        }
    }
}

/// 1 µs to 1 hour at 3 significant digits: the bounds every tally's latency shares, so that
/// the histograms of a run's consumers merge.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

impl ProcessTally {
    pub fn registry_retries(&self) -> u64 {
        self.registry_retries.load(Relaxed)
    }

    /// A copy of the latency histogram so far.
    pub fn latency_micros(&self) -> Histogram<u64> {
        self.latency_micros
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The latency of several processors' records together (a run's Kafka consumers).
    pub fn merged_latency_micros(tallies: &[Arc<ProcessTally>]) -> Histogram<u64> {
        let mut all = latency_histogram();
        for tally in tallies {
            all.add(tally.latency_micros()).expect("same bounds");
        }
        all
    }

    /// Counts `count` records committed `micros` after they were fetched.
    pub(super) fn record_latency(&self, micros: u64, count: usize) {
        self.latency_micros
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record_n(micros, count as u64);
    }
}

/// A scheduled run's API errors, by kind, kept across its attempts.
pub type ApiErrorTally = Arc<Mutex<BTreeMap<String, u64>>>;

tokio::task_local! {
    /// The API errors of the scheduled run this task is executing. A task-local rather than a
    /// field because the errors happen deep in the source, which serves every kind of run;
    /// [`crate::scheduler::runner`] sets it around each attempt, and the API client's requests
    /// run in that attempt's task.
    pub static RUN_API_ERRORS: ApiErrorTally;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::events::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use std::time::Duration;

    /// The counter `name` with `component` = `value`, as a recorder saw it.
    fn counter(snapshot: &[(String, String, u64)], name: &str, component: &str) -> u64 {
        snapshot
            .iter()
            .filter(|(n, c, _)| n == name && c == component)
            .map(|(_, _, v)| v)
            .sum()
    }

    #[test]
    fn one_emit_counts_into_the_metrics_and_the_runs_tally_alike() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let (ingest, process) = (IngestTally::default(), ProcessTally::default());
        metrics::with_local_recorder(&recorder, || {
            PageFetched {
                page: 1,
                count: 5,
                tally: &ingest,
            }
            .emit();
            PageAppended {
                count: 5,
                last_seq: Some(5),
                tally: &ingest,
            }
            .emit();
            EndToEndLatency {
                component: Component::Processor,
                latency: Duration::from_millis(3),
                count: 5,
                tally: &process,
            }
            .emit();
            RecordsDeadLettered {
                component: Component::Processor,
                error_type: "missing_field",
                count: 1,
                first_reason: "no login.uuid",
                tally: Some(&process),
            }
            .emit();
            BatchProcessed {
                component: Component::Processor,
                records: 5,
                rows: 4,
                tally: &process,
            }
            .emit();
        });
        let snapshot: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| {
                let DebugValue::Counter(n) = value else {
                    return None;
                };
                let component = key
                    .key()
                    .labels()
                    .find(|l| l.key() == "component")
                    .map_or(String::new(), |l| l.value().to_owned());
                Some((key.key().name().to_owned(), component, n))
            })
            .collect();

        let received = counter(&snapshot, "userstream_records_received_total", "ingest");
        assert_eq!(received, 5);
        assert_eq!(ingest.fetched.load(Relaxed), received);
        assert_eq!(ingest.records.load(Relaxed), 5);

        let dead = counter(
            &snapshot,
            "userstream_records_dead_lettered_total",
            "processor",
        );
        assert_eq!(dead, 1);
        assert_eq!(process.dead_letters.load(Relaxed), dead);
        assert_eq!(process.records.load(Relaxed), 5);
        assert_eq!(process.rows.load(Relaxed), 4);
        assert_eq!(
            counter(&snapshot, "userstream_batches_processed_total", "processor"),
            1
        );
        let latency = process.latency_micros();
        assert_eq!(latency.len(), 5);
        assert!(latency.value_at_quantile(0.5).abs_diff(3_000) <= 3);
    }
}
