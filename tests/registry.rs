//! The embedded Schema Registry: Confluent's REST subset and error codes, durability, and
//! interoperability with the real Python `confluent-kafka` client.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use support::python::python;
use userstream::avro::{USER_SCHEMA, decode_frame, decode_user, encode_user};
use userstream::process::transform;
use userstream::registry::{RegistryClient, RegistryStore, server};

async fn serve(path: &std::path::Path) -> String {
    let store = Arc::new(RegistryStore::open(path).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, server::router(store)).await });
    url
}

async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut request = http.request(method.parse().unwrap(), url);
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

fn record(fields: Value) -> Value {
    json!({"schema": json!({"type": "record", "name": "T", "fields": fields}).to_string()})
}

#[tokio::test]
async fn rest_api_answers_like_confluent() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(&dir.path().join("registry.db")).await;
    let v1 = record(json!([{"name": "a", "type": "string"}]));
    let subject = format!("{url}/subjects/t-value");

    assert_eq!(
        call("POST", &format!("{subject}/versions"), Some(v1.clone())).await,
        (200, json!({"id": 1}))
    );
    assert_eq!(
        call("POST", &format!("{subject}/versions"), Some(v1.clone())).await,
        (200, json!({"id": 1}))
    );
    let (_, schema) = call("GET", &format!("{url}/schemas/ids/1"), None).await;
    assert!(schema["schema"].as_str().unwrap().contains("\"T\""));
    assert_eq!(
        call("GET", &format!("{url}/subjects"), None).await.1,
        json!(["t-value"])
    );

    // BACKWARD by default: a new required field can't read old data; one with a default can.
    let breaking = record(json!([{"name": "a", "type": "string"}, {"name": "b", "type": "int"}]));
    let (status, err) = call(
        "POST",
        &format!("{subject}/versions"),
        Some(breaking.clone()),
    )
    .await;
    assert_eq!((status, err["error_code"].clone()), (409, json!(409)));
    let compatible = record(
        json!([{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}]),
    );
    let (status, check) = call(
        "POST",
        &format!("{url}/compatibility/subjects/t-value/versions/latest"),
        Some(compatible.clone()),
    )
    .await;
    assert_eq!((status, check), (200, json!({"is_compatible": true})));
    assert_eq!(
        call(
            "POST",
            &format!("{subject}/versions"),
            Some(compatible.clone())
        )
        .await,
        (200, json!({"id": 2}))
    );
    assert_eq!(
        call("GET", &format!("{subject}/versions"), None).await.1,
        json!([1, 2])
    );
    let (_, latest) = call("GET", &format!("{subject}/versions/latest"), None).await;
    assert_eq!(
        (
            latest["version"].clone(),
            latest["id"].clone(),
            latest["subject"].clone()
        ),
        (json!(2), json!(2), json!("t-value"))
    );
    let (_, found) = call("POST", &subject, Some(v1.clone())).await;
    assert_eq!(found["version"], 1);

    for (method, path, body, status, code) in [
        (
            "POST",
            format!("{subject}/versions"),
            Some(json!({"schema": "{\"type\": \"nope\"}"})),
            422,
            42201,
        ),
        (
            "GET",
            format!("{url}/subjects/missing/versions"),
            None,
            404,
            40401,
        ),
        ("GET", format!("{subject}/versions/9"), None, 404, 40402),
        ("GET", format!("{subject}/versions/abc"), None, 422, 42202),
        ("GET", format!("{url}/schemas/ids/99"), None, 404, 40403),
        ("GET", format!("{url}/config/t-value"), None, 404, 40408),
        (
            "PUT",
            format!("{url}/config"),
            Some(json!({"compatibility": "SIDEWAYS"})),
            422,
            42203,
        ),
    ] {
        let (got, err) = call(method, &path, body).await;
        assert_eq!(
            (got, err["error_code"].clone()),
            (status, json!(code)),
            "{method} {path}"
        );
        assert!(err["message"].is_string());
    }

    assert_eq!(
        call("GET", &format!("{url}/config"), None).await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        call(
            "PUT",
            &format!("{url}/config/t-value"),
            Some(json!({"compatibility": "none"}))
        )
        .await
        .1,
        json!({"compatibility": "NONE"})
    );
    assert_eq!(
        call("POST", &format!("{subject}/versions"), Some(breaking))
            .await
            .0,
        200
    );

    // Soft delete hides, permanent delete needs a soft one first.
    assert_eq!(
        call("DELETE", &format!("{subject}?permanent=true"), None)
            .await
            .1["error_code"],
        40405
    );
    assert_eq!(
        call("DELETE", &subject, None).await,
        (200, json!([1, 2, 3]))
    );
    assert_eq!(
        call("GET", &format!("{url}/subjects"), None).await.1,
        json!([])
    );
    assert_eq!(
        call("GET", &format!("{url}/subjects?deleted=true"), None)
            .await
            .1,
        json!(["t-value"])
    );
    assert_eq!(
        call("GET", &format!("{url}/schemas/ids/1"), None).await.0,
        200,
        "ids outlive soft deletes"
    );
    assert_eq!(
        call("DELETE", &format!("{subject}?permanent=true"), None).await,
        (200, json!([1, 2, 3]))
    );
}

