//! The processor as a consumer-group member.
//!
//! Offsets are committed manually, only after the batch's rows are durably in the store and its
//! poison messages are acknowledged on the dead-letter topic. Rebalance callbacks run inside
//! `recv`, and a batch is always finished and committed before the next `recv`, so partitions are
//! never given up with work in flight. Rows are upserts by id, so whatever a crash makes another
//! member redo changes nothing.

use super::dead_letter;
use super::dead_letter::Rejected;
use super::rebalance::RebalanceWatch;
use super::{KafkaOptions, KafkaPathError};
use crate::avro::{decode_frame, decode_user};
use crate::model::row::fetch_timestamp;
use crate::process::core::{ProcessingCore, commit_backoff};
use crate::process::transform;
use crate::registry::RegistryClient;
use crate::registry::client::ClientError;
use crate::sink::{AnyStore, Commit, DeadLetter};
use crate::telemetry::ProcessTally;
use crate::telemetry::events::{Component, InternalEvent, RecordsFailed, RegistryRetry};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("auto.offset.reset", "earliest"),
    ("enable.partition.eof", "false"),
    // A fetch is answered as soon as data arrives on Kafka, but only at its maximum wait on some
    // compatible brokers (Tansu): 50 ms bounds what that adds to latency, for 20 idle fetches/s.
    ("fetch.wait.max.ms", "50"),
    // librdkafka's statistics carry each assigned partition's lag against the broker's high
    // watermark (`rebalance.rs` exports it): every 5 s is fresh enough for a lag alert.
    ("statistics.interval.ms", "5000"),
];

/// How long a batch waits for more messages once it has one. A fetch response lands in
/// librdkafka's queue all at once, so a short window still takes whole fetches at full speed, and
/// at a low rate it adds little to each record's latency.
const BATCH_WINDOW: Duration = Duration::from_millis(2);

/// How often an unfinished drain says what it is waiting for.
const DRAIN_REPORT_EVERY: Duration = Duration::from_secs(30);

/// Makes a drain that does not finish visible: every [`DRAIN_REPORT_EVERY`] it logs the lagging
/// partitions, as a warning when nothing moved since the last report. A drain waits on the whole
/// group, so a member that stopped consuming without giving its partitions up (a broker that
/// never rebalances, a hung process) would otherwise stall it in silence.
#[derive(Default)]
struct DrainReport {
    next: Option<Instant>,
    last: Vec<PartitionLag>,
}

/// A partition the group has not committed to its end yet.
#[derive(Debug, PartialEq)]
struct PartitionLag {
    partition: i32,
    /// `None` before the group's first commit on the partition.
    committed: Option<i64>,
    end: i64,
}

impl DrainReport {
    fn observe(&mut self, lagging: Vec<PartitionLag>) {
        let now = Instant::now();
        if now < *self.next.get_or_insert(now + DRAIN_REPORT_EVERY) {
            return;
        }
        self.next = Some(now + DRAIN_REPORT_EVERY);
        if lagging == self.last {
            tracing::warn!(
                ?lagging,
                "draining: no commits for {DRAIN_REPORT_EVERY:?} on these partitions; \
                 is a group member holding them without consuming?"
            );
        } else {
            tracing::info!(
                ?lagging,
                "draining: waiting for the group to commit these partitions"
            );
        }
        self.last = lagging;
    }
}

pub struct KafkaProcessor {
    /// Shared with the blocking threads that run librdkafka's synchronous calls (the offset
    /// commit, the drain's lag check), so that none of them holds up an async worker.
    consumer: Arc<StreamConsumer<RebalanceWatch>>,
    dlq: FutureProducer,
    registry: RegistryClient,
    sink: AnyStore,
    options: KafkaOptions,
    /// Store commits, counting and telling, shared with the embedded processor.
    core: ProcessingCore,
    /// `process.commit_attempts`: offset commits are retried like store commits.
    commit_attempts: u32,
}

struct Poison {
    /// The metrics' kind of [`Rejected`].
    error_type: &'static str,
    letter: DeadLetter,
    payload: Vec<u8>,
    key: Option<Vec<u8>>,
    partition: i32,
}

