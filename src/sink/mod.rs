//! Where processed records end up: rows, dead letters, and the processor's position in the log.
//!
//! The contract every sink keeps: [`Sink::commit`] makes the rows, the dead letters and the new
//! position durable together (one transaction where the store has them), so a crash either keeps
//! all of a batch or none of it, and the next start resumes exactly after the last kept batch.
//! Rows are upserts by id, so a batch that is written again changes nothing.

pub mod cassandra;
pub mod newest;
pub mod postgres;
pub mod query;
pub mod sqlite;

pub use cassandra::CassandraStore;
pub use postgres::PostgresStore;
pub use query::{DeadLetterEntry, UserFilter, UserQuery};
pub use sqlite::SqliteStore;

use crate::model::UserRow;
use std::sync::Arc;

/// Errors of a sink, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("store {op}: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Postgres(#[from] crate::postgres::PgError),
    #[error("store: {0}")]
    Cassandra(#[from] cassandra::CassandraError),
    #[error("store at {path}: {reason}")]
    Incompatible { path: String, reason: String },
    /// The store's file is no longer at its path (see [`crate::sqlite::FileId`]).
    #[error("store: {0}")]
    FileGone(String),
}

/// A record that failed validation, kept with its reason and its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub log_seq: u64,
    pub reason: String,
    pub record: String,
}

/// One processed batch: everything to make durable in a single step.
#[derive(Debug)]
pub struct Commit<'a> {
    /// Shared rather than borrowed: a store that writes on a thread of its own (SQLite) keeps a
    /// handle for as long as it writes, without copying the batch; the rows are still freed
    /// where they were built, by the caller's last handle (freeing a batch's many small strings
    /// on another thread cost the embedded path 7% with glibc's allocator).
    pub rows: Arc<[UserRow]>,
    pub dead_letters: &'a [DeadLetter],
    /// Which log (or Kafka partition, `kafka:<topic>:<partition>`) the batch came from: the
    /// position's key, and with each dead letter's `log_seq` the dead letter's key.
    pub log_id: &'a str,
    /// The last log sequence number covered by this batch, recorded with the rows. `None` when
    /// progress is kept elsewhere: a Kafka consumer's progress is its committed offsets, and a
    /// second position in the store that nothing reads would only be a claim nothing enforces.
    pub position: Option<u64>,
}

/// A store of rows that also keeps the consumer position. Async and shared by reference, like
/// [`crate::log::RawLog`].
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), SinkError>;
    /// The last committed position for `log_id`; `None` before the first commit.
    async fn position(&self, log_id: &str) -> Result<Option<u64>, SinkError>;
    /// Removes the dead letters with these `(log_id, log_seq)` keys (re-driven into rows);
    /// missing ones are no error, so a repeated removal is harmless.
    async fn remove_dead_letters(&self, keys: &[(String, u64)]) -> Result<(), SinkError>;
}

/// Everything a store does: take commits ([`Sink`]) and answer queries ([`UserQuery`]).
pub trait Store: Sink + UserQuery {}

impl<T: Sink + UserQuery> Store for T {}

/// The configured store, whichever backend: shared by every task of a process that uses it.
pub type AnyStore = std::sync::Arc<dyn Store>;
