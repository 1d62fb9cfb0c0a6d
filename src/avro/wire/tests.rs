//! Round trips through the wire format, including the API's quirks and schema evolution.

use super::*;
use crate::process::transform;

const RECORD: &str = r#"{"gender":"female","name":{"title":"Ms","first":"Jane","last":"Doe"},
 "location":{"street":{"number":8929,"name":"Valwood Pkwy"},"city":"Billings","state":"Michigan",
  "country":"United States","postcode":63104,"coordinates":{"latitude":"-69.8246","longitude":"134.8719"},
  "timezone":{"offset":"+9:30","description":"Adelaide, Darwin"}},
 "email":"jane.doe@example.com","login":{"uuid":"7a0eed16-9430-4d68-901f-c0d4c1c3bf00","username":"yellowpeacock117"},
 "dob":{"date":"1992-03-08T15:13:16.688Z","age":30},"registered":{"date":"2007-07-09T05:51:59.390Z","age":14},
 "phone":"(272) 790-0888","cell":"(489) 330-2385","id":{"name":"SSN","value":null},
 "picture":{"large":"l","medium":"https://randomuser.me/api/portraits/med/women/75.jpg","thumbnail":"t"},"nat":"US"}"#;

#[test]
fn a_record_survives_encode_and_decode_with_the_same_row() {
    let framed = encode_user(7, RECORD).unwrap();
    assert_eq!(&framed[..5], &[0, 0, 0, 0, 7]);
    let (id, datum) = decode_frame(&framed).unwrap();
    assert_eq!(id, 7);
    let decoded = decode_user(id, user_schema(), datum).unwrap();
    assert_eq!(
        transform(&decoded, chrono::DateTime::UNIX_EPOCH).unwrap(),
        transform(RECORD, chrono::DateTime::UNIX_EPOCH).unwrap()
    );
}

#[test]
fn string_postcodes_and_missing_fields_round_trip() {
    let record = RECORD
        .replace("63104", "\"A1B 2C3\"")
        .replace(r#""nat":"US""#, r#""nat":null"#);
    let (_, datum) = decode_frame(&encode_user(1, &record).unwrap())
        .map(|(i, d)| (i, d.to_vec()))
        .unwrap();
    let decoded: serde_json::Value =
        serde_json::from_str(&decode_user(1, user_schema(), &datum).unwrap()).unwrap();
    assert_eq!(decoded["location"]["postcode"], "A1B 2C3");
    assert!(decoded.get("nat").is_none());
    let partial = encode_user(1, r#"{"name":{"first":"Only"}}"#).unwrap();
    let decoded = decode_user(1, user_schema(), &partial[5..]).unwrap();
    assert_eq!(
        transform(&decoded, chrono::DateTime::UNIX_EPOCH)
            .unwrap_err()
            .to_string(),
        "login is missing"
    );
}

#[test]
fn data_written_with_an_older_schema_reads_with_ours() {
    let old = Schema::parse_str(
        r#"{"type":"record","name":"User","namespace":"me.randomuser","fields":[
            {"name":"email","type":["null","string"],"default":null},
            {"name":"login","type":["null",{"type":"record","name":"Login","fields":[
              {"name":"uuid","type":["null","string"],"default":null}]}],"default":null}]}"#,
    )
    .unwrap();
    let value = Value::from(serde_json::json!({"email": "a@b.c", "login": {"uuid": "u-1"}}))
        .resolve(&old)
        .unwrap();
    let datum = apache_avro::to_avro_datum(&old, value).unwrap();
    let decoded: serde_json::Value =
        serde_json::from_str(&decode_user(3, &old, &datum).unwrap()).unwrap();
    assert_eq!(decoded["email"], "a@b.c");
    assert_eq!(decoded["login"]["uuid"], "u-1");
}

#[test]
fn bad_frames_and_bad_data_are_named() {
    assert!(
        decode_frame(b"{\"json\":1}")
            .unwrap_err()
            .to_string()
            .contains("magic byte 123")
    );
    assert!(
        decode_frame(&[0, 0])
            .unwrap_err()
            .to_string()
            .contains("shorter than the 5-byte header")
    );
    // Union branch 5 of a 2-branch union.
    let err = decode_user(9, user_schema(), &[0x0a]).unwrap_err();
    assert!(err.to_string().contains("writer schema 9"), "{err}");
    assert!(encode_user(1, "[1,2]").is_err());
}