impl KafkaProcessor {
    pub fn new(sink: AnyStore, options: &KafkaOptions) -> Result<Self, KafkaPathError> {
        let mut config = options.consumer_config(CONSUMER_DEFAULTS);
        config.set("group.id", &options.group_id);
        let consumer: StreamConsumer<RebalanceWatch> =
            config.create_with_context(RebalanceWatch::default())?;
        consumer.subscribe(&[&options.topic])?;
        let dlq = options
            .producer_config(&[("enable.idempotence", "true"), ("acks", "all")])
            .create()?;
        let commit_attempts = crate::config::ProcessConfig::default().commit_attempts;
        let core = ProcessingCore::new(Component::Consumer, commit_attempts);
        Ok(Self {
            consumer: Arc::new(consumer),
            dlq,
            registry: RegistryClient::new(&options.registry_url),
            sink,
            options: options.clone(),
            core,
            commit_attempts,
        })
    }

    /// Attempts at each store and offset commit (`process.commit_attempts`; the default
    /// otherwise).
    pub fn with_commit_attempts(mut self, attempts: u32) -> Self {
        self.commit_attempts = attempts;
        self.core = ProcessingCore::new(Component::Consumer, attempts);
        self
    }

    pub fn tally(&self) -> Arc<ProcessTally> {
        Arc::clone(self.core.tally())
    }

    /// Consumes until `cancel`, finishing and committing the batch in hand first.
    pub async fn run(&mut self, cancel: &CancellationToken) -> Result<(), KafkaPathError> {
        self.run_until(cancel, &CancellationToken::new()).await
    }

