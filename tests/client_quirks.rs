//! The randomuser.me client against a local server that misbehaves in every way DATA.md lists.

mod support;

use std::time::Duration;
use support::scripted_server::{Reply, ScriptedServer};
use userstream::log::{AppendSignal, RawLog, SqliteLog};
use userstream::source::generator::{Filters, write_page};
use userstream::source::randomuser::ClientConfig;
use userstream::source::{FetchError, FetchRequest, RandomUserClient, Source};

fn good_page(n: u32) -> String {
    let mut out = Vec::new();
    write_page(&mut out, "quirks", 1, n, &Filters::default()).unwrap();
    String::from_utf8(out).unwrap()
}

fn client(url: &str) -> RandomUserClient {
    RandomUserClient::new(client_config(url)).unwrap()
}

fn client_config(url: &str) -> ClientConfig {
    ClientConfig {
        url: url.to_owned(),
        timeout: Duration::from_millis(300),
        max_attempts: 4,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        users_per_window: Some(0),
        ..ClientConfig::default()
    }
}

const NAT: &[String] = &[];

/// Failed API requests by kind.
const API_ERRORS: &str = "userstream_api_errors_total";

fn request(results: u32) -> FetchRequest<'static> {
    FetchRequest {
        results,
        seed: "s1",
        page: 3,
        nat: NAT,
    }
}

#[tokio::test]
async fn sends_results_seed_page_and_nat() {
    let server = ScriptedServer::start(vec![Reply::ok(good_page(2))]).await;
    let nat = vec!["GB".to_owned(), "FR".to_owned()];
    let page = client(&server.url)
        .fetch(&FetchRequest {
            results: 2,
            seed: "abc",
            page: 7,
            nat: &nat,
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 2);
    let target = &server.requests()[0].target;
    for part in ["results=2", "seed=abc", "page=7", "nat=GB%2CFR"] {
        assert!(target.contains(part), "{part} not in {target}");
    }
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let metrics = support::metrics::LocalMetrics::install();
    let server =
        ScriptedServer::start(vec![Reply::too_many(Some("1")), Reply::ok(good_page(3))]).await;
    let mut client = client(&server.url);
    let page = client.fetch(&request(3)).await.unwrap();
    assert_eq!(page.records.len(), 3);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, Retry-After said 1 s"
    );
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "rate_limited"), 1);
}

#[tokio::test]
async fn rate_limit_honours_retry_after_as_an_http_date() {
    // Whole seconds on the wire: two from now is at least one away.
    let at = std::time::SystemTime::now() + Duration::from_secs(2);
    let date = httpdate::fmt_http_date(at);
    let server =
        ScriptedServer::start(vec![Reply::too_many(Some(&date)), Reply::ok(good_page(3))]).await;
    let mut client = client(&server.url);
    client.fetch(&request(3)).await.unwrap();
    let requests = server.requests();
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, Retry-After said {date}"
    );
}

#[tokio::test]
async fn rate_limit_without_retry_after_backs_off_and_retries() {
    let metrics = support::metrics::LocalMetrics::install();
    let server = ScriptedServer::start(vec![
        Reply::too_many(None),
        Reply::too_many(Some("soon")),
        Reply::ok(good_page(1)),
    ])
    .await;
    let mut client = client(&server.url);
    assert_eq!(client.fetch(&request(1)).await.unwrap().records.len(), 1);
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "rate_limited"), 2);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let metrics = support::metrics::LocalMetrics::install();
    let server = ScriptedServer::start(vec![
        Reply::status(503, "Service Unavailable"),
        Reply::status(504, "<html>Gateway Timeout</html>"),
        Reply::status(500, ""),
        Reply::ok(good_page(2)),
    ])
    .await;
    let mut client = client(&server.url);
    assert_eq!(client.fetch(&request(2)).await.unwrap().records.len(), 2);
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "server_error"), 3);
}

#[tokio::test]
async fn timeouts_are_retried() {
    let metrics = support::metrics::LocalMetrics::install();
    let server = ScriptedServer::start(vec![
        Reply::Hang(Duration::from_secs(5)),
        Reply::ok(good_page(1)),
    ])
    .await;
    let mut client = client(&server.url);
    assert_eq!(client.fetch(&request(1)).await.unwrap().records.len(), 1);
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "timeout"), 1);
}

#[tokio::test]
async fn error_body_with_status_200_is_retried() {
    let metrics = support::metrics::LocalMetrics::install();
    let server = ScriptedServer::start(vec![
        Reply::ok(r#"{"error": "Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you."}"#),
        Reply::ok(good_page(1)),
    ])
    .await;
    let mut client = client(&server.url);
    assert_eq!(client.fetch(&request(1)).await.unwrap().records.len(), 1);
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "api_error"), 1);
}

