//! The Confluent wire format: magic byte 0, the writer schema's registry id as 4 big-endian bytes,
//! then the Avro binary datum.

use super::codec::Codec;
use super::schema::user_schema;
use apache_avro::Schema;
use apache_avro::types::Value;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("not Confluent-framed Avro: {0}")]
    NotAvro(String),
    #[error("record does not fit the users_created schema: {0}")]
    Encode(String),
    #[error("Avro datum does not decode with writer schema {schema_id}: {reason}")]
    Decode { schema_id: u32, reason: String },
}

/// Frames an Avro datum for schema `schema_id`.
pub fn encode_frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a framed message into schema id and datum.
pub fn decode_frame(message: &[u8]) -> Result<(u32, &[u8]), AvroError> {
    match message {
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [magic, ..] if message.len() >= 5 => Err(AvroError::NotAvro(format!(
            "magic byte {magic}, expected 0"
        ))),
        _ => Err(AvroError::NotAvro(format!(
            "{} bytes, shorter than the 5-byte header",
            message.len()
        ))),
    }
}

/// Our schema with its named types, built once.
fn user_codec() -> &'static Codec<'static> {
    static CODEC: OnceLock<Codec<'static>> = OnceLock::new();
    CODEC.get_or_init(|| Codec::new(user_schema()))
}

/// Encodes one raw API record (JSON, credentials already removed) as a framed `User` datum.
pub fn encode_user(schema_id: u32, record: &str) -> Result<Vec<u8>, AvroError> {
    encode_user_keyed(schema_id, record).map(|(frame, _)| frame)
}

/// [`encode_user`], also returning the record's `login.uuid` (the message key) from the same
/// parse.
pub fn encode_user_keyed(
    schema_id: u32,
    record: &str,
) -> Result<(Vec<u8>, Option<String>), AvroError> {
    let json: serde_json::Value =
        serde_json::from_str(record).map_err(|e| AvroError::Encode(e.to_string()))?;
    if !json.is_object() {
        return Err(AvroError::Encode("not a JSON object".into()));
    }
    let mut frame = Vec::with_capacity(5 + record.len() / 2);
    frame.push(0);
    frame.extend_from_slice(&schema_id.to_be_bytes());
    user_codec()
        .encode(&json, &mut frame)
        .map_err(AvroError::Encode)?;
    let key = json
        .pointer("/login/uuid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Ok((frame, key))
}

/// Decodes a datum written with `writer` into the JSON record the processor validates, resolving
/// it against our schema, so records written with an older compatible schema read correctly.
pub fn decode_user(schema_id: u32, writer: &Schema, datum: &[u8]) -> Result<String, AvroError> {
    let fail = |reason: String| AvroError::Decode { schema_id, reason };
    // Written with our schema (the common case): nothing to resolve, decode directly.
    if std::ptr::eq(writer, user_schema()) || writer == user_schema() {
        return Ok(user_codec().decode(datum).map_err(fail)?.to_string());
    }
    decode_resolved(schema_id, writer, datum)
}

/// The general path: apache-avro decodes with the writer schema and resolves against ours.
fn decode_resolved(schema_id: u32, writer: &Schema, datum: &[u8]) -> Result<String, AvroError> {
    let fail = |reason: String| AvroError::Decode { schema_id, reason };
    let mut reader = datum;
    let value = apache_avro::from_avro_datum(writer, &mut reader, Some(user_schema()))
        .map_err(|e| fail(e.to_string()))?;
    if !reader.is_empty() {
        return Err(fail(format!(
            "{} bytes left over after the record",
            reader.len()
        )));
    }
    let json = serde_json::Value::try_from(strip_unions(value)).map_err(|e| fail(e.to_string()))?;
    Ok(json.to_string())
}

/// Unions carry their branch index; the JSON the processor reads wants the plain value, and
/// `null` fields are simply absent from an API record.
fn strip_unions(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => strip_unions(*inner),
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .filter(|(_, v)| !is_null(v))
                .map(|(k, v)| (k, strip_unions(v)))
                .collect(),
        ),
        other => other,
    }
}

fn is_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Union(_, inner) => is_null(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
