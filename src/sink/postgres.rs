//! PostgreSQL as the final store (`[store] postgres = ...`): the same tables and the same
//! all-or-nothing commit as the SQLite store, with bulk upserts (one `unnest` statement per batch).

use super::query::{DeadLetterEntry, UserFilter, UserQuery};
use super::{Commit, Sink, SinkError};
use crate::model::UserRow;
use crate::postgres::{Migration, PgError, Postgres, PostgresOptions, migrate};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tokio_postgres::Row;
use uuid::Uuid;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
        CREATE TABLE created_users (
            id              UUID        PRIMARY KEY,
            first_name      TEXT        NOT NULL,
            last_name       TEXT        NOT NULL,
            gender          TEXT        NOT NULL,
            address         TEXT        NOT NULL,
            post_code       TEXT        NOT NULL,
            email           TEXT        NOT NULL,
            username        TEXT        NOT NULL,
            dob             TIMESTAMPTZ NOT NULL,
            registered_date TIMESTAMPTZ NOT NULL,
            phone           TEXT        NOT NULL,
            picture         TEXT        NOT NULL,
            written_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX created_users_written_at ON created_users (written_at);
        CREATE TABLE dead_letters (
            log_id    TEXT        NOT NULL,
            log_seq   BIGINT      NOT NULL,
            reason    TEXT        NOT NULL,
            record    TEXT        NOT NULL,
            failed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (log_id, log_seq)
        );
        CREATE TABLE consumer_positions (
            log_id     TEXT        PRIMARY KEY,
            position   BIGINT      NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );",
    },
    // Seed 004's `timestamp` (when the user was fetched) replaces the write time as the order of
    // `query latest`: it travels with the record, so every store orders alike. Rows stored
    // before it get the epoch, which sorts them oldest.
    Migration {
        version: 2,
        sql: "
        ALTER TABLE created_users ADD COLUMN \"timestamp\" TIMESTAMPTZ NOT NULL DEFAULT 'epoch';
        ALTER TABLE created_users ALTER COLUMN \"timestamp\" DROP DEFAULT;
        DROP INDEX created_users_written_at;
        ALTER TABLE created_users DROP COLUMN written_at;
        CREATE INDEX created_users_timestamp ON created_users (\"timestamp\");",
    },
];

const UPSERT: &str = "
INSERT INTO created_users (id, first_name, last_name, gender, address, post_code, email, username,
                           dob, registered_date, phone, picture, \"timestamp\")
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[],
                     $13::timestamptz[])
ON CONFLICT (id) DO UPDATE SET
    first_name = excluded.first_name, last_name = excluded.last_name, gender = excluded.gender,
    address = excluded.address, post_code = excluded.post_code, email = excluded.email,
    username = excluded.username, dob = excluded.dob, registered_date = excluded.registered_date,
    phone = excluded.phone, picture = excluded.picture, \"timestamp\" = excluded.\"timestamp\"";

const SELECT_USERS: &str = "SELECT id, first_name, last_name, gender, address, post_code, email, \
     username, dob, registered_date, phone, picture, \"timestamp\" FROM created_users";

pub struct PostgresStore {
    pg: Postgres,
}

impl PostgresStore {
    pub async fn open(url: &str, options: &PostgresOptions) -> Result<Self, SinkError> {
        let pg = Postgres::connect(url, options).await?;
        migrate(&pg, "store", MIGRATIONS).await?;
        Ok(Self { pg })
    }