    /// Like [`run`](Self::run), and once `drain` fires also returns as soon as the group has
    /// committed everything on the topic (lag 0), e.g. when the producing side has finished.
    pub async fn run_until(
        &mut self,
        cancel: &CancellationToken,
        drain: &CancellationToken,
    ) -> Result<(), KafkaPathError> {
        let mut drain_report = DrainReport::default();
        let mut outage = Outage::default();
        loop {
            let first = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                // A member idle in `recv` must still notice the drain starting: without this
                // branch nothing wakes it until the next message, which may never come.
                () = drain.cancelled(), if !drain.is_cancelled() => continue,
                message = self.consumer.recv() => match message {
                    Ok(message) => {
                        outage.ended();
                        message.detach()
                    }
                    Err(err) => {
                        outage.survive(err)?;
                        continue;
                    }
                },
                () = tokio::time::sleep(Duration::from_millis(200)), if drain.is_cancelled() => {
                    match self.lagging().await {
                        Ok(lagging) if lagging.is_empty() => return Ok(()),
                        Ok(lagging) => {
                            outage.ended();
                            drain_report.observe(lagging);
                        }
                        // The brokers may be restarting: ask again at the next tick.
                        Err(KafkaPathError::Kafka(err)) => outage.survive(err)?,
                        Err(err) => return Err(err),
                    }
                    continue;
                }
            };
            // A revoke during that `recv` interrupted nothing: the last batch was already written.
            self.consumer.context().take_revoked();
            let mut batch = vec![first];
            let window = tokio::time::sleep(BATCH_WINDOW);
            tokio::pin!(window);
            while batch.len() < self.options.batch_size {
                tokio::select! {
                    () = &mut window => break,
                    message = self.consumer.recv() => {
                        let message = match message {
                            Ok(message) => message.detach(),
                            Err(err) => {
                                outage.survive(err)?;
                                continue;
                            }
                        };
                        if self.consumer.context().take_revoked() {
                            // Partitions were handed over while these waited unwritten. Their
                            // next owner (maybe this member again) reads them from the last
                            // commit, so writing them now would only race it, and committing
                            // them could move its offsets back.
                            tracing::debug!(dropped = batch.len(), "batch in hand left to the partitions' next owner");
                            batch.clear();
                        }
                        batch.push(message);
                    }
                }
            }
            // A revoke may also have run inside the `recv` that the window cut short.
            if self.consumer.context().take_revoked() {
                tracing::debug!(
                    dropped = batch.len(),
                    "batch in hand left to the partitions' next owner"
                );
                continue;
            }
            self.process(batch).await?;
        }
    }

    /// The partitions whose committed group offset has not reached their end; empty once the
    /// group has committed everything.
    async fn lagging(&self) -> Result<Vec<PartitionLag>, KafkaPathError> {
        let (consumer, topic) = (Arc::clone(&self.consumer), self.options.topic.clone());
        tokio::task::spawn_blocking(move || lagging(&consumer, &topic))
            .await
            .map_err(|_| KafkaError::Canceled)?
    }

    async fn process(
        &mut self,
        batch: Vec<rdkafka::message::OwnedMessage>,
    ) -> Result<(), KafkaPathError> {
        let mut rows_by_partition: BTreeMap<i32, (Vec<crate::model::UserRow>, i64)> =
            BTreeMap::new();
        let mut poison = Vec::new();
        // Fetch times from the relay's header, read once: they stamp the rows and, after the
        // commit, measure latency.
        let mut relayed_fetch_times = Vec::with_capacity(batch.len());
        self.core.received(batch.len());
        // Per partition, when its newest message in this batch was written (ms): the lag's age.
        let mut newest_written: BTreeMap<i32, i64> = BTreeMap::new();
        for message in &batch {
            let partition = message.partition();
            let offset = message.offset();
            let entry = rows_by_partition.entry(partition).or_default();
            entry.1 = entry.1.max(offset);
            if let Some(ms) = message.timestamp().to_millis() {
                let newest = newest_written.entry(partition).or_default();
                *newest = (*newest).max(ms);
            }
            let header = fetched_at_micros(message);
            relayed_fetch_times.extend(header);
            let fetched_at = header.or(message.timestamp().to_millis().map(|ms| ms * 1000));
            match decode(
                &self.registry,
                message.payload().unwrap_or_default(),
                fetch_timestamp(fetched_at.unwrap_or(0)),
                self.core.tally(),
            )
            .await?
            {
                Ok(row) => entry.0.push(row),
                Err(Rejected { error_type, reason }) => {
                    let payload = message.payload().unwrap_or_default();
                    poison.push(Poison {
                        error_type,
                        letter: DeadLetter {
                            log_seq: offset as u64,
                            reason,
                            record: dead_letter::payload_text(payload),
                        },
                        payload: payload.to_vec(),
                        key: message.key().map(<[u8]>::to_vec),
                        partition,
                    });
                }
            }
        }
        let topic = self.options.topic.clone();
        for p in &poison {
            let log_id = dead_letter::partition_log_id(&topic, p.partition);
            dead_letter::publish(
                &self.dlq,
                &self.options,
                &log_id,
                &p.letter,
                &p.payload,
                p.key.as_deref(),
            )
            .await?;
        }
        // One store commit per partition: its rows and its dead letters, keyed by partition and
        // offset so that a redone batch rewrites them. Progress itself is the offset commit below.
        // Shared with the store while it writes (see `Commit::rows`), freed here.
        let rows_by_partition: BTreeMap<i32, (Arc<[crate::model::UserRow]>, i64)> =
            rows_by_partition
                .into_iter()
                .map(|(partition, (rows, last))| (partition, (rows.into(), last)))
                .collect();
        for (partition, (rows, _)) in &rows_by_partition {
            let letters: Vec<DeadLetter> = poison
                .iter()
                .filter(|p| p.partition == *partition)
                .map(|p| p.letter.clone())
                .collect();
            let commit = Commit {
                rows: Arc::clone(rows),
                dead_letters: &letters,
                log_id: &dead_letter::partition_log_id(&topic, *partition),
                position: None,
            };
            self.core.commit(&*self.sink, commit).await?;
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, (_, last)) in &rows_by_partition {
            offsets.add_partition_offset(&topic, *partition, Offset::Offset(last + 1))?;
        }
        let mut attempt = 1;
        loop {
            let committed = {
                let (consumer, offsets) = (Arc::clone(&self.consumer), offsets.clone());
                tokio::task::spawn_blocking(move || consumer.commit(&offsets, CommitMode::Sync))
                    .await
                    .unwrap_or(Err(KafkaError::Canceled))
            };
            match committed {
                Ok(()) => break,
                // The group moved on while we stored: the partitions' new owners resume from the
                // last committed offsets and rewrite these rows, which upserts make harmless.
                Err(KafkaError::ConsumerCommit(
                    code @ (RDKafkaErrorCode::RebalanceInProgress
                    | RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::UnknownMemberId),
                )) => {
                    tracing::warn!(
                        ?code,
                        "offset commit lost to a rebalance; the batch will be redone idempotently"
                    );
                    break;
                }
                // The coordinator is unreachable (a broker restarting, a cut connection): the
                // rows are stored, so retrying the same commit is safe, and it is the only way
                // the group's lag ever reaches 0 if this was the last batch.
                Err(err) if attempt < self.commit_attempts => {
                    let delay = commit_backoff(attempt);
                    RecordsFailed {
                        component: Component::Consumer,
                        error_type: "offset_commit",
                        count: batch.len(),
                        attempt,
                        retry_in: delay,
                        error: &err,
                    }
                    .emit();
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
        let rows: usize = rows_by_partition.values().map(|(r, _)| r.len()).sum();
        self.core.done(
            batch.len(),
            rows,
            poison
                .first()
                .map(|first| (poison.len(), first.error_type, first.letter.reason.as_str())),
            relayed_fetch_times.iter().copied(),
        );
        self.consumer
            .context()
            .committed_written_at(&topic, &newest_written);
        Ok(())
    }
}

/// [`KafkaProcessor::lagging`]'s blocking part: three round trips through librdkafka's
/// synchronous calls.
fn lagging(
    consumer: &StreamConsumer<RebalanceWatch>,
    topic: &str,
) -> Result<Vec<PartitionLag>, KafkaPathError> {
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut wanted = TopicPartitionList::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            wanted.add_partition(topic.name(), partition.id());
        }
    }
    let offsets = consumer.committed_offsets(wanted, timeout)?;
    let mut lagging = Vec::new();
    for element in offsets.elements() {
        let (_, end) = consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
        let committed = match element.offset() {
            Offset::Offset(at) => Some(at),
            _ => None,
        };
        if committed.unwrap_or(0) < end {
            lagging.push(PartitionLag {
                partition: element.partition(),
                committed,
                end,
            });
        }
    }
    Ok(lagging)
}

