//! Credential removal, applied at ingest before anything is written anywhere.
//!
//! The raw log is a table, and credentials must never reach a table, a topic or a log line. So the
//! "raw" record we keep is the API record minus `login.password`, `salt`, `md5`, `sha1` and
//! `sha256`, and every later stage (processor, relay, dead-letter queue, replays) only ever sees
//! that.
//!
//! It fails closed. Keys are compared after JSON unescaping (`"p\u0061ssword"` is `"password"`)
//! and without regard to case; every copy of a duplicated key is cleaned; and a record whose
//! credentials cannot be positively removed (not a JSON object, a `login` that is not an object)
//! is [`Redacted::Withheld`]: the parts that may hold them are replaced, and the record is marked
//! so that validation dead-letters it with the reason instead of storing it.
//!
//! Only the top level is re-parsed with its values as raw text, so every other field keeps the
//! exact bytes the API sent; `login` (a handful of short strings) is rebuilt.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// `login` fields that are secrets. Anything else in `login` (uuid, username) is kept.
pub const CREDENTIAL_FIELDS: [&str; 5] = ["password", "salt", "md5", "sha1", "sha256"];

/// Top-level key that marks a withheld record, holding the reason. Validation rejects any record
/// carrying it, on every path ([`crate::process::transform`]).
pub const WITHHELD_KEY: &str = "_userstream_withheld";

/// What stands in for a value that may hold credentials.
const WITHHELD_VALUE: &str = "\"[withheld]\"";

/// The outcome of redacting one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redacted {
    /// Every credential found was removed (or there were none to find): safe to keep as is.
    Clean(String),
    /// Credentials could not be positively removed. `record` has the suspect parts replaced and
    /// carries [`WITHHELD_KEY`]; it is kept only to be dead-lettered with `reason`.
    Withheld { record: String, reason: String },
}

impl Redacted {
    /// The record to append to the log, either way.
    pub fn into_record(self) -> String {
        match self {
            Redacted::Clean(record) | Redacted::Withheld { record, .. } => record,
        }
    }
}

/// Is `key` (already unescaped) the name of a credential, in any casing?
pub fn is_credential(key: &str) -> bool {
    CREDENTIAL_FIELDS
        .iter()
        .any(|name| key.eq_ignore_ascii_case(name))
}

/// Returns the record with credentials removed, or withheld when they cannot be.
pub fn redact_credentials(record: &RawValue) -> Redacted {
    let Ok(Entries(top)) = serde_json::from_str::<Entries<'_>>(record.get()) else {
        return withhold(
            Vec::new(),
            "record is not a JSON object, so its credentials cannot be removed".into(),
        );
    };
    let mut kept = Vec::with_capacity(top.len());
    let mut problem = None;
    let mut changed = false;
    for (key, value) in top {
        // Only redaction may mark a record withheld; an API record that already carries the
        // marker is suspect itself (and its own copy is dropped, so the reason is ours).
        if key == WITHHELD_KEY {
            problem
                .get_or_insert_with(|| format!("record carries the reserved key {WITHHELD_KEY}"));
            continue;
        }
        if is_credential(&key) {
            changed = true;
            continue;
        }
        // Any casing: a `Login` object is ignored by validation, but its secrets must still go.
        if !key.eq_ignore_ascii_case("login") {
            kept.push((key, Value::Raw(value)));
            continue;
        }
        // The usual `login` is flat (a handful of strings): filtered as raw entries. One that
        // nests anything is rebuilt, cleaned at every depth.
        let flat = serde_json::from_str::<Entries<'_>>(value.get())
            .ok()
            .filter(|Entries(fields)| fields.iter().all(|(_, v)| !v.get().starts_with(['{', '['])));
        if let Some(Entries(fields)) = flat {
            let before = fields.len();
            let fields: Vec<_> = fields
                .into_iter()
                .filter(|(k, _)| !is_credential(k))
                .collect();
            if fields.len() == before {
                kept.push((key, Value::Raw(value)));
            } else {
                changed = true;
                kept.push((key, Value::Flat(fields)));
            }
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(value.get()) {
            Ok(serde_json::Value::Object(mut login)) => {
                changed |= remove_credentials(&mut login);
                kept.push((key, Value::Login(login)));
            }
            _ => {
                problem.get_or_insert_with(|| {
                    format!("{key} is not an object, so its credentials cannot be removed")
                });
                kept.push((key, Value::Withheld));
            }
        }
    }
    if let Some(reason) = problem {
        return withhold(kept, reason);
    }
    if !changed {
        return Redacted::Clean(record.get().to_owned());
    }
    Redacted::Clean(write_object(None, &kept))
}

