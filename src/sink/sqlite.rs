//! The embedded store: `created_users`, `dead_letters` and consumer positions in one SQLite file.
//!
//! As the SQLite log, it runs its connection on a thread of its own (`tokio-rusqlite`): async
//! callers hand it closures, and a commit runs to its end even when its caller stops waiting.

use super::query::{DeadLetterEntry, UserFilter, UserQuery};
use super::{Commit, Sink, SinkError};
use crate::model::UserRow;
use crate::model::row::format_timestamp;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

const SCHEMA_VERSION: i64 = 2;

/// The table mirrors DATA.md's Cassandra table. `id` is the UUID's 16 bytes, as Cassandra's `uuid`
/// type stores it: random ids scatter index inserts over the whole index, and at 16 bytes the index
/// of millions of users stays inside the page cache (as text it was twice the size and spilled).
/// "Latest N" is by `timestamp` (when the user was fetched), through its index.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS created_users (
    id              BLOB PRIMARY KEY CHECK (length(id) = 16),
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    gender          TEXT NOT NULL,
    address         TEXT NOT NULL,
    post_code       TEXT NOT NULL,
    email           TEXT NOT NULL,
    username        TEXT NOT NULL,
    dob             TEXT NOT NULL,
    registered_date TEXT NOT NULL,
    phone           TEXT NOT NULL,
    picture         TEXT NOT NULL,
    timestamp       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS created_users_timestamp ON created_users (timestamp);
-- Keyed by log position: re-processing a batch rewrites the same dead letters.
CREATE TABLE IF NOT EXISTS dead_letters (
    log_id    TEXT    NOT NULL,
    log_seq   INTEGER NOT NULL,
    reason    TEXT    NOT NULL,
    record    TEXT    NOT NULL,
    failed_at TEXT    NOT NULL,
    PRIMARY KEY (log_id, log_seq)
);
CREATE TABLE IF NOT EXISTS consumer_positions (
    log_id     TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
";

/// Version 1 stores had no `timestamp`: their rows get the epoch, which sorts them oldest
/// (`SCHEMA`, run next, indexes the column).
const MIGRATE_1_TO_2: &str = "
ALTER TABLE created_users ADD COLUMN timestamp TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000Z';";

/// Last write wins, as in Cassandra: the same id written twice leaves one row.
const UPSERT: &str = "
INSERT INTO created_users (id, first_name, last_name, gender, address, post_code, email, username,
                           dob, registered_date, phone, picture, timestamp)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
ON CONFLICT (id) DO UPDATE SET
    first_name = excluded.first_name, last_name = excluded.last_name, gender = excluded.gender,
    address = excluded.address, post_code = excluded.post_code, email = excluded.email,
    username = excluded.username, dob = excluded.dob, registered_date = excluded.registered_date,
    phone = excluded.phone, picture = excluded.picture, timestamp = excluded.timestamp";

const SELECT_USERS: &str = "SELECT id, first_name, last_name, gender, address, post_code, email, \
     username, dob, registered_date, phone, picture, timestamp FROM created_users";

/// The embedded store in one SQLite file.
pub struct SqliteStore {
    conn: tokio_rusqlite::Connection,
    file: crate::sqlite::FileId,
}

/// Rows per page of the id and dead-letter scans: what one call to the connection's thread
/// carries back.
const SCAN_PAGE: i64 = 10_000;

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> SinkError {
    move |source| SinkError::Sqlite { op, source }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    ///
    /// `synchronous = NORMAL` is enough here, unlike the log: a power cut can only roll the store
    /// back to an earlier commit, rows and position together, and the processor then re-reads the
    /// log from that position and rewrites the same rows.
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        let mut conn = crate::sqlite::open(path).map_err(sql("open"))?;
        crate::sqlite::enable_wal(&conn).map_err(sql("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("set synchronous"))?;
        // Upserts by random UUID touch index pages all over the file; with SQLite's default 2 MB
        // cache every batch re-reads them through the kernel. 16 MB ran the 1M-user bench as fast
        // as 64 MB did, at a third of the resident memory.
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(sql("set cache size"))?;
        // A batch dirties most index pages, so each commit appends them all to the WAL again;
        // checkpointing every 64 MB instead of every 4 MB copies each page back once per several
        // batches instead of once per batch.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)
            .map_err(sql("set checkpoint interval"))?;
        crate::sqlite::upgrade_schema(&mut conn, SCHEMA_VERSION, |tx, found| {
            if found == 1 {
                tx.execute_batch(MIGRATE_1_TO_2)?;
            }
            tx.execute_batch(SCHEMA)
        })
        .map_err(sql("upgrade schema"))?
        .map_err(|newer| SinkError::Incompatible {
            path: path.display().to_string(),
            reason: newer.to_string(),
        })?;
        let file = crate::sqlite::FileId::of(path).map_err(SinkError::FileGone)?;
        Ok(Self {
            conn: conn.into(),
            file,
        })
    }

    /// Runs `op` on the connection's thread.
    async fn with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, SinkError> + Send + 'static,
    ) -> Result<T, SinkError> {
        self.conn.call_unwrap(op).await
    }

    async fn users(
        &self,
        clause: &'static str,
        params: impl rusqlite::Params + Send + 'static,
    ) -> Result<Vec<UserRow>, SinkError> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("{SELECT_USERS} {clause}"))
                .map_err(sql("prepare user query"))?;
            let rows = stmt
                .query_map(params, read_row)
                .map_err(sql("query users"))?;
            rows.collect::<Result<_, _>>().map_err(sql("read user"))
        })
        .await
    }
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    fn parse<T, E: std::error::Error + Send + Sync + 'static>(
        idx: usize,
        res: Result<T, E>,
    ) -> rusqlite::Result<T> {
        res.map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
        })
    }
    let ts = |idx: usize| -> rusqlite::Result<DateTime<Utc>> {
        let text: String = r.get(idx)?;
        parse(
            idx,
            DateTime::parse_from_rfc3339(&text).map(|t| t.with_timezone(&Utc)),
        )
    };
    Ok(UserRow {
        id: parse(0, Uuid::from_slice(&r.get::<_, Vec<u8>>(0)?))?,
        first_name: r.get(1)?,
        last_name: r.get(2)?,
        gender: r.get(3)?,
        address: r.get(4)?,
        post_code: r.get(5)?,
        email: r.get(6)?,
        username: r.get(7)?,
        dob: ts(8)?,
        registered_date: ts(9)?,
        phone: r.get(10)?,
        picture: r.get(11)?,
        timestamp: ts(12)?,
    })
}

