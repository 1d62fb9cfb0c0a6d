//! `userstream audit`: a conservation check. Every record in the raw log must end as a stored
//! user or a dead letter; nothing may be stored that was never logged; and on the Kafka path the
//! topic must hold at least every record the relay marked as published.
//!
//! None of the pipelines this replaces can say whether it lost anything. This reads each source
//! once, paging (the log 10,000 records at a time; the store's ids and dead letters through the
//! store's own paged scans), and holds only the ids still unaccounted for: one set of 16-byte
//! ids, never the tables' rows.

use crate::log::RawLog;
use crate::sink::{SinkError, UserQuery};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Log records read per page.
const LOG_PAGE: usize = 10_000;

/// What the audit found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct AuditReport {
    pub log_records: u64,
    pub log_users: u64,
    pub stored_users: u64,
    pub dead_letters: u64,
    /// Dead letters keyed by a Kafka partition (messages a consumer refused).
    pub kafka_dead_letters: u64,
    /// Logged users neither stored nor dead-lettered: `(id, first log seq)`, up to `show`.
    pub missing: Vec<(String, u64)>,
    pub missing_count: u64,
    /// Log records with no usable `login.uuid` and no dead letter: their seqs, up to `show`.
    pub unaccounted_records: Vec<u64>,
    pub unaccounted_count: u64,
    /// Stored users that are not in the log, up to `show`.
    pub extra: Vec<String>,
    pub extra_count: u64,
    pub topic: Option<TopicAudit>,
}

/// The Kafka side: what the relay marked as relayed against what the topics hold. The relay
/// writes each record to the topic or, refused, to the dead-letter topic, so together their end
/// offsets cover every record up to its checkpoint (on topics this log alone writes to; other
/// producers' messages would make up for lost ones).
#[derive(Debug, Default, Clone, Serialize)]
pub struct TopicAudit {
    pub topic: String,
    /// The sum of the topic's and the dead-letter topic's partitions' end offsets: every message
    /// ever written to them, whatever retention has since removed.
    pub end_offsets: u64,
    /// Log records up to the relay's checkpoint.
    pub expected: u64,
}

impl AuditReport {
    /// Whether everything is accounted for. More messages on the topic than expected is not a
    /// loss (a relay that crashed republishes its last batch; other producers may write), so
    /// only fewer fails.
    pub fn balanced(&self) -> bool {
        self.missing_count == 0
            && self.unaccounted_count == 0
            && self.extra_count == 0
            && self
                .topic
                .as_ref()
                .is_none_or(|t| t.end_offsets >= t.expected)
    }
}

/// Audits `store` against `log`. On the Kafka path, `relayed` is the topic, the relay's
/// checkpoint and the end offsets of the topic and its dead-letter topic, checked against the log; `show` caps the ids listed per finding (the
/// counts are always exact).
pub async fn audit<Q: UserQuery + ?Sized>(
    log: &dyn RawLog,
    store: &Q,
    relayed: Option<(String, u64, u64)>,
    show: usize,
) -> anyhow::Result<AuditReport> {
    let mut report = AuditReport::default();
    let log_id = log.log_id().to_owned();
    // Dead letters first (normally few): the log records they account for, by seq, and the
    // users of Kafka dead letters whose record is readable JSON.
    let mut dead_seqs = HashSet::new();
    let mut dead_ids = HashSet::new();
    store
        .scan_dead_letters(&mut |letter| {
            report.dead_letters += 1;
            if letter.log_id == log_id {
                dead_seqs.insert(letter.log_seq);
            } else if letter.log_id.starts_with("kafka:") {
                report.kafka_dead_letters += 1;
                dead_ids.extend(kafka_user_id(&letter.record));
            }
            Ok(())
        })
        .await?;
    // The log: every user it holds, and those no dead letter accounts for (`expected`, with the
    // first seq that carried each).
    let mut logged: HashSet<Uuid> = HashSet::new();
    let mut expected: HashMap<Uuid, u64> = HashMap::new();
    let mut published = 0;
    let mut after = 0;
    loop {
        let page = log.read_after(after, LOG_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            report.log_records += 1;
            let dead = dead_seqs.contains(&record.seq);
            if relayed
                .as_ref()
                .is_some_and(|(_, upto, _)| record.seq <= *upto)
            {
                published += 1;
            }
            let id = user_id(&record.record);
            logged.extend(id);
            match id {
                _ if dead => {}
                Some(id) if dead_ids.contains(&id) => {}
                Some(id) => {
                    expected.entry(id).or_insert(record.seq);
                }
                None => {
                    report.unaccounted_count += 1;
                    if report.unaccounted_records.len() < show {
                        report.unaccounted_records.push(record.seq);
                    }
                }
            }
        }
    }
    report.log_users = logged.len() as u64;
    // The store: each id settles an expected user, is a logged user accounted for otherwise
    // (dead-lettered once, stored after a re-drive), or is extra.
    store
        .scan_ids(&mut |id| {
            report.stored_users += 1;
            if expected.remove(&id).is_none() && !logged.contains(&id) {
                report.extra_count += 1;
                if report.extra.len() < show {
                    report.extra.push(id.to_string());
                }
            }
            Ok::<(), SinkError>(())
        })
        .await?;
    let mut missing: Vec<(Uuid, u64)> = expected.into_iter().collect();
    missing.sort_by_key(|(_, seq)| *seq);
    report.missing_count = missing.len() as u64;
    report.missing = missing
        .into_iter()
        .take(show)
        .map(|(id, seq)| (id.to_string(), seq))
        .collect();
    report.topic = relayed.map(|(topic, _, end_offsets)| TopicAudit {
        topic,
        end_offsets,
        expected: published,
    });
    Ok(report)
}

/// The user a Kafka dead letter carries: its record if it is JSON, or its Avro frame read with
/// our schema (the layout of every message our relay writes).
fn kafka_user_id(record: &str) -> Option<Uuid> {
    if !record.starts_with("hex:") {
        return user_id(record);
    }
    let payload = crate::bus::kafka::dead_letter::payload_bytes(record);
    let (schema_id, datum) = crate::avro::decode_frame(&payload).ok()?;
    let json = crate::avro::decode_user(schema_id, crate::avro::user_schema(), datum).ok()?;
    user_id(&json)
}

/// `login.uuid` of a JSON record, if it has a valid one.
fn user_id(record: &str) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct Login {
        uuid: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        login: Option<Login>,
    }
    let record: Record = serde_json::from_str(record).ok()?;
    Uuid::parse_str(&record.login?.uuid?).ok()
}
