//! Internal events: each is one thing that happened, emitted as a metric and a log line under one
//! name, so that what Prometheus counts and what the log says are the same facts.
//!
//! The pipeline never touches the `metrics` facade or writes these log lines itself; it emits an
//! event. Labels are few and bounded (a component, an error type, a status code, a partition), so
//! a long run cannot grow the number of series.

use super::tally::{IngestTally, ProcessTally, RUN_API_ERRORS};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Something that happened, told to the metrics and the log in one call.
pub trait InternalEvent {
    fn emit(self);
}

/// The part of the pipeline an event comes from: the `component` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// Fetches pages from the source into the raw log.
    Ingest,
    /// Reads the raw log and stores rows (the embedded path).
    Processor,
    /// Publishes the raw log to Kafka (the outbox relay).
    Relay,
    /// A Kafka consumer-group member storing rows.
    Consumer,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Ingest => "ingest",
            Component::Processor => "processor",
            Component::Relay => "relay",
            Component::Consumer => "consumer",
        }
    }
}

/// Records taken in: fetched (ingest, through [`PageFetched`]), read from the log (processor,
/// relay) or consumed.
pub struct RecordsReceived {
    pub component: Component,
    pub count: usize,
}

impl InternalEvent for RecordsReceived {
    fn emit(self) {
        tracing::trace!(
            component = self.component.as_str(),
            count = self.count,
            "records received"
        );
        metrics::counter!("userstream_records_received_total", "component" => self.component.as_str())
            .increment(self.count as u64);
    }
}

/// A page of `count` records fetched from the source: what ingest takes in.
pub struct PageFetched<'a> {
    pub page: u64,
    pub count: usize,
    pub tally: &'a IngestTally,
}

impl InternalEvent for PageFetched<'_> {
    fn emit(self) {
        tracing::trace!(page = self.page, count = self.count, "page fetched");
        self.tally.fetched.fetch_add(self.count as u64, Relaxed);
        RecordsReceived {
            component: Component::Ingest,
            count: self.count,
        }
        .emit();
    }
}

/// A fetched page's `count` records appended to the raw log, which now ends at `last_seq`.
pub struct PageAppended<'a> {
    pub count: u64,
    pub last_seq: Option<u64>,
    pub tally: &'a IngestTally,
}

impl InternalEvent for PageAppended<'_> {
    fn emit(self) {
        tracing::trace!(
            count = self.count,
            last_seq = self.last_seq,
            "page appended"
        );
        self.tally.records.fetch_add(self.count, Relaxed);
        if let Some(last_seq) = self.last_seq {
            LogEnd { last_seq }.emit();
        }
    }
}

/// Records the broker acknowledged to the relay.
pub struct RecordsPublished {
    pub count: usize,
}

impl InternalEvent for RecordsPublished {
    fn emit(self) {
        tracing::trace!(count = self.count, "records published");
        metrics::counter!("userstream_records_published_total", "component" => Component::Relay.as_str())
            .increment(self.count as u64);
    }
}

/// Rows committed to the store, and how long the commit took (retries included).
pub struct RecordsStored {
    pub component: Component,
    pub count: usize,
    pub took: Duration,
}

impl InternalEvent for RecordsStored {
    fn emit(self) {
        let component = self.component.as_str();
        tracing::debug!(component, count = self.count, took = ?self.took, "records stored");
        metrics::counter!("userstream_records_stored_total", "component" => component)
            .increment(self.count as u64);
        metrics::histogram!("userstream_batch_write_seconds", "component" => component)
            .record(self.took.as_secs_f64());
    }
}

/// Records committed to the dead-letter queue; `error_type` is the kind of the first one's
/// reason (a batch's letters are counted under it), `first_reason` its text. A processor counts
/// them into its tally; the relay, which has none, letters records it cannot encode.
pub struct RecordsDeadLettered<'a> {
    pub component: Component,
    pub error_type: &'static str,
    pub count: usize,
    pub first_reason: &'a str,
    pub tally: Option<&'a ProcessTally>,
}

impl InternalEvent for RecordsDeadLettered<'_> {
    fn emit(self) {
        if self.count == 0 {
            return;
        }
        if let Some(tally) = self.tally {
            tally.dead_letters.fetch_add(self.count as u64, Relaxed);
        }
        let component = self.component.as_str();
        tracing::warn!(component, error_type = self.error_type, count = self.count, first_reason = %self.first_reason, "records dead-lettered");
        metrics::counter!(
            "userstream_records_dead_lettered_total",
            "component" => component,
            "error_type" => self.error_type
        )
        .increment(self.count as u64);
    }
}