#[async_trait::async_trait]
impl Sink for SqliteStore {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), SinkError> {
        // The batch crosses to the connection's thread: the rows as a second handle (the
        // caller's, dropped last, frees them), the few dead letters as a copy.
        let rows = Arc::clone(&commit.rows);
        let dead_letters = commit.dead_letters.to_vec();
        let (log_id, position) = (commit.log_id.to_owned(), commit.position);
        self.with(move |conn| write_batch(conn, &rows, &dead_letters, &log_id, position))
            .await
    }

    async fn position(&self, log_id: &str) -> Result<Option<u64>, SinkError> {
        let log_id = log_id.to_owned();
        self.with(move |conn| {
            conn.query_row(
                "SELECT position FROM consumer_positions WHERE log_id = ?1",
                [log_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|p| p.map(|p| p as u64))
            .map_err(sql("read position"))
        })
        .await
    }

    async fn remove_dead_letters(&self, keys: &[(String, u64)]) -> Result<(), SinkError> {
        let keys = keys.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(sql("begin removal"))?;
            {
                let mut delete = tx
                    .prepare_cached("DELETE FROM dead_letters WHERE log_id = ?1 AND log_seq = ?2")
                    .map_err(sql("prepare dead letter removal"))?;
                for (log_id, seq) in &keys {
                    delete
                        .execute(params![log_id, *seq as i64])
                        .map_err(sql("remove dead letter"))?;
                }
            }
            tx.commit().map_err(sql("commit removal"))
        })
        .await
    }
}

