//! The REST endpoints Confluent clients use (serializers, `SchemaRegistryClient`, Kafka Connect).
//! Bodies are parsed by hand: clients send `application/vnd.schemaregistry.v1+json`, which a
//! plain JSON extractor would reject.

use super::error::RegistryError;
use super::store::RegistryStore;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = State<Arc<RegistryStore>>;
type Params = Query<HashMap<String, String>>;
type Reply = Result<Response, RegistryError>;

fn reply(body: Value) -> Reply {
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response())
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true")
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
}

fn schema_body(body: &Bytes) -> Result<String, RegistryError> {
    let parsed: SchemaBody = serde_json::from_slice(body)
        .map_err(|e| RegistryError::InvalidSchema(format!("request body: {e}")))?;
    match parsed.schema_type.as_deref() {
        None | Some("AVRO") => Ok(parsed.schema),
        Some(other) => Err(RegistryError::InvalidSchema(format!(
            "schema type {other} is not supported; only AVRO"
        ))),
    }
}

pub fn router(store: Arc<RegistryStore>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/schemas/types", get(|| async { reply(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route(
            "/schemas/ids/{id}/versions",
            get(subject_versions_of_schema),
        )
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version_schema),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config).put(set_subject_config),
        )
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .layer(axum::middleware::map_response(errors_as_json))
        .with_state(store)
}

/// Runs `op` on the store off the async workers: the store is one SQLite connection behind a
/// mutex, and a write waits for its fsync (`synchronous = FULL`).
async fn on_store<T: Send + 'static>(
    store: Arc<RegistryStore>,
    op: impl FnOnce(&RegistryStore) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .map_err(|e| RegistryError::Storage(format!("registry store task failed: {e}")))?
}

async fn schema_by_id(State(store): Shared, Path(id): Path<i64>) -> Reply {
    let schema = on_store(store, move |s| s.schema_by_id(id)).await?;
    reply(json!({ "schema": schema }))
}

async fn raw_schema_by_id(State(store): Shared, Path(id): Path<i64>) -> Reply {
    let schema = on_store(store, move |s| s.schema_by_id(id)).await?;
    reply(serde_json::from_str(&schema).unwrap_or(Value::Null))
}

async fn subjects(State(store): Shared, Query(params): Params) -> Reply {
    let deleted = flag(&params, "deleted");
    reply(json!(on_store(store, move |s| s.subjects(deleted)).await?))
}

async fn register(State(store): Shared, Path(subject): Path<String>, body: Bytes) -> Reply {
    let schema = schema_body(&body)?;
    let id = on_store(store, move |s| s.register(&subject, &schema)).await?;
    reply(json!({ "id": id }))
}

async fn lookup(State(store): Shared, Path(subject): Path<String>, body: Bytes) -> Reply {
    let schema = schema_body(&body)?;
    reply(json!(
        on_store(store, move |s| s.lookup(&subject, &schema)).await?
    ))
}

async fn versions(
    State(store): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Reply {
    let deleted = flag(&params, "deleted");
    reply(json!(
        on_store(store, move |s| s.versions(&subject, deleted)).await?
    ))
}

async fn version(State(store): Shared, Path((subject, version)): Path<(String, String)>) -> Reply {
    reply(json!(
        on_store(store, move |s| s.version(&subject, &version)).await?
    ))
}

async fn raw_version_schema(
    State(store): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Reply {
    let found = on_store(store, move |s| s.version(&subject, &version)).await?;
    reply(serde_json::from_str(&found.schema).unwrap_or(Value::Null))
}

async fn compatibility(
    State(store): Shared,
    Path((subject, version)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let schema = schema_body(&body)?;
    let compatible = on_store(store, move |s| s.is_compatible(&subject, &version, &schema)).await?;
    reply(json!({ "is_compatible": compatible }))
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

fn config_body(body: &Bytes) -> Result<String, RegistryError> {
    serde_json::from_slice::<ConfigBody>(body)
        .map(|c| c.compatibility)
        .map_err(|_| RegistryError::InvalidCompatibility)
}

async fn global_config(State(store): Shared) -> Reply {
    let level = on_store(store, |s| s.level(None)).await?;
    reply(json!({ "compatibilityLevel": level }))
}

async fn set_global_config(State(store): Shared, body: Bytes) -> Reply {
    let level = config_body(&body)?;
    let set = on_store(store, move |s| s.set_level(None, &level)).await?;
    reply(json!({ "compatibility": set }))
}

async fn subject_config(
    State(store): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Reply {
    let default_to_global = flag(&params, "defaultToGlobal");
    let level = on_store(store, move |s| match s.level(Some(&subject))? {
        Some(level) => Ok(level),
        None if default_to_global => Ok(s.level(None)?.unwrap_or_default()),
        None => Err(RegistryError::SubjectConfigNotFound(subject)),
    })
    .await?;
    reply(json!({ "compatibilityLevel": level }))
}

async fn set_subject_config(
    State(store): Shared,
    Path(subject): Path<String>,
    body: Bytes,
) -> Reply {
    let level = config_body(&body)?;
    let set = on_store(store, move |s| s.set_level(Some(&subject), &level)).await?;
    reply(json!({ "compatibility": set }))
}

async fn delete_subject(
    State(store): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
) -> Reply {
    let permanent = flag(&params, "permanent");
    reply(json!(
        on_store(store, move |s| s.delete_subject(&subject, permanent)).await?
    ))
}

async fn delete_version(
    State(store): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Reply {
    let permanent = flag(&params, "permanent");
    reply(json!(
        on_store(store, move |s| s
            .delete_version(&subject, &version, permanent))
        .await?
    ))
}

async fn subject_versions_of_schema(
    State(store): Shared,
    Path(id): Path<i64>,
    Query(params): Params,
) -> Reply {
    let deleted = flag(&params, "deleted");
    let pairs = on_store(store, move |s| s.subject_versions_of(id, deleted)).await?;
    reply(Value::Array(
        pairs
            .into_iter()
            .map(|(subject, version)| json!({ "subject": subject, "version": version }))
            .collect(),
    ))
}

/// Confluent answers every error as `{"error_code", "message"}` JSON, and its clients parse it.
/// axum's own rejections (no such route, wrong method, a path parameter that is not a number)
/// come as plain text or an empty body; this rewrites any error response that is not JSON.
async fn errors_as_json(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let detail = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|text| !text.is_empty());
    let reason = status.canonical_reason().unwrap_or("");
    let message = match detail {
        Some(detail) => format!("HTTP {} {reason}: {detail}", status.as_u16()),
        None => format!("HTTP {} {reason}", status.as_u16()),
    };
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        json!({ "error_code": status.as_u16(), "message": message }).to_string(),
    )
        .into_response()
}
