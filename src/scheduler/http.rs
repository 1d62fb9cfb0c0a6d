//! `/jobs` on the shared HTTP server: the jobs, their runs, and manual triggers.
//!
//! - `GET /jobs`: every job, its next due slot and its newest run.
//! - `GET /jobs/runs?job=NAME&limit=N`: runs, newest first.
//! - `POST /jobs/NAME/trigger?users=N`: records a manual run and wakes this process's scheduler
//!   to run it; answers 202 with the run (`queued`, or `skipped` when the job's overlap policy
//!   refuses it: busy under `skip`, or `max_queued` runs already waiting under `queue`). Guarded
//!   by [`crate::http::auth`].

use super::Clock;
use super::history::History;
use super::scheduler::{Job, record_manual};
use super::view::job_views;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Notify;

struct JobsApi {
    jobs: Vec<Job>,
    history: History,
    wake: Arc<Notify>,
}

/// `wake` is the scheduler's: a triggered run starts at once rather than at the next poll.
pub fn router(jobs: Vec<Job>, history: History, wake: Arc<Notify>) -> Router {
    Router::new()
        .route("/jobs", get(list_jobs))
        .route("/jobs/runs", get(list_runs))
        .route("/jobs/{name}/trigger", post(trigger))
        .with_state(Arc::new(JobsApi {
            jobs,
            history,
            wake,
        }))
}

fn problem(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

fn internal(err: impl std::fmt::Display) -> Response {
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("run history: {err}"),
    )
}

async fn list_jobs(State(api): State<Arc<JobsApi>>) -> Response {
    match job_views(&api.jobs, &api.history, Clock::System.now()).await {
        Ok(views) => Json(views).into_response(),
        Err(err) => internal(err),
    }
}

#[derive(Deserialize)]
struct RunsQuery {
    job: Option<String>,
    limit: Option<usize>,
}

async fn list_runs(State(api): State<Arc<JobsApi>>, Query(query): Query<RunsQuery>) -> Response {
    let limit = query.limit.unwrap_or(50).min(10_000);
    match api.history.list(query.job.as_deref(), limit).await {
        Ok(runs) => Json(runs).into_response(),
        Err(err) => internal(err),
    }
}

#[derive(Deserialize)]
struct TriggerQuery {
    users: Option<u64>,
}

async fn trigger(
    State(api): State<Arc<JobsApi>>,
    Path(name): Path<String>,
    Query(query): Query<TriggerQuery>,
) -> Response {
    let job = match Job::find(&api.jobs, &name) {
        Ok(job) => job,
        Err(err) => return problem(StatusCode::NOT_FOUND, err.to_string()),
    };
    if query.users == Some(0) {
        return problem(
            StatusCode::BAD_REQUEST,
            "users=0 would fetch nothing".into(),
        );
    }
    match record_manual(&api.history, &Clock::System, job, query.users).await {
        Ok(run) => {
            api.wake.notify_one();
            (StatusCode::ACCEPTED, Json(run)).into_response()
        }
        Err(err) => internal(err),
    }
}