/// If `record` is marked withheld, the reason. Any top-level `_userstream_withheld` key counts,
/// whatever its value and however often it appears; a record that mentions the key but cannot be
/// read as an object counts too (fail closed).
pub fn withheld_reason(record: &str) -> Option<String> {
    if !record.contains(WITHHELD_KEY) {
        return None;
    }
    let Ok(Entries(top)) = serde_json::from_str::<Entries<'_>>(record) else {
        return Some(format!("an unreadable record mentions {WITHHELD_KEY}"));
    };
    top.into_iter()
        .find(|(key, _)| key == WITHHELD_KEY)
        .map(|(_, value)| {
            serde_json::from_str::<String>(value.get()).unwrap_or_else(|_| value.get().to_owned())
        })
}

/// Removes credential keys at every depth of `login`; true if any was there.
fn remove_credentials(object: &mut serde_json::Map<String, serde_json::Value>) -> bool {
    let before = object.len();
    object.retain(|key, _| !is_credential(key));
    let mut removed = object.len() != before;
    for value in object.values_mut() {
        removed |= remove_credentials_in(value);
    }
    removed
}

fn remove_credentials_in(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(object) => remove_credentials(object),
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |removed, item| remove_credentials_in(item) | removed),
        _ => false,
    }
}

fn withhold(kept: Vec<(Key<'_>, Value<'_>)>, reason: String) -> Redacted {
    Redacted::Withheld {
        record: write_object(Some(&reason), &kept),
        reason,
    }
}

/// One kept top-level value.
enum Value<'a> {
    /// Exactly as the API sent it.
    Raw(&'a RawValue),
    /// A flat `login` object's remaining fields, values as sent.
    Flat(Vec<(Key<'a>, &'a RawValue)>),
    /// A nested `login` object with its credentials removed at every depth.
    Login(serde_json::Map<String, serde_json::Value>),
    /// Replaced by [`WITHHELD_VALUE`].
    Withheld,
}

/// Writes the object back, keys re-escaped by serde_json, the withheld marker first if any.
fn write_object(withheld: Option<&str>, entries: &[(Key<'_>, Value<'_>)]) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut parts = Vec::with_capacity(entries.len() + 1);
    if let Some(reason) = withheld {
        parts.push(format!("{}:{}", quote(WITHHELD_KEY), quote(reason)));
    }
    for (key, value) in entries {
        let value = match value {
            Value::Raw(raw) => raw.get().to_owned(),
            Value::Flat(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{}", quote(k), v.get()))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Login(login) => serde_json::to_string(login).expect("a JSON map serialises"),
            Value::Withheld => WITHHELD_VALUE.to_owned(),
        };
        parts.push(format!("{}:{value}", quote(key)));
    }
    format!("{{{}}}", parts.join(","))
}

/// A key, unescaped: borrowed from the record when it has no escapes (the usual case), owned
/// when unescaping changed it.
type Key<'a> = std::borrow::Cow<'a, str>;

/// A JSON object's entries in order, duplicates included, keys unescaped, values as raw text.
/// (A map type would keep one copy of a duplicated key and hide the other.)
struct Entries<'a>(Vec<(Key<'a>, &'a RawValue)>);

/// Deserializes a key without copying it unless it had escapes.
struct KeySeed;

