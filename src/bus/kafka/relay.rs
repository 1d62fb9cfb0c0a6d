//! The outbox relay: raw log -> Kafka, checkpoint moved only after acknowledgement.

use super::{KafkaOptions, KafkaPathError};
use crate::avro::encode_user_keyed;
use crate::log::{LogRecord, RawLog};
use crate::model::row::fetch_timestamp;
use crate::process::transform;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::DeliveryFuture;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Producer defaults: no loss, no duplicates from retries, and batching that suits ~1 KB records.
/// Every one can be overridden through `[kafka.properties]`.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("message.timeout.ms", "0"), // never give up on a record: the log is the buffer
];

/// Header carrying the record's fetch time (Unix microseconds).
pub const FETCHED_AT_HEADER: &str = "userstream.fetched_at_us";

pub struct Relay<L> {
    log: L,
    producer: FutureProducer,
    options: KafkaOptions,
    schema_id: u32,
    checkpoint: String,
    /// The log position acknowledged last, for waiting on appends past it.
    position: u64,
}

impl<L: RawLog> Relay<L> {
    pub fn new(log: L, options: &KafkaOptions, schema_id: u32) -> Result<Self, KafkaPathError> {
        let producer = options.producer_config(PRODUCER_DEFAULTS).create()?;
        Ok(Self {
            log,
            producer,
            checkpoint: Self::checkpoint_name(&options.topic),
            options: options.clone(),
            schema_id,
            position: 0,
        })
    }

    /// The raw log checkpoint that marks how far `topic` has been acknowledged by the broker.
    pub fn checkpoint_name(topic: &str) -> String {
        format!("kafka-relay:{topic}")
    }

    /// The last log sequence number the broker acknowledged (as of the last batch).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Publishes the next batch; returns how many records were published (0 = caught up).
    pub async fn relay_batch(&mut self) -> Result<usize, KafkaPathError> {
        let (after, batch) = tokio::task::block_in_place(|| {
            let after = self.log.checkpoint(&self.checkpoint)?;
            let batch = self.log.read_after(after, self.options.batch_size)?;
            Ok::<_, KafkaPathError>((after, batch))
        })?;
        let Some(last) = batch.last().map(|r| r.seq) else {
            self.position = after;
            return Ok(0);
        };
        let mut pending = Vec::with_capacity(batch.len());
        for record in &batch {
            // Keyed by `login.uuid`, so one user always lands on one partition.
            let (topic, key, payload, headers) = match publishable(self.schema_id, record) {
                // When the record was fetched, so consumers can measure end-to-end latency.
                Ok((payload, key)) => (
                    &self.options.topic,
                    key.unwrap_or_else(|| record.seq.to_string()),
                    payload,
                    OwnedHeaders::new().insert(Header {
                        key: FETCHED_AT_HEADER,
                        value: Some(record.fetched_at_micros.to_string().as_str()),
                    }),
                ),
                // Invalid, or not even encodable as a user: straight to the dead-letter
                // topic, with why.
                Err(err) => (
                    &self.options.dlq_topic,
                    record.seq.to_string(),
                    record.record.clone().into_bytes(),
                    OwnedHeaders::new()
                        .insert(Header {
                            key: "error",
                            value: Some(err.as_str()),
                        })
                        .insert(Header {
                            key: "source.log_seq",
                            value: Some(record.seq.to_string().as_str()),
                        }),
                ),
            };
            let mut message = FutureRecord::to(topic)
                .key(&key)
                .payload(&payload)
                .headers(headers);
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push((topic.clone(), delivery));
                        break;
                    }
                    // librdkafka's queue is full: wait for what is in flight, then go on.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), m)) => {
                        message = m;
                        await_all(&mut pending).await?;
                    }
                    Err((error, _)) => return Err(error.into()),
                }
            }
        }
        await_all(&mut pending).await?;
        // Every record of the batch is acknowledged (acks=all): now, and only now, mark them.
        tokio::task::block_in_place(|| self.log.set_checkpoint(&self.checkpoint, last))?;
        self.position = last;
        tracing::debug!(from = after + 1, to = last, "relayed to Kafka");
        Ok(batch.len())
    }
}

/// The record's Avro frame and key, or why it must be dead-lettered. It is validated by the same
/// [`transform`] the processor runs, so a record is refused at the same point on both paths and
/// for the same reason: JSON that an Avro encoder would accept (a duplicated `login`, of which it
/// keeps one) never reaches the topic as a user.
fn publishable(schema_id: u32, record: &LogRecord) -> Result<(Vec<u8>, Option<String>), String> {
    transform(&record.record, fetch_timestamp(record.fetched_at_micros))
        .map_err(|invalid| invalid.to_string())?;
    encode_user_keyed(schema_id, &record.record).map_err(|err| err.to_string())
}

/// Waits for every delivery in `pending`; the first failure fails the batch.
async fn await_all(pending: &mut Vec<(String, DeliveryFuture)>) -> Result<(), KafkaPathError> {
    for (topic, delivery) in pending.drain(..) {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => return Err(KafkaPathError::Delivery { topic, error }),
            Err(_) => {
                return Err(KafkaPathError::Delivery {
                    topic,
                    error: KafkaError::Canceled,
                });
            }
        }
    }
    Ok(())
}