/// What `encode_user` did before the direct codec: apache-avro's resolution and encoder.
fn encode_with_apache_avro(record: &str) -> Result<Vec<u8>, String> {
    let json: serde_json::Value = serde_json::from_str(record).map_err(|e| e.to_string())?;
    let value = Value::from(json)
        .resolve(user_schema())
        .map_err(|e| e.to_string())?;
    let datum = apache_avro::to_avro_datum(user_schema(), value).map_err(|e| e.to_string())?;
    Ok(encode_frame(1, &datum))
}

fn generated_users(n: u32) -> Vec<String> {
    let mut page = Vec::new();
    crate::source::generator::write_page(&mut page, "codec", 1, n, &Default::default()).unwrap();
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            crate::model::redact::redact_credentials(&serde_json::value::to_raw_value(u).unwrap())
                .into_record()
        })
        .collect()
}

#[test]
fn the_direct_codec_writes_and_reads_exactly_what_apache_avro_does() {
    let mut records = generated_users(3000);
    records.push(RECORD.to_owned());
    records.push(RECORD.replace("63104", "\"A1B 2C3\""));
    records.push(RECORD.replace("8929", "\"8929a\""));
    records.push(RECORD.replace(r#""nat":"US""#, r#""nat":null"#));
    records.push(RECORD.replace(r#""email""#, r#""extra":[1,{"x":2}],"email""#));
    records.push(r#"{"name":{"first":"Only"}}"#.to_owned());
    records.push("{}".to_owned());
    for record in &records {
        let ours = encode_user(1, record).unwrap();
        assert_eq!(
            Ok(ours.clone()),
            encode_with_apache_avro(record),
            "{record}"
        );
        assert_eq!(
            decode_user(1, user_schema(), &ours[5..]).unwrap(),
            decode_resolved(1, user_schema(), &ours[5..]).unwrap(),
            "{record}"
        );
    }
}

#[test]
fn what_apache_avro_refuses_the_direct_codec_refuses_naming_the_field() {
    for (record, field) in [
        (RECORD.replace("63104", "1.5"), "postcode"),
        (RECORD.replace(r#""(272) 790-0888""#, "2727900888"), "phone"),
        (RECORD.replace(r#""female""#, r#"{"g":1}"#), "gender"),
        (RECORD.replace(r#""age":30"#, r#""age":"30""#), "age"),
        (
            RECORD.replace(
                r#""uuid":"7a0eed16-9430-4d68-901f-c0d4c1c3bf00""#,
                r#""uuid":true"#,
            ),
            "uuid",
        ),
        (
            RECORD.replace(
                r#"{"title":"Ms","first":"Jane","last":"Doe"}"#,
                r#"["Ms","Jane","Doe"]"#,
            ),
            "name",
        ),
    ] {
        assert!(
            encode_with_apache_avro(&record).is_err(),
            "apache-avro took {field}"
        );
        let err = encode_user(1, &record).unwrap_err().to_string();
        assert!(err.contains(field), "{err} should name {field}");
    }
    assert!(
        encode_user(1, "[1,2]")
            .unwrap_err()
            .to_string()
            .contains("not a JSON object")
    );
    // Stricter than apache-avro 0.20, whose resolution wraps an out-of-range int to 0.
    let huge = RECORD.replace(r#""age":30"#, r#""age":4294967296"#);
    let wrapped = encode_with_apache_avro(&huge).unwrap();
    assert!(
        decode_user(1, user_schema(), &wrapped[5..])
            .unwrap()
            .contains(r#""age":0"#)
    );
    let err = encode_user(1, &huge).unwrap_err().to_string();
    assert!(
        err.contains("age: expected an int, found 4294967296"),
        "{err}"
    );
}

#[test]
fn truncated_and_corrupt_datums_are_errors_not_panics() {
    let framed = encode_user(1, RECORD).unwrap();
    let datum = &framed[5..];
    for cut in 0..datum.len() {
        assert!(
            decode_user(1, user_schema(), &datum[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut longer = datum.to_vec();
    longer.push(0);
    assert!(
        decode_user(1, user_schema(), &longer)
            .unwrap_err()
            .to_string()
            .contains("1 bytes left over")
    );
    assert!(decode_user(1, user_schema(), &[0xff; 11]).is_err());
}