/// Where our registry used to differ from Confluent's: version deletes (soft first, then
/// permanent), a second soft delete of a subject, versions past 2^31-1, errors that were not
/// JSON, and `/schemas/ids/{id}/versions`.
#[tokio::test]
async fn deletes_errors_and_id_lookups_match_confluent() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(&dir.path().join("registry.db")).await;
    let subject = format!("{url}/subjects/d-value");
    let code = |reply: (u16, Value)| (reply.0, reply.1["error_code"].clone());
    for fields in [
        json!([{"name": "a", "type": "string"}]),
        json!([{"name": "a", "type": "string"}, {"name": "b", "type": ["null", "int"], "default": null}]),
    ] {
        assert_eq!(
            call("POST", &format!("{subject}/versions"), Some(record(fields)))
                .await
                .0,
            200
        );
    }
    assert_eq!(
        call("GET", &format!("{url}/schemas/ids/1/versions"), None).await,
        (200, json!([{"subject": "d-value", "version": 1}]))
    );
    assert_eq!(
        code(call("GET", &format!("{url}/schemas/ids/77/versions"), None).await),
        (404, json!(40403))
    );

    // A version: permanent only after soft, soft only once.
    let v1 = format!("{subject}/versions/1");
    assert_eq!(
        code(call("DELETE", &format!("{v1}?permanent=true"), None).await),
        (404, json!(40407))
    );
    assert_eq!(call("GET", &v1, None).await.0, 200, "still there");
    assert_eq!(call("DELETE", &v1, None).await, (200, json!(1)));
    assert_eq!(code(call("DELETE", &v1, None).await), (404, json!(40406)));
    assert_eq!(
        call("GET", &format!("{url}/schemas/ids/1/versions"), None).await,
        (200, json!([]))
    );
    assert_eq!(
        call(
            "GET",
            &format!("{url}/schemas/ids/1/versions?deleted=true"),
            None
        )
        .await,
        (200, json!([{"subject": "d-value", "version": 1}]))
    );
    assert_eq!(
        call("DELETE", &format!("{v1}?permanent=true"), None).await,
        (200, json!(1))
    );
    assert_eq!(
        call("GET", &format!("{subject}/versions?deleted=true"), None).await,
        (200, json!([2]))
    );

    // The subject: a second soft delete is 40404, not "not found".
    assert_eq!(call("DELETE", &subject, None).await, (200, json!([2])));
    assert_eq!(
        code(call("DELETE", &subject, None).await),
        (404, json!(40404))
    );

    // Versions out of range are invalid, however large.
    for version in ["0", "2147483648", "99999999999999999999"] {
        assert_eq!(
            code(call("GET", &format!("{url}/subjects/x/versions/{version}"), None).await),
            (422, json!(42202)),
            "{version}"
        );
    }

    // Every error is JSON with a code, even those the framework answers.
    for (method, path, status) in [
        ("GET", format!("{url}/no/such/endpoint"), 404),
        ("GET", format!("{url}/schemas/ids/abc"), 400),
        ("PATCH", format!("{url}/subjects"), 405),
    ] {
        let (got, body) = call(method, &path, None).await;
        assert_eq!(got, status, "{method} {path}");
        assert_eq!(body["error_code"], json!(status), "{method} {path}: {body}");
        assert!(body["message"].is_string());
    }
}

