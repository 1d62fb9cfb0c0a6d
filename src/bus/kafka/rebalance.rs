//! The consumer's client context: makes the group's rebalances visible in the log, since they
//! are what moves partitions between `userstream process` instances (a member joining, leaving
//! or dying) and the first thing an operator asks about when consumption stalls.

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::topic_partition_list::TopicPartitionList;

#[derive(Debug, Default)]
pub struct RebalanceLog;

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = %describe(partitions), "partitions revoked");
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = %describe(partitions), "partitions assigned");
        }
    }
}

/// `topic[0,3,5]`: compact enough for one log line.
fn describe(partitions: &TopicPartitionList) -> String {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for element in partitions.elements() {
        by_topic
            .entry(element.topic().to_owned())
            .or_default()
            .push(element.partition());
    }
    by_topic
        .iter()
        .map(|(topic, ids)| {
            let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
            format!("{topic}[{}]", ids.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}
