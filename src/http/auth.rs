//! Who may change things over HTTP: `POST /jobs/NAME/trigger` today, the console's actions next.
//!
//! Reads (metrics, health, jobs and runs) answer whoever reaches the listener. A write starts
//! work and spends the API budget, so it needs `Authorization: Bearer TOKEN` once `[http] token`
//! is set. Without a token, writes are served only on a loopback listener: an operator who opens
//! `[http] listen` to let Prometheus scrape from another host must not thereby let that host
//! start runs. Even on loopback, a write must name a loopback `Host` and come from no other
//! `Origin`: a web page open in a browser on the same host can send a plain `POST` to
//! `127.0.0.1` (directly, or through a DNS name rebound to it), and those two headers are what
//! gives it away. Refusals are answered, never silent: 401 or 403 with the reason, and a log
//! line. Only the routes passed to [`guard_writes`] are guarded: the jobs API today.

use super::config::HttpConfig;
use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A bearer token. Never printed: `Debug` and `Serialize` show a placeholder, and a value that
/// cannot be a token is refused without quoting it, so a config dump, an error or a log line
/// cannot leak it.
#[derive(Clone)]
pub struct Token(String);

/// Shorter tokens are refused: a token is meant to be generated (`openssl rand -hex 32`), and a
/// short one can be guessed over the network.
pub const MIN_TOKEN_LEN: usize = 16;

impl Token {
    /// Compared in constant time: a byte-by-byte early exit would let a client find the token
    /// one byte at a time from response times.
    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// `Err` naming the key when the token is too short to be safe.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.0.chars().count() < MIN_TOKEN_LEN {
            anyhow::bail!(
                "http.token is shorter than {MIN_TOKEN_LEN} characters; generate one, e.g. `openssl rand -hex 32`"
            );
        }
        Ok(())
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Token {}

/// Figment reads `USERSTREAM_HTTP__TOKEN=123456` as a number, and serde's type error would quote
/// it; this visitor takes strings only and refuses anything else without its value.
impl<'de> serde::Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Token;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token of letters and digits")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Token, E> {
                Ok(Token(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Token, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Token, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Token, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Token, E> {
                Err(E::custom(NOT_A_STRING))
            }
        }
        d.deserialize_any(Visitor)
    }
}

const NOT_A_STRING: &str = "the token (not shown) was read as a number or a boolean; use letters and digits, e.g. `openssl rand -hex 32`";

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
    /// No token, loopback listener: only this host reaches it, and only a request that names a
    /// loopback host and comes from no other origin may write.
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
            Self::Loopback => from_elsewhere(request).then_some((
                StatusCode::FORBIDDEN,
                "a write on a loopback listener without [http] token must name a loopback Host \
                 and come from no other Origin (a web page cannot trigger runs)",
            )),
            Self::Refused => Some((
                StatusCode::FORBIDDEN,
                "writes over a non-loopback [http] listen need [http] token (USERSTREAM_HTTP__TOKEN) to be set",
            )),
            Self::Token(token) => {
                let presented = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim());
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

