//! The raw log in PostgreSQL (`[log] postgres = ...`): the same contract as the SQLite log,
//! for deployments where raw records must live in a shared, backed-up database.
//!
//! Ordering: a `BIGSERIAL` alone is not enough, since two concurrent appenders can commit their
//! sequence numbers out of order and a reader could move past a number that is not visible yet.
//! Every append therefore takes a transaction-scoped advisory lock first, so appends (and so
//! sequence numbers) commit strictly in order, whatever number of ingest processes share the log.

use super::{AppendBatch, IngestCursor, LogError, LogRecord, RawLog};
use crate::postgres::{Migration, PgError, Postgres, PostgresOptions, migrate};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
        CREATE TABLE raw_records (
            seq        BIGSERIAL PRIMARY KEY,
            run_id     TEXT   NOT NULL,
            source     TEXT   NOT NULL,
            fetched_at BIGINT NOT NULL,
            record     TEXT   NOT NULL
        );
        CREATE TABLE ingest_cursors (
            source_key TEXT    PRIMARY KEY,
            seed       TEXT    NOT NULL,
            page_size  INTEGER NOT NULL,
            next_page  BIGINT  NOT NULL
        );
        CREATE TABLE log_meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );",
    },
    Migration {
        version: 2,
        sql: "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position BIGINT NOT NULL);",
    },
    Migration {
        version: 3,
        sql: "CREATE TABLE api_budget (
            key      TEXT    NOT NULL,
            spent_at BIGINT  NOT NULL,
            users    INTEGER NOT NULL
        );
        CREATE INDEX api_budget_by_key ON api_budget (key, spent_at);",
    },
];

/// Arbitrary constant naming the ingest lock ("useringe").
const INGEST_LOCK: i64 = 0x7573_6572_696e_6765;

/// Held while this process ingests into a PostgreSQL log: the log's session advisory lock, on a
/// connection of its own kept checked out. It ends with the connection, so a process that dies,
/// even by kill -9, lets go when the server notices the connection gone.
pub struct PostgresIngestLock {
    // Dropped first: the connection goes back to its one-connection pool, which is dropped next
    // and closes it, releasing the lock.
    _client: deadpool_postgres::Object,
    _pg: Postgres,
}

impl PostgresIngestLock {
    /// Takes the lock, or answers `None` when another process holds it.
    pub async fn try_acquire(
        url: &str,
        options: &PostgresOptions,
    ) -> Result<Option<Self>, LogError> {
        let options = PostgresOptions {
            pool_size: Some(1),
            ..options.clone()
        };
        let pg = Postgres::connect(url, &options).await?;
        let client = async {
            let client = pg.pool().get().await?;
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&INGEST_LOCK])
                .await
                .map_err(PgError::op("take ingest lock"))?;
            Ok::<_, PgError>(row.get::<_, bool>(0).then_some(client))
        }
        .await?;
        Ok(client.map(|client| Self {
            _client: client,
            _pg: pg,
        }))
    }
}

/// Arbitrary constant naming the budget lock ("userbudg").
const BUDGET_LOCK: i64 = 0x7573_6572_6275_6467;

/// Arbitrary constant naming the append lock ("userappe").
const APPEND_LOCK: i64 = 0x7573_6572_6170_7065;

pub struct PostgresLog {
    pg: Postgres,
    log_id: String,
}

impl PostgresLog {
    pub async fn open(url: &str, options: &PostgresOptions) -> Result<Self, LogError> {
        let pg = Postgres::connect(url, options).await?;
        migrate(&pg, "log", MIGRATIONS).await?;
        let log_id = async {
            let client = pg.pool().get().await?;
            let fresh = uuid::Uuid::new_v4().to_string();
            client
                .execute(
                    "INSERT INTO log_meta (key, value) VALUES ('log_id', $1) ON CONFLICT DO NOTHING",
                    &[&fresh],
                )
                .await
                .map_err(PgError::op("store log id"))?;
            let row = client
                .query_one("SELECT value FROM log_meta WHERE key = 'log_id'", &[])
                .await
                .map_err(PgError::op("read log id"))?;
            Ok::<String, PgError>(row.get(0))
        }.await?;
        Ok(Self { pg, log_id })
    }
}

#[async_trait::async_trait]
impl RawLog for PostgresLog {
    fn log_id(&self) -> &str {
        &self.log_id
    }

