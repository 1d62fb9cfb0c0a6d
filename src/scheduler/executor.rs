//! What one attempt of a run does, behind a trait so that the scheduler's timing, retries,
//! timeouts and leases are tested against a scripted executor, and production ingests.

use super::config::{JobConfig, RunSize};
use crate::telemetry::IngestTally;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs one attempt of a job.
#[async_trait::async_trait]
pub trait JobExecutor: Send + Sync {
    /// Fetches `size` for `job`. When `stop` fires (timeout, shutdown, a lost lease) it stops
    /// fetching, keeps what it has, and returns. Counts go to `tally`, which lives across the
    /// run's attempts. `Err` is the attempt's failure, worded for the run history.
    async fn execute(
        &self,
        job: &JobConfig,
        run_id: &str,
        size: RunSize,
        stop: CancellationToken,
        tally: Arc<IngestTally>,
    ) -> Result<(), String>;
}