    async fn users(
        &self,
        clause: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<UserRow>, SinkError> {
        let rows = async {
            let client = self.pg.pool().get().await?;
            client
                .query(&format!("{SELECT_USERS} {clause}"), params)
                .await
                .map_err(PgError::op("query users"))
        }
        .await?;
        Ok(rows.iter().map(read_row).collect())
    }
}

fn read_row(r: &Row) -> UserRow {
    UserRow {
        id: r.get(0),
        first_name: r.get(1),
        last_name: r.get(2),
        gender: r.get(3),
        address: r.get(4),
        post_code: r.get(5),
        email: r.get(6),
        username: r.get(7),
        dob: r.get(8),
        registered_date: r.get(9),
        phone: r.get(10),
        picture: r.get(11),
        timestamp: r.get(12),
    }
}

/// The batch as column arrays, keeping only the last row of each id: one statement may not
/// update the same row twice, and the last write is the one that wins anyway.
struct Columns {
    id: Vec<Uuid>,
    text: [Vec<String>; 9],
    dob: Vec<DateTime<Utc>>,
    registered: Vec<DateTime<Utc>>,
    timestamp: Vec<DateTime<Utc>>,
}

fn columns(rows: &[UserRow]) -> Columns {
    let mut last: HashMap<Uuid, usize> = HashMap::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        last.insert(row.id, i);
    }
    let mut cols = Columns {
        id: Vec::with_capacity(last.len()),
        text: Default::default(),
        dob: Vec::with_capacity(last.len()),
        registered: Vec::with_capacity(last.len()),
        timestamp: Vec::with_capacity(last.len()),
    };
    for (i, row) in rows.iter().enumerate() {
        if last[&row.id] != i {
            continue;
        }
        cols.id.push(row.id);
        for (col, value) in cols.text.iter_mut().zip([
            &row.first_name,
            &row.last_name,
            &row.gender,
            &row.address,
            &row.post_code,
            &row.email,
            &row.username,
            &row.phone,
            &row.picture,
        ]) {
            col.push(value.clone());
        }
        cols.dob.push(row.dob);
        cols.registered.push(row.registered_date);
        cols.timestamp.push(row.timestamp);
    }
    cols
}

#[async_trait::async_trait]
impl Sink for PostgresStore {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), SinkError> {
        let cols = columns(&commit.rows);
        let seqs: Vec<i64> = commit
            .dead_letters
            .iter()
            .map(|d| d.log_seq as i64)
            .collect();
        let reasons: Vec<&str> = commit
            .dead_letters
            .iter()
            .map(|d| d.reason.as_str())
            .collect();
        let records: Vec<&str> = commit
            .dead_letters
            .iter()
            .map(|d| d.record.as_str())
            .collect();
        async {
            let mut client = self.pg.pool().get().await?;
            let tx = client.transaction().await.map_err(PgError::op("begin batch"))?;
            if !cols.id.is_empty() {
                let t = &cols.text;
                tx.execute(
                    UPSERT,
                    &[
                        &cols.id, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &t[6], &cols.dob,
                        &cols.registered, &t[7], &t[8], &cols.timestamp,
                    ],
                )
                .await
                .map_err(PgError::op("upsert users"))?;
            }
            if !seqs.is_empty() {
                tx.execute(
                    "INSERT INTO dead_letters (log_id, log_seq, reason, record)
                     SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])
                     ON CONFLICT (log_id, log_seq) DO UPDATE SET reason = excluded.reason,
                         record = excluded.record, failed_at = now()",
                    &[&commit.log_id, &seqs, &reasons, &records],
                )
                .await
                .map_err(PgError::op("write dead letters"))?;
            }
            if let Some(position) = commit.position {
                tx.execute(
                    "INSERT INTO consumer_positions (log_id, position) VALUES ($1, $2)
                     ON CONFLICT (log_id) DO UPDATE SET position = excluded.position, updated_at = now()",
                    &[&commit.log_id, &(position as i64)],
                )
                .await
                .map_err(PgError::op("write position"))?;
            }
            tx.commit().await.map_err(PgError::op("commit batch"))
        }.await?;
        Ok(())
    }

    async fn position(&self, log_id: &str) -> Result<Option<u64>, SinkError> {
        let row = async {
            let client = self.pg.pool().get().await?;
            client
                .query_opt(
                    "SELECT position FROM consumer_positions WHERE log_id = $1",
                    &[&log_id],
                )
                .await
                .map_err(PgError::op("read position"))
        }
        .await?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    async fn remove_dead_letters(&self, keys: &[(String, u64)]) -> Result<(), SinkError> {
        let (ids, seqs): (Vec<&str>, Vec<i64>) = keys
            .iter()
            .map(|(id, seq)| (id.as_str(), *seq as i64))
            .unzip();
        async {
            let client = self.pg.pool().get().await?;
            client
                .execute(
                    "DELETE FROM dead_letters d USING unnest($1::text[], $2::bigint[]) AS k (log_id, log_seq)
                     WHERE d.log_id = k.log_id AND d.log_seq = k.log_seq",
                    &[&ids, &seqs],
                )
                .await
                .map_err(PgError::op("remove dead letters"))
        }.await?;
        Ok(())
    }
}

