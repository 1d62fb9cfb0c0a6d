//! What the pipeline tells about itself: log lines, metrics and live progress.
//!
//! Every counter, gauge and histogram is emitted by a named event in [`events`], which also
//! writes the log line that goes with it, so a metric and its log line cannot drift apart (as in
//! Vector's internal events). The same events count a run's own figures into its [`tally`], so
//! a run's figures and the metrics cannot drift apart either. [`metrics`] installs the
//! process-wide Prometheus recorder that the HTTP server's `/metrics` renders.

pub mod events;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod tally;

pub use logging::init_logging;
pub use progress::{Processed, ProcessedCounts, spawn_progress};
pub use tally::{IngestTally, ProcessTally};

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
