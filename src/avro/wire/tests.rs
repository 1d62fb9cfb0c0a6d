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
    assert_eq!(transform(&decoded).unwrap(), transform(RECORD).unwrap());
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
        transform(&decoded).unwrap_err().to_string(),
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
