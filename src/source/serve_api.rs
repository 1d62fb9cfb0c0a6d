//! `userstream serve-api`: a local randomuser.me, backed by the generator.
//!
//! Any client (ours, curl, the tutorials' Python DAG) can point at it instead of the real API, for
//! offline runs and load tests. It follows the API's parameter rules: `results` outside 1..=5000
//! silently becomes 1, `seed` + `page` page through a reproducible set, `nat` and `gender` filter,
//! `inc` / `exc` keep or drop top-level fields; an unknown `nat` is a 400 with the API's error shape.

use super::generator::{Filters, Gender, write_page};
use axum::Router;
use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

/// Query parameters of `GET /api/`. All are strings, as on the real API, so that bad values are
/// handled the API's way rather than rejected by the extractor.
#[derive(Debug, Default, Deserialize)]
pub struct ApiParams {
    results: Option<String>,
    seed: Option<String>,
    page: Option<String>,
    nat: Option<String>,
    gender: Option<String>,
    inc: Option<String>,
    exc: Option<String>,
}

/// The router, separate from binding so tests can serve it on an ephemeral port.
pub fn router() -> Router {
    Router::new()
        .route("/api", get(users))
        .route("/api/", get(users))
        .route("/api/{version}", get(users))
        .route("/api/{version}/", get(users))
}

async fn users(Query(params): Query<ApiParams>) -> Response {
    let results = params
        .results
        .as_deref()
        .and_then(|r| r.trim().parse::<u32>().ok())
        .filter(|r| (1..=5000).contains(r))
        .unwrap_or(1);
    let page = params
        .page
        .as_deref()
        .and_then(|p| p.trim().parse::<u64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let seed = params
        .seed
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let nat: Vec<String> = params
        .nat
        .as_deref()
        .map(|n| {
            n.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_uppercase)
                .collect()
        })
        .unwrap_or_default();
    // The API ignores a gender it doesn't know.
    let gender = params
        .gender
        .as_deref()
        .and_then(|g| g.parse::<Gender>().ok());

    let mut body = Vec::with_capacity(results as usize * 1200);
    if let Err(err) = write_page(
        &mut body,
        &seed,
        page,
        results,
        &Filters { nat: &nat, gender },
    ) {
        let error = serde_json::json!({ "error": err.to_string() });
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    if params.inc.is_some() || params.exc.is_some() {
        body = select_fields(&body, params.inc.as_deref(), params.exc.as_deref());
    }
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Applies `inc` / `exc` to each user's top-level fields.
fn select_fields(body: &[u8], inc: Option<&str>, exc: Option<&str>) -> Vec<u8> {
    let list = |s: Option<&str>| -> Vec<String> {
        s.map(|s| s.split(',').map(|f| f.trim().to_lowercase()).collect())
            .unwrap_or_default()
    };
    let (inc, exc) = (list(inc), list(exc));
    let mut doc: serde_json::Value =
        serde_json::from_slice(body).expect("generator output is JSON");
    if let Some(users) = doc["results"].as_array_mut() {
        for user in users {
            if let Some(fields) = user.as_object_mut() {
                fields.retain(|k, _| (inc.is_empty() || inc.contains(k)) && !exc.contains(k));
            }
        }
    }
    serde_json::to_vec(&doc).expect("JSON value serialises")
}