/// Rows, dead letters and the position in one transaction: all of a batch or none of it.
fn write_batch(
    conn: &mut Connection,
    rows: &[UserRow],
    dead_letters: &[super::DeadLetter],
    log_id: &str,
    position: Option<u64>,
) -> Result<(), SinkError> {
    let now = format_timestamp(&Utc::now());
    let tx = conn.transaction().map_err(sql("begin batch"))?;
    {
        let mut upsert = tx.prepare_cached(UPSERT).map_err(sql("prepare upsert"))?;
        for row in rows {
            upsert
                .execute(params![
                    row.id.as_bytes(),
                    row.first_name,
                    row.last_name,
                    row.gender,
                    row.address,
                    row.post_code,
                    row.email,
                    row.username,
                    format_timestamp(&row.dob),
                    format_timestamp(&row.registered_date),
                    row.phone,
                    row.picture,
                    format_timestamp(&row.timestamp),
                ])
                .map_err(sql("upsert user"))?;
        }
        let mut dead = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO dead_letters (log_id, log_seq, reason, record, failed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(sql("prepare dead letter"))?;
        for letter in dead_letters {
            dead.execute(params![
                log_id,
                letter.log_seq as i64,
                letter.reason,
                letter.record,
                now
            ])
            .map_err(sql("write dead letter"))?;
        }
        if let Some(position) = position {
            tx.prepare_cached(
                "INSERT INTO consumer_positions (log_id, position, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (log_id) DO UPDATE SET position = excluded.position,
                     updated_at = excluded.updated_at",
            )
            .map_err(sql("prepare position"))?
            .execute(params![log_id, position as i64, now])
            .map_err(sql("write position"))?;
        }
    }
    tx.commit().map_err(sql("commit batch"))
}

#[async_trait::async_trait]
impl UserQuery for SqliteStore {
    async fn ready(&self) -> Result<(), SinkError> {
        self.file.check().map_err(SinkError::FileGone)?;
        self.get(Uuid::nil()).await.map(drop)
    }

    async fn count(&self) -> Result<u64, SinkError> {
        self.with(|conn| {
            conn.query_row("SELECT count(*) FROM created_users", [], |r| r.get(0))
                .map_err(sql("count users"))
        })
        .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, SinkError> {
        Ok(self.users("WHERE id = ?1", [*id.as_bytes()]).await?.pop())
    }

    async fn latest(&self, limit: usize) -> Result<Vec<UserRow>, SinkError> {
        self.users("ORDER BY timestamp DESC, id LIMIT ?1", [limit as i64])
            .await
    }

    async fn filter(&self, filter: &UserFilter) -> Result<Vec<UserRow>, SinkError> {
        // The country is the address's last ", "-separated component.
        let country = filter.country.as_ref().map(|c| format!("%, {}", c.trim()));
        self.users(
            "WHERE (?1 IS NULL OR address LIKE ?1) AND (?2 IS NULL OR lower(gender) = lower(?2))
             ORDER BY timestamp DESC, id LIMIT ?3",
            (country, filter.gender.clone(), filter.limit as i64),
        )
        .await
    }

    async fn dead_letter_count(&self) -> Result<u64, SinkError> {
        self.with(|conn| {
            conn.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))
                .map_err(sql("count dead letters"))
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, SinkError> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT log_id, log_seq, reason, failed_at, record FROM dead_letters
                     ORDER BY failed_at DESC, log_seq DESC LIMIT ?1",
                )
                .map_err(sql("prepare dead letter query"))?;
            let rows = stmt
                .query_map([limit as i64], dead_letter_entry)
                .map_err(sql("query dead letters"))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql("read dead letter"))
        })
        .await
    }

    async fn scan_dead_letters(
        &self,
        each: &mut (dyn FnMut(DeadLetterEntry) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError> {
        // By pages in key order, each page one call to the connection's thread.
        let mut after: (String, i64) = (String::new(), -1);
        loop {
            let from = after.clone();
            let page: Vec<DeadLetterEntry> = self
                .with(move |conn| {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT log_id, log_seq, reason, failed_at, record FROM dead_letters
                             WHERE (log_id, log_seq) > (?1, ?2) ORDER BY log_id, log_seq LIMIT ?3",
                        )
                        .map_err(sql("prepare dead letter scan"))?;
                    let rows = stmt
                        .query_map(params![from.0, from.1, SCAN_PAGE], dead_letter_entry)
                        .map_err(sql("scan dead letters"))?;
                    rows.collect::<Result<_, _>>()
                        .map_err(sql("read dead letter"))
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = (last.log_id.clone(), last.log_seq as i64);
            for letter in page {
                each(letter)?;
            }
        }
    }

    async fn scan_ids(
        &self,
        each: &mut (dyn FnMut(Uuid) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError> {
        let mut after: Vec<u8> = Vec::new(); // sorts before every 16-byte id
        loop {
            let from = after.clone();
            let page: Vec<[u8; 16]> = self
                .with(move |conn| {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT id FROM created_users WHERE id > ?1 ORDER BY id LIMIT ?2",
                        )
                        .map_err(sql("prepare id scan"))?;
                    let rows = stmt
                        .query_map(params![from, SCAN_PAGE], |r| r.get(0))
                        .map_err(sql("scan ids"))?;
                    rows.collect::<Result<_, _>>().map_err(sql("read id"))
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.to_vec();
            for bytes in page {
                each(Uuid::from_bytes(bytes))?;
            }
        }
    }
}

fn dead_letter_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetterEntry> {
    Ok(DeadLetterEntry {
        log_id: r.get(0)?,
        log_seq: r.get::<_, i64>(1)? as u64,
        reason: r.get(2)?,
        failed_at: r.get(3)?,
        record: r.get(4)?,
    })
}

#[cfg(test)]
mod tests;
