//! The raw log: every fetched record, in fetch order, durable before anyone downstream sees it.
//!
//! It is the single source of truth of the pipeline. Ingest appends to it (records and the source's
//! paging cursor in one transaction); processors read it by sequence number and keep their own
//! position next to the rows they write. Later buses (Kafka) relay from it as an outbox.

pub mod postgres;
pub mod signal;
pub mod sqlite;

pub use postgres::PostgresLog;
pub use signal::AppendSignal;
pub use sqlite::SqliteLog;

/// Errors of a log backend, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raw log {op}: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("raw log: {0}")]
    Postgres(#[from] crate::postgres::PgError),
    #[error("raw log at {path}: {reason}")]
    Incompatible { path: String, reason: String },
    /// The log's file is no longer at its path (see [`crate::sqlite::FileId`]).
    #[error("raw log: {0}")]
    FileGone(String),
}

/// One stored raw record.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Position in the log: strictly increasing, never reused.
    pub seq: u64,
    /// When ingest received the page holding this record (Unix microseconds); the start of the
    /// end-to-end latency measurement.
    pub fetched_at_micros: i64,
    /// The API record, credentials removed.
    pub record: String,
}

/// Where a seeded source continues after the last appended page. Stored in the same transaction as
/// the page's records, so after a crash ingest neither skips nor refetches a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestCursor {
    pub seed: String,
    /// Pages only line up for one page size, so a change of size starts a new seed.
    pub page_size: u32,
    pub next_page: u64,
}

/// Records fetched together, appended atomically.
#[derive(Debug)]
pub struct AppendBatch<'a> {
    pub run_id: &'a str,
    pub source: &'a str,
    pub fetched_at_micros: i64,
    pub records: Vec<String>,
    /// The cursor to store with these records (key, position after this page).
    pub cursor: Option<(&'a str, IngestCursor)>,
}

/// A durable, ordered log of raw records. Async, and shared by reference (`&self`): a log is a
/// handle to a database (SQLite on a thread of its own, a PostgreSQL pool), so ingest, the
/// processor, the relay and the readiness probe each hold one without a runtime of their own.
#[async_trait::async_trait]
pub trait RawLog: Send + Sync {
    /// Identifies this log instance, so a consumer position can't be applied to a different log.
    fn log_id(&self) -> &str;
    /// Appends the batch and its cursor atomically; returns the last sequence number written, or
    /// `None` for an empty batch that only moved the cursor. Once called, the append runs to its
    /// end even if the caller's future is dropped (it is handed to the database's own thread or
    /// connection), so ingest treats it as done or failed, never as half-done.
    async fn append(&self, batch: AppendBatch<'_>) -> Result<Option<u64>, LogError>;
    /// Up to `limit` records with `seq > after`, in order.
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogRecord>, LogError>;
    /// As [`read_after`](Self::read_after), answering in `buffer`, the caller's previous batch:
    /// a backend that builds records on a thread of its own (SQLite) overwrites their strings
    /// there, so a reader that hands each batch back allocates nothing in steady state, and no
    /// record is freed on another thread than the one that allocated it (glibc's malloc frees
    /// across threads slowly; it cost the embedded pipeline about 5%).
    async fn read_after_into(
        &self,
        after: u64,
        limit: usize,
        buffer: Vec<LogRecord>,
    ) -> Result<Vec<LogRecord>, LogError> {
        drop(buffer);
        self.read_after(after, limit).await
    }
    /// The highest sequence number written so far (0 when empty).
    async fn last_seq(&self) -> Result<u64, LogError>;
    /// Whether the log answers and still holds what is written to it: readiness's probe.
    async fn ready(&self) -> Result<(), LogError> {
        self.last_seq().await.map(drop)
    }
    /// Charges `users` to the API budget `key` if they fit in its sliding `window` of `limit`
    /// users (or nothing is charged in it yet), and answers `None`; else charges nothing and
    /// answers how long until the oldest charge leaves the window. Atomic across every process
    /// sharing the log, and kept across restarts: a crash-looping `run` or a scheduler's
    /// `ingest --once` cannot start with a fresh budget. Times are wall-clock, as they must
    /// compare between processes.
    async fn spend_budget(
        &self,
        key: &str,
        users: u32,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, LogError>;
    /// The stored cursor of a source, if any.
    async fn cursor(&self, key: &str) -> Result<Option<IngestCursor>, LogError>;
    /// How far a named reader that keeps its position in the log has got (the Kafka relay:
    /// the outbox's "published up to"); 0 if it never saved one.
    async fn checkpoint(&self, name: &str) -> Result<u64, LogError>;
    async fn set_checkpoint(&self, name: &str, seq: u64) -> Result<(), LogError>;
}

/// The configured log, whichever backend: shared by every task of a process that uses it.
pub type Log = std::sync::Arc<dyn RawLog>;

/// Wall-clock microseconds since the epoch, for budget charges that processes compare.
pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// The budget rule, the same for every log backend: with `spent` users charged in the window
/// (the oldest charge at `oldest`, µs), `users` more fit if they stay within `limit` or nothing is
/// charged yet (`None`: charge them); else how long until the oldest charge leaves the window.
pub(crate) fn budget_wait(
    spent: i64,
    oldest: Option<i64>,
    users: u32,
    limit: u32,
    now: i64,
    window: std::time::Duration,
) -> Option<std::time::Duration> {
    // Both backends decide here, so the budget's gauge is told here too.
    let fits = oldest.is_none() || spent + i64::from(users) <= i64::from(limit);
    let after = if fits {
        spent + i64::from(users)
    } else {
        spent
    };
    crate::telemetry::events::InternalEvent::emit(crate::telemetry::events::ApiBudgetRemaining {
        users: (i64::from(limit) - after).max(0) as u64,
    });
    let oldest = oldest?;
    if fits {
        return None;
    }
    let left = oldest + window.as_micros() as i64 - now;
    Some(std::time::Duration::from_micros(left.max(1) as u64))
}
