//! Creates the topic and its dead-letter topic if they are missing, with the configured
//! partitions and replication; existing topics are left as they are.

use super::{KafkaOptions, KafkaPathError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

pub async fn ensure_topics(options: &KafkaOptions) -> Result<(), KafkaPathError> {
    let admin: AdminClient<DefaultClientContext> = options.client_config(&[]).create()?;
    // Ask first: creating needs rights (and an API) that reading metadata doesn't.
    let metadata = admin
        .inner()
        .fetch_metadata(None, std::time::Duration::from_secs(30))?;
    let exists = |name: &str| {
        metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && !t.partitions().is_empty())
    };
    let replication = || TopicReplication::Fixed(options.replication);
    let topics: Vec<NewTopic> = [
        (&options.topic, options.partitions),
        (&options.dlq_topic, 1),
    ]
    .into_iter()
    .filter(|(name, _)| !exists(name))
    .map(|(name, partitions)| NewTopic::new(name, partitions, replication()))
    .collect();
    if topics.is_empty() {
        return Ok(());
    }
    for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaPathError::Kafka(rdkafka::error::KafkaError::AdminOp(
                    code,
                )))
                .inspect_err(|_| tracing::error!(topic, ?code, "cannot create topic"));
            }
        }
    }
    Ok(())
}

/// The sum of `topic`'s partitions' end (high-watermark) offsets: how many messages were ever
/// written to it, whatever retention has since removed. Blocking: librdkafka's metadata calls.
pub fn end_offsets(options: &KafkaOptions, topic: &str) -> Result<u64, KafkaPathError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let timeout = std::time::Duration::from_secs(30);
    let consumer: BaseConsumer = options.client_config(&[]).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut total = 0;
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (_, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
        total += high.max(0) as u64;
    }
    Ok(total)
}