impl<'de> serde::de::DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key::Borrowed(key))
            }
            fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key::Owned(key.to_owned()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(key) = map.next_key_seed(KeySeed)? {
                    entries.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn clean(input: &str) -> String {
        match redact_credentials(&raw(input)) {
            Redacted::Clean(out) => out,
            other => panic!("expected clean, got {other:?}"),
        }
    }

    /// Every secret value and credential name is gone, in any spelling.
    fn assert_no_secrets(out: &str) {
        let lower = out.to_lowercase();
        for secret in ["addison", "sld1ygtd", "md5val", "sha1val", "sha256val"] {
            assert!(!lower.contains(secret), "{secret} survived in {out}");
        }
        let keys = serde_json::from_str::<serde_json::Value>(out).unwrap();
        let text = keys.to_string().to_lowercase();
        for name in CREDENTIAL_FIELDS {
            assert!(!text.contains(&format!("\"{name}\"")), "{name} in {out}");
        }
    }

    const SECRETS: &str = r#""password":"addison","salt":"sld1yGtd","md5":"md5val","sha1":"sha1val","sha256":"sha256val""#;

    #[test]
    fn removes_every_credential_and_keeps_the_rest_byte_for_byte() {
        let input = format!(
            r#"{{"gender":"female","login":{{"uuid":"7a0eed16-9430-4d68-901f-c0d4c1c3bf00","username":"yellowpeacock117",{SECRETS}}},"location":{{"postcode": 63104}}}}"#
        );
        let out = clean(&input);
        assert_no_secrets(&out);
        assert!(out.contains("yellowpeacock117"));
        assert!(out.contains(r#""location":{"postcode": 63104}"#), "{out}");
    }

    #[test]
    fn escaped_keys_are_unescaped_before_matching() {
        for input in [
            r#"{"login":{"uuid":"u","p\u0061ssword":"addison"}}"#,
            r#"{"l\u006fgin":{"uuid":"u","password":"addison"}}"#,
            r#"{"n\u006fte":"x","login":{"uuid":"u","password":"addison"}}"#,
            r#"{"login":{"s\u0061lt":"sld1yGtd","\u006d\u0064\u0035":"md5val"}}"#,
        ] {
            let out = clean(input);
            assert_no_secrets(&out);
            assert!(
                out.contains(r#""uuid":"u""#) || !input.contains("uuid"),
                "{out}"
            );
        }
    }

    #[test]
    fn every_copy_of_a_duplicated_key_is_cleaned() {
        let input = format!(
            r#"{{"login":{{"uuid":"a",{SECRETS}}},"login":{{"uuid":"b","password":"addison","password":"addison"}}}}"#
        );
        let out = clean(&input);
        assert_no_secrets(&out);
        // Both copies stay, so validation can refuse the ambiguous record.
        assert_eq!(out.matches("\"login\"").count(), 2, "{out}");
    }

    #[test]
    fn credentials_in_other_casings_and_deeper_in_login_are_removed() {
        let out = clean(
            r#"{"Login":{"PASSWORD":"addison"},"login":{"uuid":"u","Salt":"sld1yGtd","extra":[{"sha1":"sha1val"}],"more":{"Md5":"md5val"}},"Sha256":"sha256val"}"#,
        );
        assert_no_secrets(&out);
        assert!(out.contains(r#""uuid":"u""#), "{out}");
    }

    #[test]
    fn a_login_that_is_not_an_object_is_withheld() {
        for login in [r#""addison""#, r#"["addison"]"#, "42", "null"] {
            let input = format!(r#"{{"gender":"x","login":{login}}}"#);
            let Redacted::Withheld { record, reason } = redact_credentials(&raw(&input)) else {
                panic!("{input} was not withheld");
            };
            assert!(!record.contains("addison"), "{record}");
            assert!(record.contains(r#""gender":"x""#), "{record}");
            assert!(reason.contains("login is not an object"), "{reason}");
            let value: serde_json::Value = serde_json::from_str(&record).unwrap();
            assert_eq!(value[WITHHELD_KEY], reason.as_str());
        }
    }

    #[test]
    fn a_record_that_is_not_an_object_is_withheld_whole() {
        for input in [r#"["password","addison"]"#, r#""addison""#, "1"] {
            let Redacted::Withheld { record, reason } = redact_credentials(&raw(input)) else {
                panic!("{input} was not withheld");
            };
            assert!(!record.contains("addison"), "{record}");
            assert!(reason.contains("not a JSON object"), "{reason}");
        }
    }

    #[test]
    fn an_api_record_carrying_the_marker_is_withheld() {
        let input =
            r#"{"_userstream_withh\u0065ld":"fine","login":{"uuid":"u","password":"addison"}}"#;
        let Redacted::Withheld { record, reason } = redact_credentials(&raw(input)) else {
            panic!("not withheld");
        };
        assert!(reason.contains("reserved key"), "{reason}");
        assert!(
            !record.contains("addison") && !record.contains("fine"),
            "{record}"
        );
        assert_eq!(withheld_reason(&record).as_deref(), Some(reason.as_str()));
    }

    #[test]
    fn leaves_records_without_credentials_untouched() {
        for input in [
            r#"{"name":{}}"#,
            r#"{"login":{"uuid":"u"}}"#,
            r#"{"n\u006fte":"kept as sent","login":{"uuid":"u"}}"#,
        ] {
            assert_eq!(clean(input), input);
        }
    }
}
