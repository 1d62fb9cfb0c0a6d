//! The consumer's client context. It makes the group's rebalances visible in the log, since they
//! are what moves partitions between `userstream process` instances (a member joining, leaving
//! or dying) and the first thing an operator asks about when consumption stalls. It also tells
//! the consumer loop that a revoke happened, so that messages received before it and not yet
//! written are left to the partitions' next owner. And it turns librdkafka's periodic statistics
//! into the consumer-lag metrics: librdkafka already knows each assigned partition's high
//! watermark and committed offset, so the lag costs no broker round trip of ours.

use crate::telemetry::events::{ConsumerLag, InternalEvent};
use rdkafka::ClientContext;
use rdkafka::Statistics;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::topic_partition_list::TopicPartitionList;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct RebalanceWatch {
    /// Set by a revoke, cleared by [`take_revoked`](Self::take_revoked).
    revoked: AtomicBool,
    /// Per (topic, partition), when the newest message this member committed was written (Unix
    /// ms): while a partition lags, the lag's age in seconds is measured from it.
    committed_written_at: Mutex<HashMap<(String, i32), i64>>,
}

impl RebalanceWatch {
    /// Whether partitions were revoked since the last call. Callbacks run inside the consumer's
    /// `recv`, so the loop asks right after each one.
    pub fn take_revoked(&self) -> bool {
        self.revoked.swap(false, Ordering::Relaxed)
    }
}

impl RebalanceWatch {
    /// Notes the write times of the newest messages just committed, per partition of `topic`.
    pub fn committed_written_at(&self, topic: &str, newest: &BTreeMap<i32, i64>) {
        let mut written = self
            .committed_written_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (&partition, &at) in newest {
            written.insert((topic.to_owned(), partition), at);
        }
    }
}

impl ClientContext for RebalanceWatch {
    /// Every `statistics.interval.ms`, the lag of each partition assigned to this member.
    fn stats(&self, statistics: Statistics) {
        let now = chrono::Utc::now().timestamp_millis();
        let written = self
            .committed_written_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (topic, stats) in &statistics.topics {
            for (&partition, p) in &stats.partitions {
                // -1 is librdkafka's internal unassigned partition; a lag of -1 is unknown (no
                // committed offset or watermark yet).
                if partition < 0 || !p.desired || p.consumer_lag < 0 {
                    continue;
                }
                let seconds = match written.get(&(topic.clone(), partition)) {
                    Some(&at) if p.consumer_lag > 0 => (now - at).max(0) as f64 / 1000.0,
                    _ => 0.0,
                };
                ConsumerLag {
                    topic,
                    partition,
                    messages: p.consumer_lag,
                    seconds,
                }
                .emit();
            }
        }
    }
}

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