/// Rows per page when scanning a whole table: keyset pages, so memory stays at one page.
const SCAN_PAGE: i64 = 5_000;

#[async_trait::async_trait]
impl UserQuery for PostgresStore {
    async fn count(&self) -> Result<u64, SinkError> {
        let row = async {
            let client = self.pg.pool().get().await?;
            client
                .query_one("SELECT count(*) FROM created_users", &[])
                .await
                .map_err(PgError::op("count users"))
        }
        .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, SinkError> {
        Ok(self.users("WHERE id = $1", &[&id]).await?.pop())
    }

    async fn latest(&self, limit: usize) -> Result<Vec<UserRow>, SinkError> {
        self.users(
            "ORDER BY \"timestamp\" DESC, id LIMIT $1",
            &[&(limit as i64)],
        )
        .await
    }

    async fn filter(&self, filter: &UserFilter) -> Result<Vec<UserRow>, SinkError> {
        let country = filter.country.as_ref().map(|c| format!("%, {}", c.trim()));
        self.users(
            "WHERE ($1::text IS NULL OR address ILIKE $1) AND ($2::text IS NULL OR lower(gender) = lower($2))
             ORDER BY \"timestamp\" DESC, id LIMIT $3",
            &[&country, &filter.gender, &(filter.limit as i64)],
        )
        .await
    }

    async fn dead_letter_count(&self) -> Result<u64, SinkError> {
        let row = async {
            let client = self.pg.pool().get().await?;
            client
                .query_one("SELECT count(*) FROM dead_letters", &[])
                .await
                .map_err(PgError::op("count dead letters"))
        }
        .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, SinkError> {
        let rows = async {
            let client = self.pg.pool().get().await?;
            client
                .query(
                    "SELECT log_id, log_seq, reason, failed_at, record FROM dead_letters
                     ORDER BY failed_at DESC, log_seq DESC LIMIT $1",
                    &[&(limit as i64)],
                )
                .await
                .map_err(PgError::op("query dead letters"))
        }
        .await?;
        Ok(rows.iter().map(dead_letter_entry).collect())
    }

    async fn scan_dead_letters(
        &self,
        each: &mut (dyn FnMut(DeadLetterEntry) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError> {
        let mut after = (String::new(), -1i64);
        loop {
            let rows = async {
                let client = self.pg.pool().get().await?;
                client
                    .query(
                        "SELECT log_id, log_seq, reason, failed_at, record FROM dead_letters
                         WHERE (log_id, log_seq) > ($1, $2) ORDER BY log_id, log_seq LIMIT $3",
                        &[&after.0, &after.1, &SCAN_PAGE],
                    )
                    .await
                    .map_err(PgError::op("scan dead letters"))
            }
            .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = (last.get(0), last.get(1));
            for row in &rows {
                each(dead_letter_entry(row))?;
            }
        }
    }

    async fn scan_ids(
        &self,
        each: &mut (dyn FnMut(Uuid) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError> {
        let mut after = Uuid::nil();
        loop {
            let rows = async {
                let client = self.pg.pool().get().await?;
                client
                    .query(
                        "SELECT id FROM created_users WHERE id > $1 ORDER BY id LIMIT $2",
                        &[&after, &SCAN_PAGE],
                    )
                    .await
                    .map_err(PgError::op("scan ids"))
            }
            .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = last.get(0);
            for row in &rows {
                each(row.get(0))?;
            }
        }
    }
}

fn dead_letter_entry(r: &Row) -> DeadLetterEntry {
    DeadLetterEntry {
        log_id: r.get(0),
        log_seq: r.get::<_, i64>(1) as u64,
        reason: r.get(2),
        failed_at: crate::model::row::format_timestamp(&r.get::<_, DateTime<Utc>>(3)),
        record: r.get(4),
    }
}