/// How long the consumer rides out errors that librdkafka recovers from by itself before it
/// gives up: longer than a broker restart or a rolling upgrade's step, short enough that a wrong
/// address or a cluster that is gone for good ends the run with an error instead of a silent wait.
pub const UNREACHABLE_LIMIT: Duration = Duration::from_secs(300);

/// Tracks errors the consumer outlives. librdkafka reports a lost connection, all brokers down,
/// a transport or timeout error as an event and keeps reconnecting and fetching by itself, so
/// stopping on one would stop consumption for good over a broker restart. Errors it flags fatal,
/// and authentication and authorization failures (which no retry fixes), end the run at once;
/// the others end it once nothing has succeeded for [`UNREACHABLE_LIMIT`].
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
}

impl Outage {
    /// Something worked: the outage, if any, is over.
    fn ended(&mut self) {
        if self.since.take().is_some() {
            tracing::info!("Kafka consumer: brokers reachable again");
        }
    }

    /// `Ok` while `err` is worth waiting out: consumption errors and failed lag reads alike,
    /// judged by their librdkafka code.
    fn survive(&mut self, err: KafkaError) -> Result<(), KafkaPathError> {
        let code = match &err {
            KafkaError::MessageConsumptionFatal(_) => None,
            err => err.rdkafka_error_code(),
        };
        let Some(code) = code else {
            return Err(err.into());
        };
        if matches!(
            code,
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        ) {
            return Err(err.into());
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() > UNREACHABLE_LIMIT {
            tracing::error!(%code, "Kafka consumer: no progress for {UNREACHABLE_LIMIT:?}, giving up");
            return Err(err.into());
        }
        tracing::warn!(%code, down_for = ?since.elapsed(), "Kafka consumer: transient error, reconnecting");
        Ok(())
    }
}

/// When the record was fetched, from the relay's header. A message from another producer has no
/// such header; its Kafka timestamp stands in, which is as deterministic (kept with the message).
fn fetched_at_micros(message: &rdkafka::message::OwnedMessage) -> Option<i64> {
    message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|h| h.key == super::relay::FETCHED_AT_HEADER)
            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<i64>().ok())
    })
}

