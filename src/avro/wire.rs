//! The Confluent wire format: magic byte 0, the writer schema's registry id as 4 big-endian bytes,
//! then the Avro binary datum.

use super::schema::user_schema;
use apache_avro::Schema;
use apache_avro::types::Value;

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

/// Encodes one raw API record (JSON, credentials already removed) as a framed `User` datum.
pub fn encode_user(schema_id: u32, record: &str) -> Result<Vec<u8>, AvroError> {
    let json: serde_json::Value =
        serde_json::from_str(record).map_err(|e| AvroError::Encode(e.to_string()))?;
    if !json.is_object() {
        return Err(AvroError::Encode("not a JSON object".into()));
    }
    // Resolution turns JSON objects into records, fills absent fields with their defaults, and
    // picks the union branch (long or string) each value needs.
    let value = Value::from(json)
        .resolve(user_schema())
        .map_err(|e| AvroError::Encode(e.to_string()))?;
    let datum = apache_avro::to_avro_datum(user_schema(), value)
        .map_err(|e| AvroError::Encode(e.to_string()))?;
    Ok(encode_frame(schema_id, &datum))
}

/// Decodes a datum written with `writer` into the JSON record the processor validates, resolving
/// it against our schema, so records written with an older compatible schema read correctly.
pub fn decode_user(schema_id: u32, writer: &Schema, datum: &[u8]) -> Result<String, AvroError> {
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
