//! The consumer's client context. It makes the group's rebalances visible in the log, since they
//! are what moves partitions between `userstream process` instances (a member joining, leaving
//! or dying) and the first thing an operator asks about when consumption stalls. It also tells
//! the consumer loop that a revoke happened, so that messages received before it and not yet
//! written are left to the partitions' next owner.

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::topic_partition_list::TopicPartitionList;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct RebalanceWatch {
    /// Set by a revoke, cleared by [`take_revoked`](Self::take_revoked).
    revoked: AtomicBool,
}

impl RebalanceWatch {
    /// Whether partitions were revoked since the last call. Callbacks run inside the consumer's
    /// `recv`, so the loop asks right after each one.
    pub fn take_revoked(&self) -> bool {
        self.revoked.swap(false, Ordering::Relaxed)
    }
}

impl ClientContext for RebalanceWatch {}

impl ConsumerContext for RebalanceWatch {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                self.revoked.store(true, Ordering::Relaxed);
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
