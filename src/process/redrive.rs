//! Re-driving dead letters after a fix: each one ends stored, or back in the dead-letter table
//! with the reason it fails for now.
//!
//! A dead letter is re-processed from what it came from, the way it was processed the first
//! time: a record of this run's log is read back from the log (with its fetch time) and
//! validated; a Kafka message is decoded again (the registry may know its schema id by now) and
//! validated. A record whose source is gone (another log, a log that has since been replaced) is
//! validated from the copy kept in the dead letter, stamped with its failure time.
//!
//! Idempotent: rows are upserts by `login.uuid` and dead letters are keyed by their source, so
//! re-driving twice, or after a crash half-way, ends the same. Rows and the remaining letters are
//! committed first and the re-driven letters removed after, so a crash in between leaves a
//! letter whose row exists, which the next re-drive stores again and removes.

use super::transform;
use crate::log::RawLog;
use crate::model::UserRow;
use crate::model::row::fetch_timestamp;
use crate::sink::query::DeadLetterEntry;
use crate::sink::{Commit, DeadLetter, Sink, UserQuery};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which dead letters to re-drive, and whether to write.
#[derive(Debug, Default, Clone)]
pub struct RedriveOptions {
    /// Only letters whose reason contains this text.
    pub reason_contains: Option<String>,
    /// Decide every outcome, write nothing.
    pub dry_run: bool,
}

/// What became (or, in a dry run, would become) of one dead letter.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RedriveOutcome {
    pub log_id: String,
    pub log_seq: u64,
    /// `stored`, `dead` (with `reason`), or `skipped` (with why).
    pub outcome: &'static str,
    pub reason: String,
}

/// Re-drives the dead letters `options` selects from `store`. `log` is this data directory's
/// raw log, if there is one; `registry` decodes dead-lettered Kafka messages with the
/// consumer's own decoding (without one, such letters are skipped, untouched, as they are while
/// the registry does not answer).
pub async fn redrive<S: Sink + UserQuery + ?Sized>(
    store: &S,
    log: Option<&dyn RawLog>,
    registry: Option<&crate::registry::RegistryClient>,
    options: &RedriveOptions,
) -> anyhow::Result<Vec<RedriveOutcome>> {
    let mut selected = Vec::new();
    store
        .scan_dead_letters(&mut |letter| {
            if options
                .reason_contains
                .as_ref()
                .is_none_or(|text| letter.reason.contains(text.as_str()))
            {
                selected.push(letter);
            }
            Ok(())
        })
        .await?;
    let log_id = log.map(|l| l.log_id().to_owned());
    let mut outcomes = Vec::with_capacity(selected.len());
    // By source (`log_id`): each group commits as one batch of that source.
    let mut rows: BTreeMap<String, Vec<UserRow>> = BTreeMap::new();
    let mut still_dead: BTreeMap<String, Vec<DeadLetter>> = BTreeMap::new();
    let mut resolved = Vec::new();
    for letter in selected {
        let result = if Some(&letter.log_id) == log_id.as_ref() {
            let log = log.expect("log_id came from the log");
            from_log(log, &letter).await?
        } else if letter.log_id.starts_with("kafka:") {
            let payload = crate::bus::kafka::dead_letter::payload_bytes(&letter.record);
            let Some(registry) = registry else {
                outcomes.push(outcome(
                    &letter,
                    "skipped",
                    "no schema registry: neither [registry] url nor this data directory's registry.db",
                ));
                continue;
            };
            // No patience: a registry that does not answer now skips the letter.
            match crate::bus::kafka::consumer::decode_record(
                registry,
                &payload,
                None,
                std::time::Duration::ZERO,
            )
            .await
            {
                Ok(decoded) => decoded
                    .map_err(|rejected| rejected.reason)
                    .and_then(|record| {
                        transform(&record, failed_at(&letter)).map_err(|e| e.to_string())
                    }),
                Err(unavailable) => {
                    outcomes.push(outcome(&letter, "skipped", &unavailable.to_string()));
                    continue;
                }
            }
        } else {
            transform(&letter.record, failed_at(&letter)).map_err(|e| e.to_string())
        };
        match result {
            Ok(row) => {
                outcomes.push(outcome(&letter, "stored", ""));
                rows.entry(letter.log_id.clone()).or_default().push(row);
                resolved.push((letter.log_id, letter.log_seq));
            }
            // The same reason again: nothing to write (its failure time stays the first one).
            Err(reason) if reason == letter.reason => {
                outcomes.push(outcome(&letter, "dead", &reason));
            }
            Err(reason) => {
                outcomes.push(outcome(&letter, "dead", &reason));
                still_dead
                    .entry(letter.log_id.clone())
                    .or_default()
                    .push(DeadLetter {
                        log_seq: letter.log_seq,
                        reason,
                        record: letter.record,
                    });
            }
        }
    }
    if options.dry_run {
        return Ok(outcomes);
    }
    let sources: std::collections::BTreeSet<&String> =
        rows.keys().chain(still_dead.keys()).collect();
    for source in sources {
        store
            .commit(Commit {
                rows: rows.get(source).map_or(&[][..], Vec::as_slice).into(),
                dead_letters: still_dead.get(source).map_or(&[], Vec::as_slice),
                log_id: source,
                position: None,
            })
            .await?;
    }
    store.remove_dead_letters(&resolved).await?;
    Ok(outcomes)
}

/// A record of this data directory's log, read back as the processor read it.
async fn from_log(
    log: &dyn RawLog,
    letter: &DeadLetterEntry,
) -> anyhow::Result<Result<UserRow, String>> {
    let found = log
        .read_after(letter.log_seq.saturating_sub(1), 1)
        .await?
        .into_iter()
        .find(|r| r.seq == letter.log_seq);
    Ok(match found {
        Some(record) => transform(&record.record, fetch_timestamp(record.fetched_at_micros))
            .map_err(|e| e.to_string()),
        None => transform(&letter.record, failed_at(letter)).map_err(|e| e.to_string()),
    })
}

/// The letter's failure time, standing in for a fetch time its source no longer tells.
fn failed_at(letter: &DeadLetterEntry) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&letter.failed_at)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
}

fn outcome(letter: &DeadLetterEntry, outcome: &'static str, reason: &str) -> RedriveOutcome {
    RedriveOutcome {
        log_id: letter.log_id.clone(),
        log_seq: letter.log_seq,
        outcome,
        reason: reason.to_owned(),
    }
}