/// An attempt covering `count` records failed and will be retried after `retry_in`.
pub struct RecordsFailed<'a> {
    pub component: Component,
    pub error_type: &'static str,
    pub count: usize,
    pub attempt: u32,
    pub retry_in: Duration,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for RecordsFailed<'_> {
    fn emit(self) {
        let component = self.component.as_str();
        tracing::warn!(component, error_type = self.error_type, count = self.count, attempt = self.attempt, retry_in = ?self.retry_in, error = %self.error, "{} failed, retrying", self.error_type.replace('_', " "));
        metrics::counter!(
            "userstream_records_failed_total",
            "component" => component,
            "error_type" => self.error_type
        )
        .increment(self.count as u64);
    }
}

/// A consumer waits for an unavailable schema registry to look up `schema_id`, and asks again
/// after `retry_in` (the record in hand is neither stored nor dead-lettered meanwhile).
pub struct RegistryRetry<'a> {
    pub schema_id: u32,
    pub attempt: u32,
    pub retry_in: Duration,
    pub error: &'a dyn std::fmt::Display,
    /// `None` for `dlq redrive`, which does not wait.
    pub tally: Option<&'a ProcessTally>,
}

impl InternalEvent for RegistryRetry<'_> {
    fn emit(self) {
        if let Some(tally) = self.tally {
            tally.registry_retries.fetch_add(1, Relaxed);
        }
        RecordsFailed {
            component: Component::Consumer,
            error_type: "registry_unavailable",
            count: 1,
            attempt: self.attempt,
            retry_in: self.retry_in,
            error: self.error,
        }
        .emit();
        tracing::debug!(
            schema_id = self.schema_id,
            "waiting for the schema registry"
        );
    }
}

/// A batch is done: its `rows` and dead letters committed, out of `records` taken in (a
/// consumer has also tried its offsets: see [`ProcessTally`] for a batch whose offsets a
/// rebalance took).
pub struct BatchProcessed<'a> {
    pub component: Component,
    pub records: usize,
    pub rows: usize,
    pub tally: &'a ProcessTally,
}

impl InternalEvent for BatchProcessed<'_> {
    fn emit(self) {
        let component = self.component.as_str();
        tracing::debug!(
            component,
            records = self.records,
            rows = self.rows,
            "batch processed"
        );
        self.tally.records.fetch_add(self.records as u64, Relaxed);
        self.tally.rows.fetch_add(self.rows as u64, Relaxed);
        metrics::counter!("userstream_batches_processed_total", "component" => component)
            .increment(1);
    }
}

/// Fetch-to-commit latency of `count` records fetched together (one page shares a fetch time).
pub struct EndToEndLatency<'a> {
    pub component: Component,
    pub latency: Duration,
    pub count: usize,
    pub tally: &'a ProcessTally,
}

impl InternalEvent for EndToEndLatency<'_> {
    fn emit(self) {
        self.tally
            .record_latency(self.latency.as_micros() as u64, self.count);
        metrics::histogram!("userstream_end_to_end_latency_seconds", "component" => self.component.as_str())
            .record_many(self.latency.as_secs_f64(), self.count);
    }
}

/// The raw log's end after an append (or as a reader last saw it).
pub struct LogEnd {
    pub last_seq: u64,
}

impl InternalEvent for LogEnd {
    fn emit(self) {
        metrics::gauge!("userstream_log_end_position").set(self.last_seq as f64);
    }
}

/// A reader of the raw log committed its position.
pub struct ReaderPosition {
    pub reader: Component,
    pub position: u64,
}

impl InternalEvent for ReaderPosition {
    fn emit(self) {
        tracing::trace!(
            reader = self.reader.as_str(),
            position = self.position,
            "reader position"
        );
        metrics::gauge!("userstream_reader_position", "reader" => self.reader.as_str())
            .set(self.position as f64);
    }
}

/// One request to the randomuser API answered (`status`: the HTTP code) or not (`timeout`,
/// `transport`).
pub struct ApiRequest {
    pub status: ApiStatus,
}

