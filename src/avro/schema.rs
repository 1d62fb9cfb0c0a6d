//! The Avro schema of a `users_created` record: the user as the API describes it, minus the
//! credentials, so other consumers can derive their own views (DATA.md).
//!
//! Fields the API sometimes omits or nulls are optional with a `null` default, and the two fields
//! the API sends as number or string (`postcode`, `street.number`) are unions of both. So any
//! record the API sends can be encoded as-is, and validation stays the processor's job. That
//! validation is what sends a bad record to the dead-letter queue.

use apache_avro::Schema;
use std::sync::OnceLock;

pub const USER_SCHEMA: &str = r#"{
  "type": "record", "name": "User", "namespace": "me.randomuser",
  "doc": "A randomuser.me 1.4 user without login credentials (password, salt, md5, sha1, sha256).",
  "fields": [
    {"name": "gender", "type": ["null", "string"], "default": null},
    {"name": "name", "type": ["null", {"type": "record", "name": "Name", "fields": [
      {"name": "title", "type": ["null", "string"], "default": null},
      {"name": "first", "type": ["null", "string"], "default": null},
      {"name": "last", "type": ["null", "string"], "default": null}]}], "default": null},
    {"name": "location", "type": ["null", {"type": "record", "name": "Location", "fields": [
      {"name": "street", "type": ["null", {"type": "record", "name": "Street", "fields": [
        {"name": "number", "type": ["null", "long", "string"], "default": null},
        {"name": "name", "type": ["null", "string"], "default": null}]}], "default": null},
      {"name": "city", "type": ["null", "string"], "default": null},
      {"name": "state", "type": ["null", "string"], "default": null},
      {"name": "country", "type": ["null", "string"], "default": null},
      {"name": "postcode", "type": ["null", "long", "string"], "default": null},
      {"name": "coordinates", "type": ["null", {"type": "record", "name": "Coordinates", "fields": [
        {"name": "latitude", "type": ["null", "string"], "default": null},
        {"name": "longitude", "type": ["null", "string"], "default": null}]}], "default": null},
      {"name": "timezone", "type": ["null", {"type": "record", "name": "Timezone", "fields": [
        {"name": "offset", "type": ["null", "string"], "default": null},
        {"name": "description", "type": ["null", "string"], "default": null}]}], "default": null}]}],
     "default": null},
    {"name": "email", "type": ["null", "string"], "default": null},
    {"name": "login", "type": ["null", {"type": "record", "name": "Login", "fields": [
      {"name": "uuid", "type": ["null", "string"], "default": null},
      {"name": "username", "type": ["null", "string"], "default": null}]}], "default": null},
    {"name": "dob", "type": ["null", {"type": "record", "name": "Dated", "fields": [
      {"name": "date", "type": ["null", "string"], "default": null},
      {"name": "age", "type": ["null", "int"], "default": null}]}], "default": null},
    {"name": "registered", "type": ["null", "Dated"], "default": null},
    {"name": "phone", "type": ["null", "string"], "default": null},
    {"name": "cell", "type": ["null", "string"], "default": null},
    {"name": "id", "type": ["null", {"type": "record", "name": "IdDocument", "fields": [
      {"name": "name", "type": ["null", "string"], "default": null},
      {"name": "value", "type": ["null", "string"], "default": null}]}], "default": null},
    {"name": "picture", "type": ["null", {"type": "record", "name": "Picture", "fields": [
      {"name": "large", "type": ["null", "string"], "default": null},
      {"name": "medium", "type": ["null", "string"], "default": null},
      {"name": "thumbnail", "type": ["null", "string"], "default": null}]}], "default": null},
    {"name": "nat", "type": ["null", "string"], "default": null}
  ]
}"#;

/// The parsed schema, parsed once.
pub fn user_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(USER_SCHEMA).expect("USER_SCHEMA is valid Avro"))
}
