//! The raw log on SQLite in WAL mode: one writer, any number of concurrent readers.
//!
//! SQLite is a blocking library, so each opened log runs its connection on a thread of its own
//! (`tokio-rusqlite`), and async callers hand it closures: nothing blocks a runtime worker, and a
//! statement runs to its end even when the caller stops waiting for it.

use super::{AppendBatch, IngestCursor, LogError, LogRecord, RawLog};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- AUTOINCREMENT: a sequence number is never reused, even if the tail is ever deleted, so a stored
-- consumer position can never point at a different record.
CREATE TABLE IF NOT EXISTS raw_records (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    fetched_at INTEGER NOT NULL,
    record     TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
);
-- The API budget's charges, shared by every process using this log (see `spend_budget`).
CREATE TABLE IF NOT EXISTS api_budget (
    key      TEXT    NOT NULL,
    spent_at INTEGER NOT NULL, -- wall-clock microseconds
    users    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS api_budget_by_key ON api_budget (key, spent_at);
CREATE TABLE IF NOT EXISTS ingest_cursors (
    source_key TEXT    PRIMARY KEY,
    seed       TEXT    NOT NULL,
    page_size  INTEGER NOT NULL,
    next_page  INTEGER NOT NULL
);
";

/// A raw log stored in one SQLite file.
pub struct SqliteLog {
    conn: tokio_rusqlite::Connection,
    log_id: String,
    file: crate::sqlite::FileId,
}

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> LogError {
    move |source| LogError::Sqlite { op, source }
}

impl SqliteLog {
    /// Opens (creating if needed) the log at `path`.
    ///
    /// `synchronous = FULL`: the log is the only copy of fetched records, and a processor's stored
    /// position may already point past an append that a power cut would undo under `NORMAL`; then
    /// new records would reuse those sequence numbers and be skipped. With `FULL`, a committed
    /// append survives power loss.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let mut conn = crate::sqlite::open(path).map_err(sql("open"))?;
        // Records are ~1 KB; 16 KB pages hold a dozen each and cut page reads and writes by
        // four (only takes effect when the file is created).
        conn.pragma_update(None, "page_size", 16_384)
            .map_err(sql("set page size"))?;
        crate::sqlite::enable_wal(&conn).map_err(sql("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("set synchronous"))?;
        // The log id is given in the schema's transaction: of processes opening a fresh log at
        // once, one creates it, id and all, and the others read that id.
        let log_id = crate::sqlite::upgrade_schema(&mut conn, SCHEMA_VERSION, |tx, _| {
            tx.execute_batch(SCHEMA)?;
            tx.execute(
                "INSERT OR IGNORE INTO log_meta (key, value) VALUES ('log_id', ?1)",
                [uuid::Uuid::new_v4().to_string()],
            )?;
            tx.query_row("SELECT value FROM log_meta WHERE key = 'log_id'", [], |r| {
                r.get(0)
            })
        })
        .map_err(sql("upgrade schema"))?
        .map_err(|newer| LogError::Incompatible {
            path: path.display().to_string(),
            reason: newer.to_string(),
        })?;
        let file = crate::sqlite::FileId::of(path).map_err(LogError::FileGone)?;
        Ok(Self {
            conn: conn.into(),
            log_id,
            file,
        })
    }

    /// Runs `op` on the connection's thread.
    async fn with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        self.conn.call_unwrap(op).await
    }
}

#[async_trait::async_trait]
impl RawLog for SqliteLog {
    fn log_id(&self) -> &str {
        &self.log_id
    }

    async fn ready(&self) -> Result<(), LogError> {
        self.file.check().map_err(LogError::FileGone)?;
        self.last_seq().await.map(drop)
    }

    async fn append(&self, batch: AppendBatch<'_>) -> Result<Option<u64>, LogError> {
        let (run_id, source) = (batch.run_id.to_owned(), batch.source.to_owned());
        let (fetched_at, records) = (batch.fetched_at_micros, batch.records);
        let cursor = batch.cursor.map(|(key, cursor)| (key.to_owned(), cursor));
        // The records come back to be freed here, on the thread that built them: freeing a
        // page's thousands of strings on the connection's thread contends with the allocating
        // thread in glibc's malloc.
        let (appended, records) = self
            .conn
            .call_unwrap(move |conn| {
                let appended = append(conn, &run_id, &source, fetched_at, &records, cursor);
                (appended, records)
            })
            .await;
        drop(records);
        appended
    }

    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        self.with(move |conn| read_after(conn, after, limit, Vec::new()))
            .await
    }

    async fn read_after_into(
        &self,
        after: u64,
        limit: usize,
        buffer: Vec<LogRecord>,
    ) -> Result<Vec<LogRecord>, LogError> {
        self.with(move |conn| read_after(conn, after, limit, buffer))
            .await
    }

    async fn last_seq(&self) -> Result<u64, LogError> {
        self.with(|conn| {
            conn.query_row("SELECT coalesce(max(seq), 0) FROM raw_records", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sql("read last sequence number"))
        })
        .await
    }

    async fn checkpoint(&self, name: &str) -> Result<u64, LogError> {
        let name = name.to_owned();
        self.with(move |conn| {
            conn.query_row(
                "SELECT position FROM checkpoints WHERE name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|p| p.unwrap_or(0) as u64)
            .map_err(sql("read checkpoint"))
        })
        .await
    }

    async fn spend_budget(
        &self,
        key: &str,
        users: u32,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, LogError> {
        let key = key.to_owned();
        self.with(move |conn| spend_budget(conn, &key, users, limit, window))
            .await
    }

    async fn set_checkpoint(&self, name: &str, seq: u64) -> Result<(), LogError> {
        let name = name.to_owned();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO checkpoints (name, position) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                params![name, seq as i64],
            )
            .map(|_| ())
            .map_err(sql("write checkpoint"))
        })
        .await
    }

    async fn cursor(&self, key: &str) -> Result<Option<IngestCursor>, LogError> {
        let key = key.to_owned();
        self.with(move |conn| {
            conn.query_row(
                "SELECT seed, page_size, next_page FROM ingest_cursors WHERE source_key = ?1",
                [key],
                |r| {
                    Ok(IngestCursor {
                        seed: r.get(0)?,
                        page_size: r.get(1)?,
                        next_page: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
            .map_err(sql("read cursor"))
        })
        .await
    }
}

/// The records and the cursor that follows them, in one transaction.
fn append(
    conn: &mut Connection,
    run_id: &str,
    source: &str,
    fetched_at_micros: i64,
    records: &[String],
    cursor: Option<(String, IngestCursor)>,
) -> Result<Option<u64>, LogError> {
    {
        let tx = conn.transaction().map_err(sql("begin append"))?;
        let mut last = None;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO raw_records (run_id, source, fetched_at, record) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql("prepare append"))?;
            for record in records {
                insert
                    .execute(params![run_id, source, fetched_at_micros, record])
                    .map_err(sql("append record"))?;
                last = Some(tx.last_insert_rowid() as u64);
            }
            if let Some((key, cursor)) = &cursor {
                tx.prepare_cached(
                    "INSERT INTO ingest_cursors (source_key, seed, page_size, next_page) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (source_key) DO UPDATE SET seed = excluded.seed,
                         page_size = excluded.page_size, next_page = excluded.next_page",
                )
                .map_err(sql("prepare cursor update"))?
                .execute(params![key, cursor.seed, cursor.page_size, cursor.next_page as i64])
                .map_err(sql("update cursor"))?;
            }
        }
        tx.commit().map_err(sql("commit append"))?;
        Ok(last)
    }
}

/// Up to `limit` records after `after`, in order.
/// Reads into `buffer`, overwriting its records in place (their strings keep their capacity)
/// and adding or dropping records to fit.
fn read_after(
    conn: &mut Connection,
    after: u64,
    limit: usize,
    mut buffer: Vec<LogRecord>,
) -> Result<Vec<LogRecord>, LogError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, fetched_at, record FROM raw_records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(sql("prepare read"))?;
    let mut rows = stmt
        .query(params![after as i64, limit as i64])
        .map_err(sql("read records"))?;
    let mut count = 0;
    while let Some(row) = rows.next().map_err(sql("read records"))? {
        let seq = row.get::<_, i64>(0).map_err(sql("read records"))? as u64;
        let fetched_at_micros = row.get(1).map_err(sql("read records"))?;
        let text = row.get_ref(2).map_err(sql("read records"))?;
        let text = text.as_str().map_err(|e| LogError::Sqlite {
            op: "read records",
            source: rusqlite::Error::FromSqlConversionFailure(2, text.data_type(), Box::new(e)),
        })?;
        match buffer.get_mut(count) {
            Some(record) => {
                record.seq = seq;
                record.fetched_at_micros = fetched_at_micros;
                record.record.clear();
                record.record.push_str(text);
            }
            None => buffer.push(LogRecord {
                seq,
                fetched_at_micros,
                record: text.to_owned(),
            }),
        }
        count += 1;
    }
    buffer.truncate(count);
    Ok(buffer)
}

