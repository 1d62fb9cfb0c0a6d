//! The store the configuration chose, behind one type: `query`, `dlq` and the processor never
//! see which one it is, so switching stores is a configuration change only.

use super::query::{DeadLetterEntry, UserFilter, UserQuery};
use super::{CassandraStore, Commit, PostgresStore, Sink, SinkError, SqliteStore};
use crate::model::UserRow;
use uuid::Uuid;

pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(Box<PostgresStore>),
    Cassandra(Box<CassandraStore>),
}

impl AnyStore {
    fn sink(&mut self) -> &mut dyn Sink {
        match self {
            AnyStore::Sqlite(s) => s,
            AnyStore::Postgres(s) => s.as_mut(),
            AnyStore::Cassandra(s) => s.as_mut(),
        }
    }

    fn query(&self) -> &dyn UserQuery {
        match self {
            AnyStore::Sqlite(s) => s,
            AnyStore::Postgres(s) => s.as_ref(),
            AnyStore::Cassandra(s) => s.as_ref(),
        }
    }
}

impl Sink for AnyStore {
    fn commit(&mut self, commit: Commit<'_>) -> Result<(), SinkError> {
        self.sink().commit(commit)
    }

    fn position(&mut self, log_id: &str) -> Result<Option<u64>, SinkError> {
        self.sink().position(log_id)
    }

    fn remove_dead_letters(&mut self, keys: &[(String, u64)]) -> Result<(), SinkError> {
        self.sink().remove_dead_letters(keys)
    }
}

impl UserQuery for AnyStore {
    fn count(&self) -> Result<u64, SinkError> {
        self.query().count()
    }
    fn get(&self, id: Uuid) -> Result<Option<UserRow>, SinkError> {
        self.query().get(id)
    }
    fn latest(&self, limit: usize) -> Result<Vec<UserRow>, SinkError> {
        self.query().latest(limit)
    }
    fn filter(&self, filter: &UserFilter) -> Result<Vec<UserRow>, SinkError> {
        self.query().filter(filter)
    }
    fn dead_letter_count(&self) -> Result<u64, SinkError> {
        self.query().dead_letter_count()
    }
    fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, SinkError> {
        self.query().dead_letters(limit)
    }
    fn scan_dead_letters(
        &self,
        each: &mut dyn FnMut(DeadLetterEntry) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        self.query().scan_dead_letters(each)
    }
    fn scan_ids(
        &self,
        each: &mut dyn FnMut(Uuid) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        self.query().scan_ids(each)
    }
}
