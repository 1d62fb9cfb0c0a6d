//! The outbox relay: raw log -> Kafka, checkpoint moved only after acknowledgement.

use super::dead_letter;
use super::dead_letter::Rejected;
use super::{KafkaOptions, KafkaPathError};
use crate::avro::encode_user_keyed;
use crate::log::{Log, LogRecord};
use crate::model::row::fetch_timestamp;
use crate::process::transform;
use crate::sink::{AnyStore, Commit, DeadLetter};
use crate::telemetry::events::{
    Component, InternalEvent, ReaderPosition, RecordsDeadLettered, RecordsPublished,
    RecordsReceived,
};
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

/// The raw log checkpoint that marks how far `topic` has been relayed (acknowledged by the
/// broker, or dead-lettered). A free function: readers of the checkpoint (`audit`, tests) have
/// no relay to ask.
pub fn checkpoint_name(topic: &str) -> String {
    format!("kafka-relay:{topic}")
}

pub struct Relay {
    log: Log,
    /// Where records the relay refuses are kept as dead letters (the run's store).
    store: AnyStore,
    producer: FutureProducer,
    options: KafkaOptions,
    schema_id: u32,
    checkpoint: String,
    /// The log position acknowledged last, for waiting on appends past it.
    position: u64,
    /// The last batch, handed back to the log to be refilled (see `RawLog::read_after_into`).
    buffer: Vec<crate::log::LogRecord>,
}

impl Relay {
    pub fn new(
        log: Log,
        store: AnyStore,
        options: &KafkaOptions,
        schema_id: u32,
    ) -> Result<Self, KafkaPathError> {
        let producer = options.producer_config(PRODUCER_DEFAULTS).create()?;
        Ok(Self {
            log,
            store,
            producer,
            checkpoint: checkpoint_name(&options.topic),
            options: options.clone(),
            schema_id,
            position: 0,
            buffer: Vec::new(),
        })
    }

    /// The last log sequence number the broker acknowledged (as of the last batch).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Relays the next batch; returns how many records were published or dead-lettered (0 =
    /// caught up).
    pub async fn relay_batch(&mut self) -> Result<usize, KafkaPathError> {
        let after = self.log.checkpoint(&self.checkpoint).await?;
        let buffer = std::mem::take(&mut self.buffer);
        let batch = self
            .log
            .read_after_into(after, self.options.batch_size, buffer)
            .await?;
        let Some(last) = batch.last().map(|r| r.seq) else {
            self.position = after;
            self.buffer = batch;
            return Ok(0);
        };
        RecordsReceived {
            component: Component::Relay,
            count: batch.len(),
        }
        .emit();
        let mut pending = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        let mut refused_type = None;
        for record in &batch {
            let (payload, key) = match publishable(self.schema_id, record) {
                Ok(frame) => frame,
                // Invalid, or not even encodable as a user: a dead letter, with why.
                Err(Rejected { error_type, reason }) => {
                    refused_type.get_or_insert(error_type);
                    refused.push(DeadLetter {
                        log_seq: record.seq,
                        reason,
                        record: record.record.clone(),
                    });
                    continue;
                }
            };
            // Keyed by `login.uuid`, so one user always lands on one partition.
            let key = key.unwrap_or_else(|| record.seq.to_string());
            // When the record was fetched, so consumers can measure end-to-end latency.
            let fetched_at = record.fetched_at_micros.to_string();
            let headers = OwnedHeaders::new().insert(Header {
                key: FETCHED_AT_HEADER,
                value: Some(fetched_at.as_str()),
            });
            let mut message = FutureRecord::to(&self.options.topic)
                .key(&key)
                .payload(&payload)
                .headers(headers);
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        pending.push((self.options.topic.clone(), delivery));
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
        if !refused.is_empty() {
            let log_id = self.log.log_id().to_owned();
            for letter in &refused {
                let payload = letter.record.as_bytes();
                dead_letter::publish(
                    &self.producer,
                    &self.options,
                    &log_id,
                    letter,
                    payload,
                    None,
                )
                .await?;
            }
            // Keyed (log id, seq) as the embedded processor keys them: a relay that redoes
            // this batch after a crash rewrites the same dead letters.
            self.store
                .commit(Commit {
                    rows: Default::default(),
                    dead_letters: &refused,
                    log_id: &log_id,
                    position: None,
                })
                .await?;
        }
        if let (Some(first), Some(error_type)) = (refused.first(), refused_type) {
            RecordsDeadLettered {
                component: Component::Relay,
                error_type,
                count: refused.len(),
                first_reason: &first.reason,
                tally: None,
            }
            .emit();
        }
        // Every record of the batch is published or dead-lettered: now, and only now, mark them.
        self.log.set_checkpoint(&self.checkpoint, last).await?;
        self.position = last;
        RecordsPublished {
            count: batch.len() - refused.len(),
        }
        .emit();
        ReaderPosition {
            reader: Component::Relay,
            position: last,
        }
        .emit();
        tracing::debug!(from = after + 1, to = last, "relayed to Kafka");
        let relayed = batch.len();
        self.buffer = batch;
        Ok(relayed)
    }
}

/// The record's Avro frame and key, or why it must be dead-lettered. It is validated by the same
/// [`transform`] the processor runs, so a record is refused at the same point on both paths and
/// for the same reason: JSON that an Avro encoder would accept (a duplicated `login`, of which it
/// keeps one) never reaches the topic as a user.
fn publishable(schema_id: u32, record: &LogRecord) -> Result<(Vec<u8>, Option<String>), Rejected> {
    transform(&record.record, fetch_timestamp(record.fetched_at_micros)).map_err(|invalid| {
        Rejected {
            error_type: invalid.kind(),
            reason: invalid.to_string(),
        }
    })?;
    encode_user_keyed(schema_id, &record.record).map_err(|err| Rejected {
        error_type: "not_encodable",
        reason: err.to_string(),
    })
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
