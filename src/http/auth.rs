//! Who may change things over HTTP: `POST /jobs/NAME/trigger` today, the console's actions next.
//!
//! Reads (metrics, health, jobs and runs) answer whoever reaches the listener. A write starts
//! work and spends the API budget, so it needs `Authorization: Bearer TOKEN` once `[http] token`
//! is set. Without a token, writes are served only on a loopback listener: an operator who opens
//! `[http] listen` to let Prometheus scrape from another host must not thereby let that host
//! start runs. Refusals are answered, never silent: 401 or 403 with the reason.

use super::config::HttpConfig;
use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A bearer token. Never printed: `Debug` and `Serialize` show a placeholder, so a config dump or
/// a log line cannot leak it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Compared in constant time: a byte-by-byte early exit would let a client find the token
    /// one byte at a time from response times.
    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl serde::Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// What a write request must show, decided once from `[http]`.
#[derive(Debug, Clone)]
pub enum WriteAccess {
    /// `[http] token` is set: the bearer token.
    Token(Token),
    /// No token, loopback listener: only this host reaches it.
    Loopback,
    /// No token, a listener other hosts reach: writes are refused.
    Refused,
}

impl WriteAccess {
    pub fn new(http: &HttpConfig) -> anyhow::Result<Self> {
        if let Some(token) = &http.token {
            return Ok(Self::Token(token.clone()));
        }
        Ok(match http.address()? {
            Some(addr) if !addr.ip().is_loopback() => Self::Refused,
            _ => Self::Loopback,
        })
    }

    /// Why `request` may not write, as the status and message to answer; `None`: it may.
    fn refusal(&self, request: &Request) -> Option<(StatusCode, &'static str)> {
        match self {
            Self::Loopback => None,
            Self::Refused => Some((
                StatusCode::FORBIDDEN,
                "writes over a non-loopback [http] listen need [http] token (USERSTREAM_HTTP__TOKEN) to be set",
            )),
            Self::Token(token) => {
                let presented = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                match presented {
                    Some(presented) if token.matches(presented) => None,
                    Some(_) => Some((StatusCode::UNAUTHORIZED, "the bearer token is wrong")),
                    None => Some((
                        StatusCode::UNAUTHORIZED,
                        "this request changes state: send Authorization: Bearer <[http] token>",
                    )),
                }
            }
        }
    }
}

/// `router` with every request other than a read (`GET`, `HEAD`, `OPTIONS`) checked by `access`.
pub fn guard_writes(router: Router, access: WriteAccess) -> Router {
    let access = Arc::new(access);
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let access = Arc::clone(&access);
            async move {
                let read = matches!(
                    *request.method(),
                    Method::GET | Method::HEAD | Method::OPTIONS
                );
                if !read && let Some((status, message)) = access.refusal(&request) {
                    tracing::warn!(
                        method = %request.method(),
                        path = request.uri().path(),
                        status = status.as_u16(),
                        "HTTP write refused: {message}"
                    );
                    let body = serde_json::json!({ "error": message });
                    return (status, axum::Json(body)).into_response();
                }
                next.run(request).await
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    fn http(listen: &str, token: Option<&str>) -> HttpConfig {
        HttpConfig {
            listen: listen.into(),
            token: token.map(|t| Token(t.into())),
        }
    }

    async fn status(access: WriteAccess, method: Method, bearer: Option<&str>) -> StatusCode {
        let app = guard_writes(
            Router::new().route("/x", post(|| async { "done" }).get(|| async { "read" })),
            access,
        );
        let mut request = Request::builder().method(method).uri("/x");
        if let Some(bearer) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.status()
    }

    #[tokio::test]
    async fn writes_need_the_token_or_a_loopback_listener() {
        let token = || WriteAccess::new(&http("0.0.0.0:9464", Some("s3cret"))).unwrap();
        assert_eq!(status(token(), Method::POST, None).await, 401);
        assert_eq!(status(token(), Method::POST, Some("s3cre")).await, 401);
        assert_eq!(status(token(), Method::POST, Some("s3cret")).await, 200);
        assert_eq!(status(token(), Method::GET, None).await, 200);

        let open = || WriteAccess::new(&http("0.0.0.0:9464", None)).unwrap();
        assert_eq!(status(open(), Method::POST, None).await, 403);
        assert_eq!(status(open(), Method::GET, None).await, 200);

        let local = WriteAccess::new(&http("127.0.0.1:9464", None)).unwrap();
        assert_eq!(status(local, Method::POST, None).await, 200);
    }

    #[test]
    fn the_token_never_prints() {
        let config = http("127.0.0.1:0", Some("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&config).unwrap().contains("s3cret"));
    }
}