    async fn append(&self, batch: AppendBatch<'_>) -> Result<Option<u64>, LogError> {
        // On a task of its own: a caller that stops waiting (ingest cancelled) cannot cut it
        // between the server's commit and our knowing of it.
        let pool = self.pg.pool().clone();
        let (run_id, source) = (batch.run_id.to_owned(), batch.source.to_owned());
        let (fetched_at_micros, records) = (batch.fetched_at_micros, batch.records);
        let cursor = batch.cursor.map(|(key, cursor)| (key.to_owned(), cursor));
        let append = tokio::spawn(async move {
            let mut client = pool.get().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::op("begin append"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
                .await
                .map_err(PgError::op("lock log"))?;
            // One statement for the whole page: unnest keeps the array order for the sequence.
            let row = tx
                .query_one(
                    "WITH appended AS (
                         INSERT INTO raw_records (run_id, source, fetched_at, record)
                         SELECT $1, $2, $3, r FROM unnest($4::text[]) WITH ORDINALITY AS t(r, i) ORDER BY i
                         RETURNING seq)
                     SELECT max(seq) FROM appended",
                    &[&run_id, &source, &fetched_at_micros, &records],
                )
                .await
                .map_err(PgError::op("append records"))?;
            let last: Option<i64> = row.get(0);
            if let Some((key, cursor)) = &cursor {
                tx.execute(
                    "INSERT INTO ingest_cursors (source_key, seed, page_size, next_page) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (source_key) DO UPDATE SET seed = excluded.seed,
                         page_size = excluded.page_size, next_page = excluded.next_page",
                    &[key, &cursor.seed, &(cursor.page_size as i32), &(cursor.next_page as i64)],
                )
                .await
                .map_err(PgError::op("update cursor"))?;
            }
            tx.commit().await.map_err(PgError::op("commit append"))?;
            Ok::<_, PgError>(last.map(|s| s as u64))
        });
        Ok(append.await.expect("the append task does not panic")?)
    }

    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogRecord>, LogError> {
        let rows = async {
            let client = self.pg.pool().get().await?;
            client
                .query(
                    "SELECT seq, fetched_at, record FROM raw_records WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&(after as i64), &(limit as i64)],
                )
                .await
                .map_err(PgError::op("read records"))
        }.await?;
        Ok(rows
            .iter()
            .map(|r| LogRecord {
                seq: r.get::<_, i64>(0) as u64,
                fetched_at_micros: r.get(1),
                record: r.get(2),
            })
            .collect())
    }

    async fn last_seq(&self) -> Result<u64, LogError> {
        let row = async {
            let client = self.pg.pool().get().await?;
            client
                .query_one("SELECT coalesce(max(seq), 0) FROM raw_records", &[])
                .await
                .map_err(PgError::op("read last sequence number"))
        }
        .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn checkpoint(&self, name: &str) -> Result<u64, LogError> {
        let row = async {
            let client = self.pg.pool().get().await?;
            client
                .query_opt("SELECT position FROM checkpoints WHERE name = $1", &[&name])
                .await
                .map_err(PgError::op("read checkpoint"))
        }
        .await?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn spend_budget(
        &self,
        key: &str,
        users: u32,
        limit: u32,
        window: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, LogError> {
        let wait = async {
            let mut client = self.pg.pool().get().await?;
            let tx = client
                .transaction()
                .await
                .map_err(PgError::op("begin budget charge"))?;
            // Serialises charges across processes, as the append lock serialises appends.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&BUDGET_LOCK])
                .await
                .map_err(PgError::op("lock budget"))?;
            let now = super::now_micros();
            tx.execute(
                "DELETE FROM api_budget WHERE key = $1 AND spent_at <= $2",
                &[&key, &(now - window.as_micros() as i64)],
            )
            .await
            .map_err(PgError::op("expire budget charges"))?;
            let row = tx
                .query_one(
                    "SELECT coalesce(sum(users), 0)::BIGINT, min(spent_at) FROM api_budget WHERE key = $1",
                    &[&key],
                )
                .await
                .map_err(PgError::op("read budget"))?;
            let (spent, oldest): (i64, Option<i64>) = (row.get(0), row.get(1));
            let wait = super::budget_wait(spent, oldest, users, limit, now, window);
            if wait.is_none() {
                tx.execute(
                    "INSERT INTO api_budget (key, spent_at, users) VALUES ($1, $2, $3)",
                    &[&key, &now, &(users as i32)],
                )
                .await
                .map_err(PgError::op("charge budget"))?;
            }
            tx.commit()
                .await
                .map_err(PgError::op("commit budget charge"))?;
            Ok::<_, PgError>(wait)
        }.await?;
        Ok(wait)
    }

    async fn set_checkpoint(&self, name: &str, seq: u64) -> Result<(), LogError> {
        async {
            let client = self.pg.pool().get().await?;
            client
                .execute(
                    "INSERT INTO checkpoints (name, position) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    &[&name, &(seq as i64)],
                )
                .await
                .map_err(PgError::op("write checkpoint"))
        }
        .await?;
        Ok(())
    }

    async fn cursor(&self, key: &str) -> Result<Option<IngestCursor>, LogError> {
        let row = async {
            let client = self.pg.pool().get().await?;
            client
                .query_opt(
                    "SELECT seed, page_size, next_page FROM ingest_cursors WHERE source_key = $1",
                    &[&key],
                )
                .await
                .map_err(PgError::op("read cursor"))
        }
        .await?;
        Ok(row.map(|r| IngestCursor {
            seed: r.get(0),
            page_size: r.get::<_, i32>(1) as u32,
            next_page: r.get::<_, i64>(2) as u64,
        }))
    }
}
