//! Dead letters on the Kafka path: one model for the relay and the consumers.
//!
//! Every dead letter is kept in the store's dead-letter table, keyed by where it came from:
//! `(log id, sequence number)` for a record the relay refused before publishing (the same key the
//! embedded processor uses), `(kafka:<topic>:<partition>, offset)` for a message a consumer could
//! not store. It is written in the same store commit as the rows of its batch, so a redone batch
//! rewrites the same key: `dlq list`, `dlq count` and `dlq redrive` see each dead letter once, in
//! every mode. Each is also published to the dead-letter topic for Kafka tooling, with headers
//! carrying that same key (`source.log_id`, `source.log_seq`) and the reason (`error`); a redone
//! batch can publish a copy twice there, which the key lets a reader collapse.

use super::{KafkaOptions, KafkaPathError};
use crate::sink::DeadLetter;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// Header names, one schema for every dead letter on the topic.
pub const ERROR_HEADER: &str = "error";
pub const LOG_ID_HEADER: &str = "source.log_id";
pub const LOG_SEQ_HEADER: &str = "source.log_seq";

/// The store's key for a message of `topic`'s `partition`: the `log_id` of its dead letters.
pub fn partition_log_id(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}:{partition}")
}

/// A payload as the store's text `record`: as is when it is plain text (a JSON record), else
/// `hex:` and its bytes, so that `dlq redrive` can decode it again. An Avro frame starts with a
/// NUL byte, which PostgreSQL's `text` refuses (a batch that can never commit would stop its
/// partition), so text with a NUL is hex too, as is text that itself starts with `hex:`.
pub fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if !text.contains('\0') && !text.starts_with("hex:") => text.to_owned(),
        _ => {
            let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
            format!("hex:{hex}")
        }
    }
}

/// The bytes [`payload_text`] stored.
pub fn payload_bytes(record: &str) -> Vec<u8> {
    match record.strip_prefix("hex:") {
        Some(hex) if hex.len() % 2 == 0 => (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|_| record.as_bytes().to_vec()),
        _ => record.as_bytes().to_vec(),
    }
}

/// Publishes `letter` (from `log_id`) to the dead-letter topic, keyed by `key`, and waits for the
/// acknowledgement.
pub async fn publish(
    producer: &FutureProducer,
    options: &KafkaOptions,
    log_id: &str,
    letter: &DeadLetter,
    payload: &[u8],
    key: Option<&[u8]>,
) -> Result<(), KafkaPathError> {
    let seq = letter.log_seq.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: ERROR_HEADER,
            value: Some(letter.reason.as_str()),
        })
        .insert(Header {
            key: LOG_ID_HEADER,
            value: Some(log_id),
        })
        .insert(Header {
            key: LOG_SEQ_HEADER,
            value: Some(seq.as_str()),
        });
    let mut record = FutureRecord::to(&options.dlq_topic)
        .payload(payload)
        .headers(headers);
    if let Some(key) = key {
        record = record.key(key);
    }
    producer
        .send(record, Timeout::Never)
        .await
        .map_err(|(error, _)| KafkaPathError::Delivery {
            topic: options.dlq_topic.clone(),
            error,
        })?;
    tracing::warn!(reason = %letter.reason, log_id, seq = letter.log_seq, "dead-lettered");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_through_the_store_text() {
        for payload in [
            &b"{\"not\": \"avro\"}"[..],
            &[0, 0, 0, 0, 1, 0xff, 0x80],
            &[0, 0, 0, 0, 1, b'a'],
            b"hex:00",
            b"",
        ] {
            let text = payload_text(payload);
            assert!(!text.contains('\0'), "{text:?}");
            assert_eq!(payload_bytes(&text), payload);
        }
    }
}

/// Why a record or message is refused: the dead letter's reason, and its kind (the
/// `error_type` label of the dead-letter metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub error_type: &'static str,
    pub reason: String,
}