/// Charges the budget if it fits, atomically across processes (see [`RawLog::spend_budget`]).
fn spend_budget(
    conn: &mut Connection,
    key: &str,
    users: u32,
    limit: u32,
    window: std::time::Duration,
) -> Result<Option<std::time::Duration>, LogError> {
    // IMMEDIATE: the write lock from the start, so two processes cannot both read the
    // window's sum and both decide they fit.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql("begin budget charge"))?;
    let now = super::now_micros();
    tx.execute(
        "DELETE FROM api_budget WHERE key = ?1 AND spent_at <= ?2",
        params![key, now - window.as_micros() as i64],
    )
    .map_err(sql("expire budget charges"))?;
    let (spent, oldest): (i64, Option<i64>) = tx
        .query_row(
            "SELECT coalesce(sum(users), 0), min(spent_at) FROM api_budget WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql("read budget"))?;
    let wait = super::budget_wait(spent, oldest, users, limit, now, window);
    if wait.is_none() {
        tx.execute(
            "INSERT INTO api_budget (key, spent_at, users) VALUES (?1, ?2, ?3)",
            params![key, now, users],
        )
        .map_err(sql("charge budget"))?;
    }
    tx.commit().map_err(sql("commit budget charge"))?;
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch<'a>(records: &[&str], cursor: Option<(&'a str, IngestCursor)>) -> AppendBatch<'a> {
        AppendBatch {
            run_id: "run",
            source: "test",
            fetched_at_micros: 7,
            records: records.iter().map(|s| s.to_string()).collect(),
            cursor,
        }
    }

    #[tokio::test]
    async fn appends_in_order_and_reads_after_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteLog::open(&dir.path().join("log.db")).unwrap();
        assert_eq!(log.append(batch(&["a", "b"], None)).await.unwrap(), Some(2));
        assert_eq!(log.append(batch(&["c"], None)).await.unwrap(), Some(3));
        let read: Vec<_> = log
            .read_after(1, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.record)
            .collect();
        assert_eq!(read, ["b", "c"]);
        assert_eq!(log.read_after(1, 1).await.unwrap().len(), 1);
        assert_eq!(log.last_seq().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_reused_buffer_holds_exactly_the_new_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteLog::open(&dir.path().join("log.db")).unwrap();
        log.append(batch(&["a long first record", "b", "c"], None))
            .await
            .unwrap();
        let texts = |records: &[LogRecord]| -> Vec<(u64, String)> {
            records.iter().map(|r| (r.seq, r.record.clone())).collect()
        };
        let first = log.read_after_into(0, 2, Vec::new()).await.unwrap();
        assert_eq!(
            texts(&first),
            [(1, "a long first record".into()), (2, "b".into())]
        );
        // Fewer records than the buffer holds: the rest are dropped, none is stale.
        let second = log.read_after_into(2, 10, first).await.unwrap();
        assert_eq!(texts(&second), [(3, "c".into())]);
        // More than it holds: it grows.
        let third = log.read_after_into(0, 10, second).await.unwrap();
        assert_eq!(texts(&third).len(), 3);
        assert_eq!(third[2].record, "c");
        assert!(log.read_after_into(3, 10, third).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn cursor_moves_with_its_records_and_log_id_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let cursor = IngestCursor {
            seed: "s".into(),
            page_size: 2,
            next_page: 5,
        };
        let id = {
            let log = SqliteLog::open(&path).unwrap();
            log.append(batch(&["a"], Some(("gen", cursor.clone()))))
                .await
                .unwrap();
            log.log_id().to_owned()
        };
        let log = SqliteLog::open(&path).unwrap();
        assert_eq!(log.log_id(), id);
        assert_eq!(log.cursor("gen").await.unwrap(), Some(cursor));
        assert_eq!(log.cursor("other").await.unwrap(), None);
    }
}
