//! Parsing an API response body into its records, all or nothing.

use super::FetchError;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The records of one response, each kept as the exact JSON the API sent.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Body {
    results: Option<Vec<Box<RawValue>>>,
    error: Option<String>,
}

/// Parses a whole body. A body that is cut short or isn't JSON fails as a whole: records are only
/// ever kept from a complete, well-formed page, so nothing is half-written. A record that is itself
/// malformed (not a user object) is kept, to be dead-lettered downstream with its reason.
pub fn parse_page(body: &[u8]) -> Result<Page, FetchError> {
    let parsed: Body = serde_json::from_slice(body)
        .map_err(|err| FetchError::Malformed(describe_json_error(&err, body.len())))?;
    if let Some(message) = parsed.error {
        return Err(FetchError::Api(api_error_text(&message)));
    }
    let records = parsed.results.ok_or_else(|| {
        FetchError::Malformed(format!("no \"results\" field in {} bytes", body.len()))
    })?;
    Ok(Page { records })
}

/// The most of an API's `error` text an error message (and so a log line) carries: enough to tell
/// one outage from another, too little to carry a page of records from a hostile server.
pub const API_ERROR_TEXT_CHARS: usize = 200;

/// The API's own `error` text, capped at [`API_ERROR_TEXT_CHARS`] and with control characters
/// dropped (they could forge log lines).
pub fn api_error_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(API_ERROR_TEXT_CHARS)
        .collect()
}

/// What is wrong with a body, and where, without a byte of its content: the body may hold
/// credentials, and error messages end up in log lines. (serde_json's own message can quote a
/// value: `invalid type: string "..."`.)
fn describe_json_error(err: &serde_json::Error, len: usize) -> String {
    let what = match err.classify() {
        serde_json::error::Category::Eof => "truncated JSON",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "JSON of the wrong shape",
        serde_json::error::Category::Io => "unreadable body",
    };
    format!(
        "{what} at line {} column {} of {len} bytes",
        err.line(),
        err.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_record_verbatim() {
        let page = parse_page(br#"{"results":[{"a": 1},{"b":"x"}],"info":{"seed":"s"}}"#).unwrap();
        let records: Vec<_> = page.records.iter().map(|r| r.get()).collect();
        assert_eq!(records, [r#"{"a": 1}"#, r#"{"b":"x"}"#]);
    }

    #[test]
    fn empty_results_is_an_empty_page_not_an_error() {
        assert!(
            parse_page(br#"{"results":[],"info":{}}"#)
                .unwrap()
                .records
                .is_empty()
        );
    }

    #[test]
    fn error_body_is_an_api_error() {
        let err = parse_page(br#"{"error":"Uh oh, something has gone wrong."}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "API reported an error: Uh oh, something has gone wrong."
        );
    }

    #[test]
    fn truncated_and_non_json_bodies_are_malformed_and_named() {
        let err = parse_page(br#"{"results":[{"a": 1},{"b""#).unwrap_err();
        assert!(err.to_string().contains("truncated JSON"), "{err}");
        let err = parse_page(b"<html>502 Bad Gateway</html>").unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        let err = parse_page(br#"{"info":{}}"#).unwrap_err();
        assert!(err.to_string().contains("no \"results\""), "{err}");
    }

    #[test]
    fn errors_never_quote_the_body() {
        for body in [
            &br#"{"results":[{"login":{"password":"hunter2""#[..],
            br#"{"results":"password hunter2"}"#,
            br#"password=hunter2 <html>"#,
        ] {
            let err = parse_page(body).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains(&format!("{} bytes", body.len())), "{err}");
        }
    }

    #[test]
    fn an_api_error_text_is_capped_and_cannot_forge_lines() {
        let text = format!("down\n2026-01-01 INFO forged{}", "x".repeat(10_000));
        let body = serde_json::json!({ "error": text }).to_string();
        let FetchError::Api(message) = parse_page(body.as_bytes()).unwrap_err() else {
            panic!("an API error");
        };
        assert_eq!(message.chars().count(), API_ERROR_TEXT_CHARS);
        assert!(
            message.starts_with("down2026-01-01 INFO forged"),
            "{message}"
        );
    }
}
