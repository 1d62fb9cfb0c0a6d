//! `GET /healthz` and `GET /readyz`.
//!
//! `/healthz` answers 200 while the process serves at all: a supervisor restarts a process that
//! stops answering it. `/readyz` asks every dependency the configuration names (the log, the
//! store, and on the Kafka path the brokers and the registry) for a cheap round trip, and answers
//! 503 naming each one that failed, so a load balancer or an operator sees *which* is down
//! rather than a pipeline that merely stopped moving. Each probe has its own timeout: a
//! dependency that hangs is a failed probe, not a hung endpoint.

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long one dependency may take to answer a probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

type ProbeFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One dependency's check: a name (`log`, `store`, `bus`, `registry`) and a round trip to it.
pub struct Probe {
    name: &'static str,
    check: Box<dyn Fn() -> ProbeFuture + Send + Sync>,
}

impl Probe {
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            check: Box::new(move || Box::pin(check())),
        }
    }
}

/// The probes of one process.
#[derive(Default)]
pub struct Readiness {
    probes: Vec<Probe>,
}

impl Readiness {
    pub fn new(probes: Vec<Probe>) -> Self {
        Self { probes }
    }

    /// Every probe, run together; `Err` holds why that dependency is not ready.
    pub async fn check(&self) -> Vec<(&'static str, Result<(), String>)> {
        let checks = self.probes.iter().map(|probe| async move {
            let result = match tokio::time::timeout(PROBE_TIMEOUT, (probe.check)()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            (probe.name, result)
        });
        futures::future::join_all(checks).await
    }
}

pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = Arc::clone(&readiness);
                async move { ready(&readiness).await }
            }),
        )
}

async fn ready(readiness: &Readiness) -> (StatusCode, Json<serde_json::Value>) {
    let results = readiness.check().await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let checks: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, result)| {
            let value = match result {
                Ok(()) => "ok".to_owned(),
                Err(why) => {
                    tracing::warn!(dependency = name, error = %why, "not ready");
                    why
                }
            };
            (name.to_owned(), value.into())
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": checks,
    });
    (status, Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failing_or_hanging_dependency_is_named() {
        let readiness = Readiness::new(vec![
            Probe::new("log", || async { Ok(()) }),
            Probe::new("store", || async { Err("connection refused".into()) }),
            Probe::new("bus", std::future::pending),
        ]);
        let (status, Json(body)) = ready(&readiness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["log"], "ok");
        assert_eq!(body["checks"]["store"], "connection refused");
        assert_eq!(body["checks"]["bus"], "no answer within 5s");
    }

    #[tokio::test]
    async fn ready_when_every_dependency_answers() {
        let readiness = Readiness::new(vec![Probe::new("log", || async { Ok(()) })]);
        let (status, Json(body)) = ready(&readiness).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ready");
    }
}
