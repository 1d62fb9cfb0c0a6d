//! Scheduled ingest: jobs (`[[jobs]]`) that fetch on a cron expression or an interval, with
//! retries, timeouts, overlap and catch-up policies, and a durable run history that lets many
//! processes share the jobs without running a slot twice (Airflow's part in the tutorials).
//!
//! * [`config`]: `[[jobs]]` and `[scheduler]`.
//! * [`timing`]: when slots fall (cron in a time zone, with DST as cron users expect).
//! * [`history`]: every run, recorded durably; slots recorded once; runs claimed under leases.
//! * [`scheduler`]: the loop that records slots as they come due and runs what it claims.
//! * [`runner`]: one run to its end: attempts, backoff, timeout, heartbeat.
//! * [`executor`]: what an attempt does; [`ingest_job`], the production one, ingests.
//! * [`http`]: `/jobs` on the shared HTTP server.

pub mod clock;
pub mod config;
pub mod executor;
pub mod history;
pub mod http;
pub mod ingest_job;
pub mod runner;
#[allow(clippy::module_inception)]
pub mod scheduler;
pub mod timing;
pub mod view;

#[cfg(test)]
mod tests;

pub use clock::Clock;
pub use config::{JobConfig, SchedulerConfig};
pub use history::{History, RunRecord, RunStatus, RunTrigger};
pub use runner::{OnShutdown, RunContext};
pub use scheduler::{Job, Scheduler};

/// This process's name in leases and the history's `owner` column: host, pid and a random
/// suffix (pids are reused across restarts and containers).
pub fn process_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{host}:{}:{suffix}", std::process::id())
}