/// How an API request ended, as the `status` label.
#[derive(Debug, Clone, Copy)]
pub enum ApiStatus {
    Code(u16),
    Timeout,
    Transport,
}

impl InternalEvent for ApiRequest {
    fn emit(self) {
        let status = match self.status {
            ApiStatus::Code(code) => code.to_string(),
            ApiStatus::Timeout => "timeout".into(),
            ApiStatus::Transport => "transport".into(),
        };
        tracing::trace!(%status, "API request");
        metrics::counter!("userstream_api_requests_total", "status" => status).increment(1);
    }
}

/// An API request failed, of kind `error_type` (retried or not; an empty page counts too, as the
/// API's outage answer).
pub struct ApiError {
    pub error_type: &'static str,
}

impl InternalEvent for ApiError {
    fn emit(self) {
        let _ = RUN_API_ERRORS.try_with(|tally| {
            *tally
                .lock()
                .expect("the tally is only counted into")
                .entry(self.error_type.to_owned())
                .or_default() += 1;
        });
        tracing::debug!(error_type = self.error_type, "API request failed");
        metrics::counter!("userstream_api_errors_total", "error_type" => self.error_type)
            .increment(1);
    }
}

/// An API request is retried after a failure of kind `error_type`.
pub struct ApiRetry<'a> {
    pub error_type: &'static str,
    pub attempt: u32,
    pub retry_in: Duration,
    pub error: &'a dyn std::fmt::Display,
}

impl InternalEvent for ApiRetry<'_> {
    fn emit(self) {
        tracing::warn!(error_type = self.error_type, attempt = self.attempt, retry_in = ?self.retry_in, error = %self.error, "API request failed, retrying");
        metrics::counter!("userstream_api_retries_total", "error_type" => self.error_type)
            .increment(1);
    }
}

/// Users the API budget allows in its current window, after a charge.
pub struct ApiBudgetRemaining {
    pub users: u64,
}

impl InternalEvent for ApiBudgetRemaining {
    fn emit(self) {
        metrics::gauge!("userstream_api_budget_remaining_users").set(self.users as f64);
    }
}

/// A consumer's lag on one partition after committing there.
pub struct ConsumerLag<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub messages: i64,
    pub seconds: f64,
}

impl InternalEvent for ConsumerLag<'_> {
    fn emit(self) {
        let partition = self.partition.to_string();
        metrics::gauge!("userstream_consumer_lag_messages", "topic" => self.topic.to_owned(), "partition" => partition.clone())
            .set(self.messages.max(0) as f64);
        metrics::gauge!("userstream_consumer_lag_seconds", "topic" => self.topic.to_owned(), "partition" => partition)
            .set(self.seconds.max(0.0));
    }
}

/// A job's run entered a status (queued, running, succeeded, failed, timed_out, skipped).
pub struct JobRunStatus<'a> {
    pub job: &'a str,
    pub run_id: &'a str,
    pub status: crate::scheduler::RunStatus,
    pub error: Option<&'a str>,
}

impl<'a> From<&'a crate::scheduler::RunRecord> for JobRunStatus<'a> {
    fn from(run: &'a crate::scheduler::RunRecord) -> Self {
        Self {
            job: &run.job,
            run_id: &run.run_id,
            status: run.status,
            error: run.error.as_deref(),
        }
    }
}

impl InternalEvent for JobRunStatus<'_> {
    fn emit(self) {
        let status = self.status.as_str();
        let error = self.error.unwrap_or_default();
        match self.status {
            crate::scheduler::RunStatus::Failed | crate::scheduler::RunStatus::TimedOut => {
                tracing::error!(
                    job = self.job,
                    run_id = self.run_id,
                    status,
                    error,
                    "job run {status}"
                )
            }
            _ => tracing::info!(
                job = self.job,
                run_id = self.run_id,
                status,
                error,
                "job run {status}"
            ),
        }
        // `job` is bounded: jobs are named in the configuration.
        metrics::counter!("userstream_job_runs_total", "job" => self.job.to_owned(), "status" => status)
            .increment(1);
    }
}

/// Every status series of `job` at 0, so `increase()` sees a job's first failure.
pub fn register_job_series(job: &str) {
    for status in crate::scheduler::RunStatus::ALL {
        metrics::counter!("userstream_job_runs_total", "job" => job.to_owned(), "status" => status.as_str())
            .absolute(0);
    }
}
