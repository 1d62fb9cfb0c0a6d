//! `GET /metrics`: the Prometheus text exposition of [`crate::telemetry::metrics`].

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

pub fn router() -> Router {
    crate::telemetry::metrics::install();
    Router::new().route("/metrics", get(metrics))
}

async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::telemetry::metrics::render(),
    )
}