#[tokio::test]
async fn cut_connections_and_truncated_json_are_retried() {
    let metrics = support::metrics::LocalMetrics::install();
    let page = good_page(4);
    let server = ScriptedServer::start(vec![
        Reply::CutShort {
            body: page[..page.len() / 2].to_owned(),
            missing: page.len() / 2,
        },
        Reply::ok(page[..page.len() - 10].to_owned()),
        Reply::ok(page.clone()),
    ])
    .await;
    let mut client = client(&server.url);
    assert_eq!(client.fetch(&request(4)).await.unwrap().records.len(), 4);
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "transport"), 1);
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "malformed"), 1);
}

#[tokio::test]
async fn persistent_non_json_gives_up_with_a_clear_error() {
    let metrics = support::metrics::LocalMetrics::install();
    let html = || Reply::ok("<html><body>Cloudflare: origin unreachable</body></html>");
    let server = ScriptedServer::start(vec![html(), html(), html(), html(), html()]).await;
    let mut client = client(&server.url);
    let err = client.fetch(&request(1)).await.unwrap_err();
    assert!(
        matches!(err, FetchError::GaveUp { attempts: 4, .. }),
        "{err}"
    );
    // Where and how big, never what: a body is not quoted into messages (see `parse_page`).
    let text = err.to_string();
    assert!(
        text.contains("not JSON at line 1 column 1 of 56 bytes") && !text.contains("Cloudflare"),
        "{text}"
    );
    assert_eq!(server.requests().len(), 4);
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "malformed"), 4);
}

#[tokio::test]
async fn empty_results_are_an_empty_page() {
    let metrics = support::metrics::LocalMetrics::install();
    let server = ScriptedServer::start(vec![Reply::ok(
        r#"{"results":[],"info":{"seed":"s","results":0,"page":1,"version":"1.4"}}"#,
    )])
    .await;
    let mut client = client(&server.url);
    assert!(client.fetch(&request(5)).await.unwrap().records.is_empty());
    assert_eq!(metrics.counter(API_ERRORS, "error_type", "empty_page"), 1);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let server = ScriptedServer::start(vec![
        Reply::status(404, r#"{"error":"Not Found"}"#),
        Reply::ok(good_page(1)),
    ])
    .await;
    let err = client(&server.url).fetch(&request(1)).await.unwrap_err();
    assert_eq!(err.to_string(), "request rejected: HTTP 404: Not Found");
    assert_eq!(server.requests().len(), 1);
}

/// A 4xx body may echo anything, credentials included, and error messages reach log lines: only
/// the API's own `error` text or the body's size is reported.
#[tokio::test]
async fn a_rejected_body_is_never_quoted() {
    let echo = r#"{"results":[{"login":{"password":"hunter2"}}]}"#;
    let server = ScriptedServer::start(vec![Reply::status(400, echo)]).await;
    let err = client(&server.url).fetch(&request(1)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("request rejected: HTTP 400: {} bytes of body", echo.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_page_writes_nothing_and_keeps_the_cursor() {
    let bad = || Reply::ok(r#"{"results":[{"login":{"uuid":"#);
    let server =
        ScriptedServer::start(vec![bad(), bad(), bad(), bad(), Reply::ok(good_page(5))]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(&dir.path().join("log.db")).unwrap();
    let settings = userstream::ingest::PageSettings {
        batch_size: 5,
        seed: Some("k".into()),
        nat: vec![],
    };
    let mut ingestor = userstream::ingest::Ingestor::new(
        client(&server.url),
        std::sync::Arc::new(log),
        &settings,
        "run".into(),
        AppendSignal::new(),
    )
    .await
    .unwrap();
    let err = ingestor.ingest_page().await.unwrap_err();
    assert!(err.to_string().contains("truncated JSON"), "{err}");
    assert_eq!(ingestor.cursor().next_page, 1);
    let check = SqliteLog::open(&dir.path().join("log.db")).unwrap();
    assert_eq!(check.last_seq().await.unwrap(), 0);
    // The next attempt asks for the same page and keeps it whole.
    assert_eq!(ingestor.ingest_page().await.unwrap(), 5);
    assert_eq!(check.last_seq().await.unwrap(), 5);
    assert!(server.requests()[4].target.contains("page=1"));
}

/// A server that never stops sending: the body is refused at the cap, each attempt, rather than
/// read until memory runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_is_cut_off_at_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                            Transfer-Encoding: chunked\r\n\r\n";
                socket.write_all(head.as_bytes()).await.unwrap();
                let mut chunk = format!("{:x}\r\n", 1 << 20).into_bytes();
                chunk.extend(std::iter::repeat_n(b' ', 1 << 20));
                chunk.extend(b"\r\n");
                // Until the client hangs up.
                while socket.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    // A timeout long enough that the cap, not the clock, ends each attempt on a loaded machine.
    let mut client = RandomUserClient::new(ClientConfig {
        timeout: Duration::from_secs(60),
        ..client_config(&url)
    })
    .unwrap();
    let err = client.fetch(&request(1)).await.unwrap_err();
    let limit = userstream::source::randomuser::MAX_BODY_BYTES;
    assert!(
        matches!(err, FetchError::GaveUp { attempts: 4, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("response body larger than {limit} bytes")),
        "{err}"
    );
}