/// Payload -> row, or (inner `Err`) the reason it is poison. Only what the message itself makes
/// undecodable is poison: a registry that cannot be reached is waited out
/// ([`writer_schema`]), and if it stays away the run ends (outer `Err`) with nothing committed.
async fn decode(
    registry: &RegistryClient,
    payload: &[u8],
    fetched_at: chrono::DateTime<chrono::Utc>,
    tally: &ProcessTally,
) -> Result<Result<crate::model::UserRow, Rejected>, KafkaPathError> {
    Ok(
        decode_record(registry, payload, Some(tally), UNREACHABLE_LIMIT)
            .await?
            .and_then(|record| {
                transform(&record, fetched_at).map_err(|e| Rejected {
                    error_type: e.kind(),
                    reason: e.to_string(),
                })
            }),
    )
}

/// Payload -> the JSON record it carries, or (inner `Err`) why it is poison; as [`decode`],
/// before validation. A registry that stays unavailable for `patience` is the outer error. Also
/// what `dlq redrive` decodes a dead-lettered message with (with no patience: it reports the
/// registry down rather than wait).
pub async fn decode_record(
    registry: &RegistryClient,
    payload: &[u8],
    tally: Option<&ProcessTally>,
    patience: Duration,
) -> Result<Result<String, Rejected>, KafkaPathError> {
    let rejected = |error_type, reason| Ok(Err(Rejected { error_type, reason }));
    let (schema_id, datum) = match decode_frame(payload) {
        Ok(frame) => frame,
        Err(err) => return rejected("not_avro", err.to_string()),
    };
    let writer = match writer_schema(registry, schema_id, tally, patience).await? {
        Ok(writer) => writer,
        Err(err) => {
            return rejected(
                "unknown_schema",
                format!("unknown schema id {schema_id}: {err}"),
            );
        }
    };
    match decode_user(schema_id, &writer, datum) {
        Ok(record) => Ok(Ok(record)),
        Err(err) => rejected("undecodable", err.to_string()),
    }
}

/// The writer schema `id`, or (inner `Err`) the registry's answer that it has none (40403), the
/// one answer that makes a message poison. While the registry is unavailable (restarting,
/// unreachable, timing out, answering 5xx, 408 or 429) this backs off and asks again, logging
/// each failure, for up to `patience`; then, as on any other refusal (authentication, a wrong
/// URL), the registry's error ends the run. Nothing of the batch in hand is committed meanwhile.
async fn writer_schema(
    registry: &RegistryClient,
    id: u32,
    tally: Option<&ProcessTally>,
    patience: Duration,
) -> Result<Result<std::sync::Arc<apache_avro::Schema>, ClientError>, KafkaPathError> {
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        match registry.schema(id).await {
            Ok(schema) => return Ok(Ok(schema)),
            Err(err @ ClientError::NotFound { .. }) => return Ok(Err(err)),
            Err(err) if !err.is_transient() || started.elapsed() >= patience => {
                return Err(err.into());
            }
            Err(err) => {
                let wait = commit_backoff(attempt);
                RegistryRetry {
                    schema_id: id,
                    attempt,
                    retry_in: wait,
                    error: &err,
                    tally,
                }
                .emit();
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumption(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageConsumption(code)
    }

    #[test]
    fn an_outage_is_ridden_out_until_the_limit_and_auth_failures_end_at_once() {
        let mut outage = Outage::default();
        assert!(
            outage
                .survive(consumption(RDKafkaErrorCode::AllBrokersDown))
                .is_ok()
        );
        assert!(
            outage
                .survive(consumption(RDKafkaErrorCode::BrokerTransportFailure))
                .is_ok()
        );
        outage.since = Some(Instant::now() - UNREACHABLE_LIMIT - Duration::from_secs(1));
        assert!(
            outage
                .survive(consumption(RDKafkaErrorCode::AllBrokersDown))
                .is_err()
        );
        outage.ended();
        assert!(
            outage
                .survive(consumption(RDKafkaErrorCode::AllBrokersDown))
                .is_ok()
        );
        for fatal in [
            consumption(RDKafkaErrorCode::SaslAuthenticationFailed),
            consumption(RDKafkaErrorCode::TopicAuthorizationFailed),
            KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fenced),
        ] {
            assert!(Outage::default().survive(fatal).is_err());
        }
    }
}
