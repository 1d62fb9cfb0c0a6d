//! Jobs as `userstream jobs` and `GET /jobs` show them.

use super::config::RunSize;
use super::history::{History, HistoryError, RunRecord};
use super::scheduler::Job;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct JobView {
    pub name: String,
    /// `cron "*/5 * * * *" (Europe/Berlin)` or `every 10m`.
    pub schedule: String,
    /// `500 users` or `for 1m`.
    pub size: String,
    pub next_due: Option<DateTime<Utc>>,
    pub last_run: Option<RunRecord>,
}

/// Every job with its next due slot after `now` and its newest run.
pub async fn job_views(
    jobs: &[Job],
    history: &History,
    now: DateTime<Utc>,
) -> Result<Vec<JobView>, HistoryError> {
    let mut views = Vec::with_capacity(jobs.len());
    for job in jobs {
        let config = &job.config;
        let schedule = match (&config.cron, config.every) {
            (Some(cron), _) => format!("cron {cron:?} ({})", config.timezone),
            (None, Some(every)) => format!("every {}", humantime::format_duration(every)),
            (None, None) => "-".into(),
        };
        let size = match job.size {
            RunSize::Users(users) => format!("{users} users"),
            RunSize::Duration(d) => format!("for {}", humantime::format_duration(d)),
        };
        views.push(JobView {
            name: config.name.clone(),
            schedule,
            size,
            next_due: job.timing.next_after(now),
            last_run: history.list(Some(&config.name), 1).await?.pop(),
        });
    }
    Ok(views)
}
