//! An HTTP/1.1 server that answers each request with the next reply of a script, including the
//! ways randomuser.me misbehaves, and records when each request arrived.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Declares `body.len() + missing` bytes, sends `body`, closes: a cut connection.
    CutShort { body: String, missing: usize },
    /// Sends nothing for this long (longer than the client's timeout).
    Hang(Duration),
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Self {
        Reply::Status {
            status: 200,
            headers: vec![],
            body: body.into(),
        }
    }
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Reply::Status {
            status,
            headers: vec![],
            body: body.into(),
        }
    }
    pub fn too_many(retry_after: Option<&str>) -> Self {
        Reply::Status {
            status: 429,
            headers: retry_after
                .map(|v| ("Retry-After".to_owned(), v.to_owned()))
                .into_iter()
                .collect(),
            body: r#"{"error":"Whoa, ease up there cowboy. You've requested too many users."}"#
                .into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub target: String,
}

pub struct ScriptedServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl ScriptedServer {
    pub async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let script = Arc::clone(&script);
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    seen.lock().unwrap().push(Request {
                        at: Instant::now(),
                        target,
                    });
                    let reply = script
                        .lock()
                        .unwrap()
                        .next()
                        .unwrap_or(Reply::status(500, "script exhausted"));
                    let raw = match reply {
                        Reply::Status {
                            status,
                            headers,
                            body,
                        } => {
                            let extra: String = headers
                                .iter()
                                .map(|(k, v)| format!("{k}: {v}\r\n"))
                                .collect();
                            format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                                body.len()
                            )
                        }
                        Reply::CutShort { body, missing } => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len() + missing
                        ),
                        Reply::Hang(duration) => {
                            tokio::time::sleep(duration).await;
                            return;
                        }
                    };
                    let _ = socket.write_all(raw.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}
