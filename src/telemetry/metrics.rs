//! The process-wide metrics recorder and what `/metrics` renders.
//!
//! The `metrics` facade is what every [`super::events`] event writes to; this module installs
//! `metrics-exporter-prometheus` behind it once per process. Durations are histograms with
//! buckets (not summaries), so that Prometheus can aggregate them across processes and Grafana
//! can draw quantiles with `histogram_quantile`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Bucket bounds for every `_seconds` histogram: 1 ms to 5 min. End-to-end latency spans a
/// steady pipeline's milliseconds to a backlog's minutes; a batch write, milliseconds to a
/// database restart's retries.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// How often histogram samples are folded into their buckets. The exporter keeps raw samples
/// until then, so without it a process nobody scrapes would grow without bound.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

struct Installed {
    handle: PrometheusHandle,
    started: Instant,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the recorder (once; later calls return the same handle) and starts its upkeep on
/// the current tokio runtime. Before this, events are dropped by the facade's no-op recorder,
/// which is what commands that serve no `/metrics` want.
pub fn install() -> &'static PrometheusHandle {
    let installed = INSTALLED.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .expect("non-empty buckets")
            .install_recorder()
            .expect("the only metrics recorder of this process");
        describe();
        register_known_series();
        metrics::gauge!("userstream_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        let upkeep = handle.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(UPKEEP_PERIOD);
                loop {
                    ticks.tick().await;
                    upkeep.run_upkeep();
                }
            });
        }
        Installed {
            handle,
            started: Instant::now(),
        }
    });
    &installed.handle
}

/// The Prometheus text exposition of every metric, with the uptime as of now.
pub fn render() -> String {
    let handle = install();
    if let Some(installed) = INSTALLED.get() {
        metrics::gauge!("userstream_uptime_seconds").set(installed.started.elapsed().as_secs_f64());
    }
    handle.render()
}

/// Help texts and units, so a scrape explains itself. Names follow Prometheus conventions: base
/// units, `_total` on counters, `_seconds` on durations.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "userstream_build_info",
        "Always 1; the version label says which build runs."
    );
    describe_gauge!(
        "userstream_uptime_seconds",
        Unit::Seconds,
        "Seconds since this process started serving metrics."
    );
    describe_counter!(
        "userstream_records_received_total",
        "Records taken in by a component: fetched by ingest, read from the log by the processor or the relay, consumed from Kafka by a consumer."
    );
    describe_counter!(
        "userstream_records_published_total",
        "Records the relay published to Kafka and the broker acknowledged."
    );
    describe_counter!(
        "userstream_records_stored_total",
        "Rows committed to the store."
    );
    describe_counter!(
        "userstream_records_dead_lettered_total",
        "Records committed to the dead-letter queue, by the kind of error that put them there."
    );
    describe_counter!(
        "userstream_records_failed_total",
        "Records in an attempt that failed and will be retried (a store commit, an offset commit, a registry call), by error type."
    );
    describe_counter!(
        "userstream_batches_processed_total",
        "Batches a processor or consumer finished: rows and dead letters committed."
    );
    describe_histogram!(
        "userstream_end_to_end_latency_seconds",
        Unit::Seconds,
        "From the API fetch of a record to the commit of its row."
    );
    describe_histogram!(
        "userstream_batch_write_seconds",
        Unit::Seconds,
        "One batch's store commit, retries included."
    );
    describe_gauge!(
        "userstream_consumer_lag_messages",
        "Messages on a partition past this member's last committed offset."
    );
    describe_gauge!(
        "userstream_consumer_lag_seconds",
        Unit::Seconds,
        "How long ago the newest message this member committed on a partition was written, while the partition lags; 0 when caught up."
    );
    describe_counter!(
        "userstream_api_requests_total",
        "Requests to the randomuser API, by HTTP status (or timeout, transport)."
    );
    describe_counter!(
        "userstream_api_errors_total",
        "API requests that failed, retried or not, by error type (an empty page counts, as the API's outage answer)."
    );
    describe_counter!(
        "userstream_api_retries_total",
        "API requests retried after a failure, by error type."
    );
    describe_gauge!(
        "userstream_api_budget_remaining_users",
        "Users the API rate budget still allows in its current window."
    );
    describe_gauge!(
        "userstream_log_end_position",
        "The raw log's last sequence number, as this process last saw it."
    );
    describe_counter!(
        "userstream_job_runs_total",
        "Scheduled-job runs entering each status (queued, running, succeeded, failed, timed_out, skipped), by job."
    );
    describe_gauge!(
        "userstream_reader_position",
        "How far each reader of the raw log (processor, relay) has committed."
    );
}

/// Every counter series the pipeline is known to emit, at 0, so that `rate()` and `increase()`
/// see a series from the first scrape (a counter born at its first increment hides that first
/// increase from them) and alerts on "any dead letter" have a series to watch.
fn register_known_series() {
    use crate::telemetry::events::Component::{self, *};
    let validation = [
        "not_object",
        "not_json",
        "credentials_withheld",
        "missing_field",
        "empty_field",
        "malformed_field",
    ];
    for component in [Ingest, Processor, Relay, Consumer] {
        metrics::counter!("userstream_records_received_total", "component" => component.as_str())
            .absolute(0);
    }
    metrics::counter!("userstream_records_published_total", "component" => Relay.as_str())
        .absolute(0);
    let dead: [(Component, &[&'static str]); 3] = [
        (Processor, &[]),
        (Relay, &["not_encodable"]),
        (Consumer, &["not_avro", "unknown_schema", "undecodable"]),
    ];
    for component in [Processor, Consumer] {
        metrics::counter!("userstream_records_stored_total", "component" => component.as_str())
            .absolute(0);
        metrics::counter!("userstream_batches_processed_total", "component" => component.as_str())
            .absolute(0);
    }
    for (component, extra) in dead {
        for error_type in validation.iter().chain(extra) {
            metrics::counter!(
                "userstream_records_dead_lettered_total",
                "component" => component.as_str(),
                "error_type" => *error_type
            )
            .absolute(0);
        }
    }
    for (component, error_type) in [
        (Processor, "store_commit"),
        (Consumer, "offset_commit"),
        (Consumer, "registry_unavailable"),
    ] {
        metrics::counter!(
            "userstream_records_failed_total",
            "component" => component.as_str(),
            "error_type" => error_type
        )
        .absolute(0);
    }
    for status in ["200", "429", "500", "503", "timeout", "transport"] {
        metrics::counter!("userstream_api_requests_total", "status" => status).absolute(0);
    }
    for error_type in [
        "rate_limited",
        "server_error",
        "timeout",
        "transport",
        "api_error",
        "malformed",
        "too_large",
    ] {
        metrics::counter!("userstream_api_retries_total", "error_type" => error_type).absolute(0);
    }
}
