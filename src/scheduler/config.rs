//! `[[jobs]]` and `[scheduler]`: what each ingest job does and when, and how the processes that
//! run jobs share them.

use super::timing::Timing;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One ingest job: `[[jobs]]` in the configuration, any number of them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Unique; names the job on the command line, over HTTP, in the run history and metrics.
    pub name: String,
    /// A cron expression (`*/15 * * * *`; a sixth, leading field is seconds). Exactly one of
    /// `cron` and `every` is set.
    #[serde(default)]
    pub cron: Option<String>,
    /// The IANA time zone `cron` is read in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// A fixed interval (`10m`), on multiples of it since the Unix epoch.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// Users a run fetches (rounded up to whole pages of `[ingest] batch_size`). Exactly one of
    /// `users` and `duration` is set.
    #[serde(default)]
    pub users: Option<u64>,
    /// How long a run fetches for, at the `[ingest]` pace; ending on time is success. A retry,
    /// or a run resumed after its process died, fetches for the whole duration again.
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Attempts after the first when a run fails.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry; doubled for each one after.
    #[serde(default = "default_retry_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// An attempt still going after this long is stopped (its in-flight page is kept) and the
    /// run recorded as timed out, without a retry (a run that outgrows its slot again would
    /// only crowd out the next slots). Each attempt, and a run resumed after its process died,
    /// gets the full timeout.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// What happens to a slot that comes due while the job's previous run is still going.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// With `overlap = "queue"`: how many runs may wait behind the live one. A slot or a
    /// manual trigger past that is recorded as skipped, saying so.
    #[serde(default = "default_max_queued")]
    pub max_queued: u32,
    /// Which slots missed while no scheduler was up are run at the next start.
    #[serde(default)]
    pub catch_up: CatchUpPolicy,
}

/// What a slot that comes due during a run of the same job becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverlapPolicy {
    /// Recorded as skipped, and not run.
    #[default]
    Skip,
    /// Recorded as queued, and run when the previous run ends; recorded as skipped instead when
    /// `max_queued` runs already wait.
    Queue,
}

/// Which missed slots run after downtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUpPolicy {
    /// Only the newest missed slot runs; the others are passed over (logged, not recorded).
    #[default]
    Latest,
    /// Every missed slot runs, oldest first (at most [`super::timing::MAX_SLOTS`]).
    All,
    /// No missed slot runs: the newest is recorded as skipped, saying how many were passed over.
    None,
}

/// `[scheduler]`: how the processes running jobs share them through the run history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// How long a running run stays claimed without a heartbeat. A process that dies (kill -9,
    /// a lost host) stops renewing it; once it lapses, another process resumes the run as its
    /// next attempt. Shorter recovers sooner; it must comfortably exceed a database hiccup.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often a scheduler looks in the run history for work other processes queued (a
    /// `jobs trigger` from the CLI, a resumable run of a process that died).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// PostgreSQL for the run history; unset, it is `[log] postgres`, then `[store] postgres`,
    /// then the embedded `DATA_DIR/meta.db`.
    pub postgres: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            postgres: None,
        }
    }
}

fn utc() -> String {
    "UTC".into()
}
fn default_retries() -> u32 {
    2
}
fn default_retry_backoff() -> Duration {
    Duration::from_secs(10)
}
fn default_max_queued() -> u32 {
    10
}
fn default_timeout() -> Duration {
    Duration::from_secs(60 * 60)
}

/// How much a run fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSize {
    Users(u64),
    Duration(Duration),
}

impl JobConfig {
    /// When the job's slots fall; the error names the job and the key.
    pub fn timing(&self) -> anyhow::Result<Timing> {
        let name = &self.name;
        match (&self.cron, self.every) {
            (Some(cron), None) => Timing::cron(cron, &self.timezone),
            (None, Some(every)) => Timing::interval(every),
            (Some(_), Some(_)) => Err("cron and every are both set; choose one".into()),
            (None, None) => Err("neither cron nor every is set".into()),
        }
        .map_err(|why| anyhow::anyhow!("jobs.{name}: {why}"))
    }

    pub fn size(&self) -> anyhow::Result<RunSize> {
        let name = &self.name;
        match (self.users, self.duration) {
            (Some(0), _) => anyhow::bail!("jobs.{name}.users = 0 would fetch nothing"),
            (Some(users), None) => Ok(RunSize::Users(users)),
            (None, Some(d)) if d.is_zero() => {
                anyhow::bail!("jobs.{name}.duration = 0s would fetch nothing")
            }
            (None, Some(duration)) => Ok(RunSize::Duration(duration)),
            (Some(_), Some(_)) => {
                anyhow::bail!("jobs.{name}: users and duration are both set; choose one")
            }
            (None, None) => anyhow::bail!(
                "jobs.{name}: set users (users per run) or duration (how long a run fetches)"
            ),
        }
    }

    /// When a new run of the job is queued, and when skipped.
    pub fn admission(&self) -> crate::scheduler::history::Admission {
        use crate::scheduler::history::Admission;
        match self.overlap {
            OverlapPolicy::Skip => Admission::WhenIdle,
            OverlapPolicy::Queue => Admission::Queue {
                max_queued: self.max_queued,
            },
        }
    }

    /// Every check on one job.
    pub fn validate(&self) -> anyhow::Result<()> {
        let name = &self.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            anyhow::bail!(
                "jobs: name {name:?} must be letters, digits, '_' or '-' (it is used in URLs and metrics)"
            );
        }
        self.timing()?;
        if self.every.is_some() && self.timezone != "UTC" {
            anyhow::bail!(
                "jobs.{name}: timezone applies to cron only; an interval falls on multiples of itself since the epoch (UTC)"
            );
        }
        if self.overlap == OverlapPolicy::Queue && self.max_queued == 0 {
            anyhow::bail!(
                "jobs.{name}.max_queued = 0 would queue nothing; set overlap = \"skip\" instead"
            );
        }
        if self.timeout.is_zero() {
            anyhow::bail!("jobs.{name}.timeout must be more than 0s");
        }
        if let RunSize::Duration(duration) = self.size()?
            && duration >= self.timeout
        {
            anyhow::bail!(
                "jobs.{name}.duration = {} is not shorter than its timeout ({}): every run would time out",
                humantime::format_duration(duration),
                humantime::format_duration(self.timeout)
            );
        }
        Ok(())
    }
}

/// Checks every job, and that names are unique.
pub fn validate_jobs(jobs: &[JobConfig], scheduler: &SchedulerConfig) -> anyhow::Result<()> {
    let mut names = std::collections::HashSet::new();
    for job in jobs {
        job.validate()?;
        if !names.insert(&job.name) {
            anyhow::bail!("jobs: two jobs are named {:?}", job.name);
        }
    }
    if scheduler.lease < Duration::from_secs(1) {
        anyhow::bail!("scheduler.lease must be at least 1s");
    }
    if scheduler.poll_interval.is_zero() {
        anyhow::bail!("scheduler.poll_interval must be more than 0s");
    }
    Ok(())
}
