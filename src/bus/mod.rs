//! Message buses between ingest and processing. [`kafka`]: the raw log relayed to a Kafka topic as
//! Avro (outbox pattern), and a consumer-group processor that stores and only then commits.

pub mod kafka;
