//! Hand-checked records: the DATA.md sample field by field, then each API quirk and each rejection.

use super::*;
use chrono::TimeZone;

/// The sample record from DATA.md, verbatim, credentials included (the transform must ignore them).
const SAMPLE: &str = r#"{
  "gender": "female",
  "name": {"title": "Ms", "first": "Jane", "last": "Doe"},
  "location": {"street": {"number": 8929, "name": "Valwood Pkwy"}, "city": "Billings",
               "state": "Michigan", "country": "United States", "postcode": 63104,
               "coordinates": {"latitude": "-69.8246", "longitude": "134.8719"},
               "timezone": {"offset": "+9:30", "description": "Adelaide, Darwin"}},
  "email": "jane.doe@example.com",
  "login": {"uuid": "7a0eed16-9430-4d68-901f-c0d4c1c3bf00", "username": "yellowpeacock117",
            "password": "addison", "salt": "sld1yGtd", "md5": "...", "sha1": "...", "sha256": "..."},
  "dob": {"date": "1992-03-08T15:13:16.688Z", "age": 30},
  "registered": {"date": "2007-07-09T05:51:59.390Z", "age": 14},
  "phone": "(272) 790-0888", "cell": "(489) 330-2385",
  "id": {"name": "SSN", "value": "405-88-3636"},
  "picture": {"large": "https://randomuser.me/api/portraits/women/75.jpg",
              "medium": "https://randomuser.me/api/portraits/med/women/75.jpg",
              "thumbnail": "https://randomuser.me/api/portraits/thumb/women/75.jpg"},
  "nat": "US"}"#;

fn with(path: &[&str], value: serde_json::Value) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
    let mut node = &mut doc;
    for key in &path[..path.len() - 1] {
        node = node.get_mut(*key).unwrap();
    }
    node[path[path.len() - 1]] = value;
    doc.to_string()
}

fn without(path: &[&str]) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
    let mut node = &mut doc;
    for key in &path[..path.len() - 1] {
        node = node.get_mut(*key).unwrap();
    }
    node.as_object_mut().unwrap().remove(path[path.len() - 1]);
    doc.to_string()
}

fn millis(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + chrono::Duration::milliseconds(ms)
}

/// The fetch time every test record is stamped with.
fn at() -> DateTime<Utc> {
    millis(2026, 11, 23, 8, 0, 0, 123)
}

#[test]
fn sample_record_maps_every_column() {
    let row = transform(SAMPLE, at()).unwrap();
    assert_eq!(
        row.id,
        Uuid::parse_str("7a0eed16-9430-4d68-901f-c0d4c1c3bf00").unwrap()
    );
    assert_eq!(row.first_name, "Jane");
    assert_eq!(row.last_name, "Doe");
    assert_eq!(row.gender, "female");
    assert_eq!(
        row.address,
        "8929 Valwood Pkwy, Billings, Michigan, United States"
    );
    assert_eq!(row.post_code, "63104");
    assert_eq!(row.email, "jane.doe@example.com");
    assert_eq!(row.username, "yellowpeacock117");
    assert_eq!(row.dob, millis(1992, 3, 8, 15, 13, 16, 688));
    assert_eq!(row.registered_date, millis(2007, 7, 9, 5, 51, 59, 390));
    assert_eq!(row.phone, "(272) 790-0888");
    assert_eq!(
        row.picture,
        "https://randomuser.me/api/portraits/med/women/75.jpg"
    );
    assert_eq!(
        row.timestamp,
        at(),
        "the fetch time, not the clock at transform"
    );
}

#[test]
fn no_credential_reaches_the_row() {
    let row = transform(SAMPLE, at()).unwrap();
    let json = serde_json::to_string(&row).unwrap();
    for secret in ["addison", "sld1yGtd", "password", "salt", "sha"] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }
}

#[test]
fn postcode_as_string_is_kept_verbatim() {
    for code in ["A1B 2C3", "7044 TR", "0150", "EC1A 1BB"] {
        let row = transform(&with(&["location", "postcode"], code.into()), at()).unwrap();
        assert_eq!(row.post_code, code);
    }
}

#[test]
fn postcode_as_number_becomes_text_without_decimals() {
    let row = transform(&with(&["location", "postcode"], 1234.into()), at()).unwrap();
    assert_eq!(row.post_code, "1234");
}

#[test]
fn null_id_value_and_empty_id_name_are_accepted() {
    let record = with(&["id"], serde_json::json!({"name": "", "value": null}));
    assert_eq!(transform(&record, at()).unwrap().first_name, "Jane");
    assert!(transform(&without(&["id"]), at()).is_ok());
}

#[test]
fn street_number_as_string_is_accepted() {
    let row = transform(&with(&["location", "street", "number"], "12b".into()), at()).unwrap();
    assert!(row.address.starts_with("12b Valwood Pkwy, "));
}