#[tokio::test]
async fn schemas_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let id = RegistryClient::new(&serve(&path).await)
        .register("users_created-value", USER_SCHEMA)
        .await
        .unwrap();
    let again = RegistryClient::new(&serve(&path).await);
    assert!(again.schema(id).await.is_ok());
    assert_eq!(
        again
            .register("users_created-value", USER_SCHEMA)
            .await
            .unwrap(),
        id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_confluent_client_and_userstream_read_each_others_records() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(&dir.path().join("registry.db")).await;
    let schema_file = dir.path().join("user.avsc");
    std::fs::write(&schema_file, USER_SCHEMA).unwrap();
    let users = support::redacted_users("interop", 2);

    // Python produces (registering through our registry), we consume.
    let (u, s, f) = (
        url.clone(),
        schema_file.display().to_string(),
        users[0].clone(),
    );
    let hex =
        tokio::task::spawn_blocking(move || python(&["produce", &u, &s], &f).trim().to_owned())
            .await
            .unwrap();
    let framed: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let (id, datum) = decode_frame(&framed).unwrap();
    let client = RegistryClient::new(&url);
    let writer = client.schema(id).await.unwrap();
    let ours = decode_user(id, &writer, datum).unwrap();
    assert_eq!(
        transform(&ours, chrono::DateTime::UNIX_EPOCH).unwrap(),
        transform(&users[0], chrono::DateTime::UNIX_EPOCH).unwrap()
    );

    // We produce, Python consumes.
    let id = client
        .register("users_created-value", USER_SCHEMA)
        .await
        .unwrap();
    let framed = encode_user(id, &users[1]).unwrap();
    let hex: String = framed.iter().map(|b| format!("{b:02x}")).collect();
    let u = url.clone();
    let theirs = tokio::task::spawn_blocking(move || python(&["consume", &u, &hex], ""))
        .await
        .unwrap();
    let theirs: Value = serde_json::from_str(&theirs).unwrap();
    let original: Value = serde_json::from_str(&users[1]).unwrap();
    assert_eq!(theirs["login"]["uuid"], original["login"]["uuid"]);
    assert_eq!(
        theirs["location"]["postcode"],
        original["location"]["postcode"]
    );
    assert_eq!(theirs["name"], original["name"]);
}

/// How the client classifies a registry's answers, which decides whether a consumer waits,
/// dead-letters or stops: only "no such schema" (40403) blames the message; 5xx, 408 and 429 are
/// waited out; anything else (401, a 404 from a wrong path) is nobody's message's fault.
#[tokio::test]
async fn registry_answers_are_told_apart() {
    use support::scripted_server::{Reply, ScriptedServer};
    use userstream::registry::client::ClientError;
    let server = ScriptedServer::start(vec![
        Reply::status(
            404,
            r#"{"error_code":40403,"message":"Schema 7 not found"}"#,
        ),
        Reply::status(503, ""),
        Reply::status(429, r#"{"error_code":429,"message":"slow down"}"#),
        Reply::status(401, r#"{"error_code":401,"message":"Unauthorized"}"#),
        Reply::status(404, "<html>no such path</html>"),
    ])
    .await;
    let client = RegistryClient::new(server.url.trim_end_matches("/api/"));
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(client.schema(7).await.unwrap_err());
    }
    assert!(
        matches!(answers[0], ClientError::NotFound { id: 7, .. }),
        "{:?}",
        answers[0]
    );
    assert!(
        answers[1].is_transient() && answers[2].is_transient(),
        "{answers:?}"
    );
    for answer in &answers[3..] {
        assert!(
            !answer.is_transient() && !matches!(answer, ClientError::NotFound { .. }),
            "{answer:?}"
        );
    }
}

/// A registry that accepts the connection and never answers is unavailable (transient), once
/// the client's call timeout passes: a consumer backs off and asks again rather than hanging on
/// it or dead-lettering the message.
#[tokio::test]
async fn a_registry_that_hangs_is_unavailable_not_a_hang() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            open.push(socket); // held open, never answered
        }
    });
    let err = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        RegistryClient::new(&url).schema(7),
    )
    .await
    .expect("the client's own timeout ends the call")
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    held.abort();
}
