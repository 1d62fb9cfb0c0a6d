//! The log the configuration chose, behind one type so the pipeline has a single code path.

use super::{AppendBatch, IngestCursor, LogError, LogRecord, PostgresLog, RawLog, SqliteLog};

pub enum AnyLog {
    Sqlite(SqliteLog),
    Postgres(Box<PostgresLog>),
}

impl AnyLog {
    fn inner(&mut self) -> &mut dyn RawLog {
        match self {
            AnyLog::Sqlite(log) => log,
            AnyLog::Postgres(log) => log.as_mut(),
        }
    }
}

impl RawLog for AnyLog {
    fn log_id(&self) -> &str {
        match self {
            AnyLog::Sqlite(log) => log.log_id(),
            AnyLog::Postgres(log) => log.log_id(),
        }
    }

    fn append(&mut self, batch: AppendBatch<'_>) -> Result<Option<u64>, LogError> {
        self.inner().append(batch)
    }

    fn read_after(&mut self, after: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        self.inner().read_after(after, limit)
    }

    fn last_seq(&mut self) -> Result<u64, LogError> {
        self.inner().last_seq()
    }

    fn cursor(&mut self, key: &str) -> Result<Option<IngestCursor>, LogError> {
        self.inner().cursor(key)
    }

    fn checkpoint(&mut self, name: &str) -> Result<u64, LogError> {
        self.inner().checkpoint(name)
    }

    fn spend_budget(
        &mut self,
        key: &str,
        users: u32,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, LogError> {
        self.inner().spend_budget(key, users, limit, window)
    }

    fn set_checkpoint(&mut self, name: &str, seq: u64) -> Result<(), LogError> {
        self.inner().set_checkpoint(name, seq)
    }
}