/// Whether a request names a non-loopback host, or comes from a web page of another origin.
fn from_elsewhere(request: &Request) -> bool {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    let loopback = |authority: &str| {
        let host = match authority.rsplit_once(':') {
            // `[::1]:9464`, `127.0.0.1:9464`, `localhost:9464`; a bare IPv6 address has no port.
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    let host_elsewhere = header(header::HOST).is_some_and(|host| !loopback(host));
    let origin_elsewhere = header(header::ORIGIN).is_some_and(|origin| {
        let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        !loopback(authority)
    });
    host_elsewhere || origin_elsewhere
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
                    let mut response = (status, axum::Json(body)).into_response();
                    if status == StatusCode::UNAUTHORIZED {
                        response.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            header::HeaderValue::from_static("Bearer"),
                        );
                    }
                    return response;
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
    use axum::response::Response;
    use axum::routing::post;
    use tower::ServiceExt;

    const TOKEN: &str = "0123456789abcdef-token";

    fn http(listen: &str, token: Option<&str>) -> HttpConfig {
        HttpConfig {
            listen: listen.into(),
            token: token.map(|t| Token(t.into())),
        }
    }

    /// The response to `method /x` with `headers`, on a route that reads and writes.
    async fn send(
        access: WriteAccess,
        method: Method,
        headers: &[(header::HeaderName, &str)],
    ) -> Response {
        let app = guard_writes(
            Router::new().route("/x", post(|| async { "done" }).get(|| async { "read" })),
            access,
        );
        let mut request = Request::builder().method(method).uri("/x");
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn status(
        access: WriteAccess,
        method: Method,
        headers: &[(header::HeaderName, &str)],
    ) -> u16 {
        send(access, method, headers).await.status().as_u16()
    }

    #[tokio::test]
    async fn with_a_token_writes_need_it_and_reads_do_not() {
        let access = || WriteAccess::new(&http("0.0.0.0:9464", Some(TOKEN))).unwrap();
        let anonymous = send(access(), Method::POST, &[]).await;
        assert_eq!(anonymous.status(), 401);
        assert_eq!(anonymous.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let wrong = format!("Bearer {}", &TOKEN[1..]);
        let headers = [(header::AUTHORIZATION, wrong.as_str())];
        assert_eq!(status(access(), Method::POST, &headers).await, 401);
        for scheme in ["Bearer", "bearer"] {
            let right = format!("{scheme} {TOKEN}");
            let headers = [(header::AUTHORIZATION, right.as_str())];
            assert_eq!(status(access(), Method::POST, &headers).await, 200);
        }
        assert_eq!(status(access(), Method::GET, &[]).await, 200);
    }

    #[tokio::test]
    async fn without_a_token_only_a_loopback_listener_takes_writes() {
        let open = || WriteAccess::new(&http("0.0.0.0:9464", None)).unwrap();
        assert_eq!(status(open(), Method::POST, &[]).await, 403);
        assert_eq!(status(open(), Method::GET, &[]).await, 200);

        let local = || WriteAccess::new(&http("127.0.0.1:9464", None)).unwrap();
        for host in [
            "127.0.0.1:9464",
            "localhost:9464",
            "[::1]:9464",
            "127.0.0.1",
        ] {
            let headers = [(header::HOST, host)];
            assert_eq!(status(local(), Method::POST, &headers).await, 200, "{host}");
        }
        // A name rebound to 127.0.0.1, or a page of another origin, is refused.
        let rebound = [(header::HOST, "attacker.example:9464")];
        assert_eq!(status(local(), Method::POST, &rebound).await, 403);
        let cross_site = [
            (header::HOST, "127.0.0.1:9464"),
            (header::ORIGIN, "https://attacker.example"),
        ];
        assert_eq!(status(local(), Method::POST, &cross_site).await, 403);
        let same_site = [
            (header::HOST, "127.0.0.1:9464"),
            (header::ORIGIN, "http://127.0.0.1:9464"),
        ];
        assert_eq!(status(local(), Method::POST, &same_site).await, 200);
        assert_eq!(status(local(), Method::GET, &rebound).await, 200);
    }

    #[test]
    fn the_token_never_prints() {
        let config = http("127.0.0.1:0", Some(TOKEN));
        assert!(!format!("{config:?}").contains(TOKEN));
        assert!(!serde_json::to_string(&config).unwrap().contains(TOKEN));
        // Read from the environment as a number, it is refused without being quoted.
        let err = figment::Figment::new()
            .merge(figment::providers::Serialized::default(
                "token",
                9_876_543_210_123_u64,
            ))
            .extract::<HttpConfig>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not shown") && !err.contains("9876543210123"),
            "{err}"
        );
    }

    #[test]
    fn a_short_token_is_refused() {
        let err = Token("short".into()).validate().unwrap_err().to_string();
        assert!(err.contains("http.token is shorter than 16"), "{err}");
        Token(TOKEN.into()).validate().unwrap();
    }
}
