//! Kafka through rdkafka (librdkafka).
//!
//! * [`relay`]: the outbox relay. It reads the raw log after its checkpoint, publishes each record
//!   (Avro, keyed by user id) and moves the checkpoint only after the broker acknowledged the whole
//!   batch. A broker outage just leaves records in the log; a crash republishes at most the
//!   unacknowledged tail, which the idempotent store absorbs.
//! * [`consumer`]: a consumer-group member that decodes, validates and stores a batch, keeps
//!   poison messages as dead letters, and only then commits the offsets.
//! * [`dead_letter`]: one dead-letter model for both: the store's table, mirrored on the topic.

pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod rebalance;
pub mod relay;
pub mod topics;

pub use config::KafkaOptions;
pub use consumer::KafkaProcessor;
pub use relay::Relay;

#[derive(Debug, thiserror::Error)]
pub enum KafkaPathError {
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("Kafka delivery to {topic} failed: {error}")]
    Delivery {
        topic: String,
        error: rdkafka::error::KafkaError,
    },
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error(transparent)]
    Registry(#[from] crate::registry::client::ClientError),
    #[error(transparent)]
    Commit(#[from] crate::process::core::CommitFailed),
}
