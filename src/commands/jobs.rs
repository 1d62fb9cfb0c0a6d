//! `userstream jobs`: the scheduled ingest jobs, their run history, manual runs, and the
//! scheduler on its own.

use super::output::print_table;
use super::{EXIT_SKIPPED, ExitWith, runtime, shutdown_on_signal};
use crate::cli::{JobsArgs, JobsCommand, OutputFormat};
use crate::config::Config;
use crate::log::AppendSignal;
use crate::pipeline::endpoints::Endpoints;
use crate::pipeline::jobs::Jobs;
use crate::scheduler::scheduler::{record_manual, run_manual};
use crate::scheduler::view::job_views;
use crate::scheduler::{Clock, OnShutdown, RunRecord, RunStatus};
use chrono::{DateTime, SecondsFormat, Utc};

pub fn execute(config: Config, args: JobsArgs) -> anyhow::Result<()> {
    config.validate()?;
    runtime()?.block_on(async {
        let Some(jobs) = Jobs::open(&config).await? else {
            anyhow::bail!(
                "no jobs are configured; add a [[jobs]] table (name, cron or every, users or duration) to the configuration"
            );
        };
        match args.command.unwrap_or(JobsCommand::List) {
            JobsCommand::List => list(&jobs, args.format).await,
            JobsCommand::Runs { name, limit } => {
                if let Some(name) = &name {
                    jobs.find(name)?;
                }
                let runs = jobs.history.list(name.as_deref(), limit).await?;
                print_runs(&runs, args.format)
            }
            JobsCommand::Trigger { name, users } => trigger(&config, &jobs, &name, users).await,
            JobsCommand::Schedule => schedule(&config, &jobs).await,
        }
    })
}

async fn list(jobs: &Jobs, format: OutputFormat) -> anyhow::Result<()> {
    let views = job_views(&jobs.jobs, &jobs.history, Utc::now()).await?;
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&views)?),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = views
                .iter()
                .map(|v| {
                    vec![
                        v.name.clone(),
                        v.schedule.clone(),
                        v.size.clone(),
                        time(v.next_due),
                        v.last_run
                            .as_ref()
                            .map_or("-".into(), |r| r.status.as_str().to_owned()),
                        v.last_run
                            .as_ref()
                            .map_or("-".into(), |r| time(r.ended_at.or(r.started_at))),
                    ]
                })
                .collect();
            print_table(
                &[
                    "job",
                    "schedule",
                    "size",
                    "next_due",
                    "last_status",
                    "last_at",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or("-".into(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn print_runs(runs: &[RunRecord], format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(runs)?),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    let errors: Vec<String> = r
                        .api_errors
                        .iter()
                        .map(|(k, n)| format!("{k}={n}"))
                        .collect();
                    vec![
                        r.run_id.clone(),
                        r.job.clone(),
                        time(r.slot),
                        r.trigger.as_str().to_owned(),
                        r.status.as_str().to_owned(),
                        r.attempt.to_string(),
                        time(r.started_at),
                        time(r.ended_at),
                        r.users_fetched.to_string(),
                        r.users_published.to_string(),
                        errors.join(","),
                        r.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "run_id",
                    "job",
                    "slot",
                    "trigger",
                    "status",
                    "attempt",
                    "started",
                    "ended",
                    "fetched",
                    "published",
                    "api_errors",
                    "error",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

/// A manual run in the foreground, for a person or an orchestrator (Airflow): the run as JSON
/// on the last line of stdout, and the outcome in the exit code.
async fn trigger(
    config: &Config,
    jobs: &Jobs,
    name: &str,
    users: Option<u64>,
) -> anyhow::Result<()> {
    let job = jobs.find(name)?;
    if users == Some(0) {
        anyhow::bail!("--users 0 would fetch nothing");
    }
    let ctx = jobs.context(
        config,
        AppendSignal::new(),
        shutdown_on_signal(),
        OnShutdown::Fail,
    );
    let run = record_manual(&jobs.history, &Clock::System, job, users).await?;
    let run = run_manual(&ctx, job, run, config.scheduler.poll_interval).await?;
    println!("{}", serde_json::to_string(&run)?);
    let message = |what: &str| {
        format!(
            "run {} of {} {what}: {}",
            run.run_id,
            run.job,
            run.error.as_deref().unwrap_or("no reason recorded")
        )
    };
    match run.status {
        RunStatus::Succeeded => Ok(()),
        RunStatus::Skipped => Err(ExitWith {
            code: EXIT_SKIPPED,
            message: message("was skipped"),
        }
        .into()),
        RunStatus::TimedOut => anyhow::bail!(message("timed out")),
        _ => anyhow::bail!(message(run.status.as_str())),
    }
}

/// The scheduler alone, with `/jobs`, `/metrics` and the health endpoints.
async fn schedule(config: &Config, jobs: &Jobs) -> anyhow::Result<()> {
    let cancel = shutdown_on_signal();
    let endpoints = Endpoints::start(config, jobs.router(&config.http)?, cancel.clone()).await?;
    tracing::info!(
        jobs = ?jobs.jobs.iter().map(|j| j.config.name.as_str()).collect::<Vec<_>>(),
        "scheduler started"
    );
    let result = jobs
        .scheduler(config, AppendSignal::new(), cancel.clone())
        .run()
        .await;
    endpoints.stop().await?;
    let users = result?;
    tracing::info!(users, "scheduler stopped");
    Ok(())
}