#[test]
fn timestamps_with_offsets_are_normalised_to_utc() {
    let row = transform(
        &with(&["dob", "date"], "1992-03-08T17:13:16.688+02:00".into()),
        at(),
    )
    .unwrap();
    assert_eq!(row.dob, millis(1992, 3, 8, 15, 13, 16, 688));
}

#[test]
fn escaped_strings_are_unescaped() {
    let row = transform(
        &with(&["name", "last"], "O\u{2019}Brien \"Jr\"".into()),
        at(),
    )
    .unwrap();
    assert_eq!(row.last_name, "O\u{2019}Brien \"Jr\"");
}

#[test]
fn each_missing_required_field_is_named() {
    let cases: &[(&[&str], &str)] = &[
        (&["login"], "login is missing"),
        (&["login", "uuid"], "login.uuid is missing"),
        (&["login", "username"], "login.username is missing"),
        (&["name"], "name is missing"),
        (&["name", "first"], "name.first is missing"),
        (&["name", "last"], "name.last is missing"),
        (&["gender"], "gender is missing"),
        (&["location"], "location is missing"),
        (&["location", "street"], "location.street is missing"),
        (
            &["location", "street", "number"],
            "location.street.number is missing",
        ),
        (&["location", "city"], "location.city is missing"),
        (&["location", "state"], "location.state is missing"),
        (&["location", "country"], "location.country is missing"),
        (&["location", "postcode"], "location.postcode is missing"),
        (&["email"], "email is missing"),
        (&["dob"], "dob.date is missing"),
        (&["registered", "date"], "registered.date is missing"),
        (&["phone"], "phone is missing"),
        (&["picture"], "picture.medium is missing"),
    ];
    for (path, reason) in cases {
        let err = transform(&without(path), at()).unwrap_err();
        assert_eq!(err.to_string(), *reason, "removing {path:?}");
    }
}

#[test]
fn null_and_blank_fields_are_rejected() {
    let err = transform(&with(&["login", "uuid"], serde_json::Value::Null), at()).unwrap_err();
    assert_eq!(err, Invalid::Missing("login.uuid"));
    let err = transform(&with(&["name", "first"], "  ".into()), at()).unwrap_err();
    assert_eq!(err, Invalid::Empty("name.first"));
}

#[test]
fn malformed_values_are_rejected_with_the_value() {
    let err = transform(&with(&["login", "uuid"], "not-a-uuid".into()), at()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"login.uuid is not a valid UUID: "not-a-uuid""#
    );
    let err = transform(
        &with(&["login", "uuid"], Uuid::nil().to_string().into()),
        at(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("login.uuid is not a valid non-nil UUID")
    );
    let err = transform(&with(&["dob", "date"], "yesterday".into()), at()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"dob.date is not a valid RFC 3339 timestamp: "yesterday""#
    );
    let err = transform(&with(&["email"], "nobody".into()), at()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("email is not a valid email address")
    );
}

#[test]
fn wrong_types_and_non_json_are_rejected_not_panicked() {
    for bad in [
        "",
        "null",
        "[1,2,3]",
        r#"{"login": "x"}"#,
        &SAMPLE[..SAMPLE.len() / 2],
        r#"{"error": "Uh oh, something has gone wrong"}"#,
    ] {
        assert!(transform(bad, at()).is_err(), "{bad:?} accepted");
    }
    let err = transform(&with(&["name", "first"], 42.into()), at()).unwrap_err();
    assert!(matches!(err, Invalid::NotJson(_)), "{err}");
}

/// PostgreSQL cannot store a NUL character: a record carrying one is refused with the field
/// named (and the value escaped in the reason), not left to fail its batch's commit forever.
#[test]
fn a_nul_character_in_any_text_is_refused() {
    for path in [
        &["name", "first"][..],
        &["location", "city"],
        &["location", "postcode"],
        &["phone"],
    ] {
        let err = transform(&with(path, "a\u{0}b".into()), at()).unwrap_err();
        let reason = err.to_string();
        assert!(
            reason.contains("without NUL characters"),
            "{path:?}: {reason}"
        );
        assert!(!reason.contains('\0'), "{reason:?}");
    }
}

/// A record the API sent with the withheld marker itself, in any value, is refused like one
/// redaction withheld.
#[test]
fn the_withheld_marker_is_refused_whatever_its_value() {
    let user: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
    for value in [
        serde_json::json!("x"),
        serde_json::json!(null),
        serde_json::json!(7),
    ] {
        let mut record = user.clone();
        record[crate::model::redact::WITHHELD_KEY] = value;
        let err = transform(&record.to_string(), at()).unwrap_err();
        assert!(matches!(err, Invalid::Withheld(_)), "{err}");
    }
    // Twice, which a struct would refuse to parse at all.
    let text = SAMPLE.replacen(
        '{',
        r#"{"_userstream_withheld":"a","_userstream_withheld":"b","#,
        1,
    );
    assert!(matches!(transform(&text, at()), Err(Invalid::Withheld(_))));
}
