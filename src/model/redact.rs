//! Credential removal, applied at ingest before anything is written anywhere.
//!
//! The raw log is a table, and credentials must never reach a table, a topic or a log line. So the
//! "raw" record we keep is the API record minus `login.password`, `salt`, `md5`, `sha1` and
//! `sha256`, and every later stage (processor, dead-letter table, replays) only ever sees that.
//! Only the two objects on the path to the secrets are parsed; everything else is carried as the
//! exact bytes the API sent.

use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// `login` fields that are secrets. Anything else in `login` (uuid, username) is kept.
pub const CREDENTIAL_FIELDS: [&str; 5] = ["password", "salt", "md5", "sha1", "sha256"];

/// Returns the record with credentials removed. A record that is not a JSON object, or has no
/// `login` object, holds no credentials we could recognise and is returned unchanged; the processor
/// will dead-letter it with a precise reason.
pub fn redact_credentials(record: &RawValue) -> String {
    let text = record.get();
    let Ok(mut top) = serde_json::from_str::<BTreeMap<&str, &RawValue>>(text) else {
        return text.to_owned();
    };
    let Some(login) = top.get("login") else {
        return text.to_owned();
    };
    let Ok(mut login_fields) = serde_json::from_str::<BTreeMap<&str, &RawValue>>(login.get())
    else {
        return text.to_owned();
    };
    let before = login_fields.len();
    login_fields.retain(|key, _| !CREDENTIAL_FIELDS.contains(key));
    if login_fields.len() == before {
        return text.to_owned();
    }
    let login_json = serde_json::to_string(&login_fields).expect("map of raw values serialises");
    let login_raw = RawValue::from_string(login_json).expect("serde_json output is valid JSON");
    top.insert("login", &login_raw);
    serde_json::to_string(&top).expect("map of raw values serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn removes_every_credential_and_keeps_the_rest_byte_for_byte() {
        let input = r#"{"gender":"female","login":{"uuid":"7a0eed16-9430-4d68-901f-c0d4c1c3bf00","username":"yellowpeacock117","password":"addison","salt":"sld1yGtd","md5":"m","sha1":"s1","sha256":"s256"},"location":{"postcode": 63104}}"#;
        let out = redact_credentials(&raw(input));
        for secret in [
            "addison", "sld1yGtd", "\"m\"", "s1", "s256", "password", "salt",
        ] {
            assert!(!out.contains(secret), "{secret} survived in {out}");
        }
        assert!(out.contains("yellowpeacock117"));
        assert!(out.contains(r#""location":{"postcode": 63104}"#), "{out}");
    }

    #[test]
    fn leaves_records_without_credentials_untouched() {
        for input in [
            r#"[1,2]"#,
            r#"{"login":"x"}"#,
            r#"{"name":{}}"#,
            r#"{"login":{"uuid":"u"}}"#,
        ] {
            assert_eq!(redact_credentials(&raw(input)), input);
        }
    }
}
