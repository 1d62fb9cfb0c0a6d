//! Read access to stored users, the same for every store so `userstream query` looks the same.

use super::SinkError;
use crate::model::UserRow;
use serde::Serialize;
use uuid::Uuid;

/// A filter over stored users; empty fields match everything.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// Country name as the API writes it ("Germany"); matched case-insensitively against the
    /// address's last component, since the row keeps the country only there.
    pub country: Option<String>,
    pub gender: Option<String>,
    pub limit: usize,
}

/// One dead-letter row as shown to users. `(log_id, log_seq)` is its key: where the record came
/// from (a log and its sequence number, or `kafka:<topic>:<partition>` and an offset).
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterEntry {
    pub log_id: String,
    pub log_seq: u64,
    pub reason: String,
    pub failed_at: String,
    pub record: String,
}

/// Queries every store answers.
#[async_trait::async_trait]
pub trait UserQuery: Send + Sync {
    async fn count(&self) -> Result<u64, SinkError>;
    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, SinkError>;
    /// Whether the store answers and still holds what is written to it: readiness's probe. A
    /// primary-key read is one round trip on every store, whatever its size.
    async fn ready(&self) -> Result<(), SinkError> {
        self.get(Uuid::nil()).await.map(drop)
    }
    /// The `limit` most recently stored users, newest first.
    async fn latest(&self, limit: usize) -> Result<Vec<UserRow>, SinkError>;
    async fn filter(&self, filter: &UserFilter) -> Result<Vec<UserRow>, SinkError>;
    async fn dead_letter_count(&self) -> Result<u64, SinkError>;
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, SinkError>;
    /// Every dead letter, in no particular order, handed over one at a time: a store pages
    /// through them rather than loading the table.
    async fn scan_dead_letters(
        &self,
        each: &mut (dyn FnMut(DeadLetterEntry) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError>;
    /// Every stored user id, in no particular order, paging as above.
    async fn scan_ids(
        &self,
        each: &mut (dyn FnMut(Uuid) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError>;
}
