//! Cassandra / ScyllaDB as the final store (`[store] cassandra = "host1:9042,host2:9042"`), through
//! the `scylla` driver.
//!
//! Cassandra has no multi-partition transactions, so the commit contract is kept by ordering: every
//! row and dead letter of a batch is written (concurrently, bounded, each retried on timeouts and
//! overload) and acknowledged at the configured consistency *before* the position is written. A
//! crash in between leaves rows whose position was not recorded; they are written again on restart,
//! which changes nothing since an `INSERT` by primary key is an upsert.

pub mod config;

pub use config::CassandraOptions;

use super::newest::Newest;
use super::query::{DeadLetterEntry, UserFilter, UserQuery};
use super::{Commit, Sink, SinkError};
use crate::model::UserRow;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlTimestamp;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error("Cassandra {op}: {message}")]
    Driver { op: &'static str, message: String },
    #[error("Cassandra configuration: {0}")]
    Config(String),
}

fn driver(op: &'static str) -> impl Fn(&dyn std::fmt::Display) -> CassandraError {
    move |e| CassandraError::Driver {
        op,
        message: e.to_string(),
    }
}

/// Parses a consistency level name as CQL spells it.
pub fn consistency(name: &str) -> Result<Consistency, String> {
    Ok(match name.trim().to_ascii_uppercase().as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        other => {
            return Err(format!(
                "cassandra.consistency = {other:?} is not a consistency level"
            ));
        }
    })
}

const USER_COLUMNS: &str = "id, first_name, last_name, gender, address, post_code, email, username, dob, registered_date, phone, picture, \"timestamp\"";

/// Rows per page of a table scan: large enough that a scan is few round trips, small enough that
/// a page is a few megabytes of memory and never near the server's read timeout.
const SCAN_PAGE_SIZE: i32 = 2000;

type UserTuple = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<String>,
    Option<CqlTimestamp>,
);

fn to_row(t: UserTuple) -> UserRow {
    let ts = |v: Option<CqlTimestamp>| {
        DateTime::from_timestamp_millis(v.map_or(0, |t| t.0)).unwrap_or_default()
    };
    UserRow {
        id: t.0,
        first_name: t.1.unwrap_or_default(),
        last_name: t.2.unwrap_or_default(),
        gender: t.3.unwrap_or_default(),
        address: t.4.unwrap_or_default(),
        post_code: t.5.unwrap_or_default(),
        email: t.6.unwrap_or_default(),
        username: t.7.unwrap_or_default(),
        dob: ts(t.8),
        registered_date: ts(t.9),
        phone: t.10.unwrap_or_default(),
        picture: t.11.unwrap_or_default(),
        timestamp: ts(t.12),
    }
}

struct Statements {
    insert_user: PreparedStatement,
    insert_dead_letter: PreparedStatement,
    delete_dead_letter: PreparedStatement,
    write_position: PreparedStatement,
    read_position: PreparedStatement,
    get_user: PreparedStatement,
    scan_users: PreparedStatement,
    scan_ids: PreparedStatement,
    scan_dead_letters: PreparedStatement,
    scan_dead_letter_seqs: PreparedStatement,
}

pub struct CassandraStore {
    session: Arc<Session>,
    statements: Statements,
    options: CassandraOptions,
}

impl CassandraStore {
    /// Connects, creates keyspace and tables if missing (exactly DATA.md's table), prepares
    /// every statement.
    pub async fn open(nodes: &str, options: &CassandraOptions) -> Result<Self, SinkError> {
        options.validate().map_err(CassandraError::Config)?;
        let (session, statements) = connect(nodes, options).await?;
        Ok(Self {
            session: Arc::new(session),
            statements,
            options: options.clone(),
        })
    }

    /// Pages through every row of `statement` (in token order, the only order Cassandra keeps),
    /// handing each to `each`; memory stays at one page whatever the table's size.
    async fn scan<R>(
        &self,
        op: &'static str,
        statement: &PreparedStatement,
        mut each: impl FnMut(R) + Send,
    ) -> Result<(), SinkError>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + 'static,
    {
        Ok(async {
            let pager = self
                .session
                .execute_iter(statement.clone(), ())
                .await
                .map_err(|e| driver(op)(&e))?;
            let mut rows = pager.rows_stream::<R>().map_err(|e| driver(op)(&e))?;
            while let Some(row) = rows.try_next().await.map_err(|e| driver(op)(&e))? {
                each(row);
            }
            Ok::<_, CassandraError>(())
        }
        .await?)
    }

    /// The `limit` newest users (by `timestamp`, then id) among those `keep` accepts, newest
    /// first, paging through the table with only `limit` rows held.
    async fn newest_users(
        &self,
        limit: usize,
        keep: impl Fn(&UserRow) -> bool + Send + Sync,
    ) -> Result<Vec<UserRow>, SinkError> {
        let mut newest = Newest::new(limit);
        self.scan("scan users", &self.statements.scan_users, |t: UserTuple| {
            let row = to_row(t);
            if keep(&row) {
                newest.push((row.timestamp, std::cmp::Reverse(row.id)), row);
            }
        })
        .await?;
        Ok(newest.into_vec())
    }

    /// The rows of `statement` (one key column of a table), counted page by page: `COUNT(*)`
    /// on a large table runs into the server's read timeout.
    async fn count_rows<K>(
        &self,
        op: &'static str,
        statement: &PreparedStatement,
    ) -> Result<u64, SinkError>
    where
        (K,): for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm> + 'static,
    {
        let mut count = 0;
        self.scan(op, statement, |_: (K,)| count += 1).await?;
        Ok(count)
    }
}

async fn connect(
    nodes: &str,
    options: &CassandraOptions,
) -> Result<(Session, Statements), CassandraError> {
    let known: Vec<&str> = nodes
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if known.is_empty() {
        return Err(CassandraError::Config(
            "store.cassandra names no node".into(),
        ));
    }
    let mut builder = SessionBuilder::new()
        .known_nodes(&known)
        .connection_timeout(Duration::from_secs(10))
        .auto_await_schema_agreement(options.await_schema_agreement);
    if let (Some(user), Some(password)) = (&options.username, &options.password) {
        builder = builder.user(user, password);
    }
    if options.tls {
        let connector = crate::tls::client_config(options.ca_file.as_deref())
            .map_err(CassandraError::Config)?;
        builder = builder.tls_context(Some(Arc::new(connector)));
    }
    let session = builder.build().await.map_err(|e| driver("connect")(&e))?;

    let ks = &options.keyspace;
    let replication = options.replication_map().map_err(CassandraError::Config)?;
    // Only what is missing is created: `CREATE ... IF NOT EXISTS` still needs the CREATE
    // permission, which a least-privilege role writing into a prepared keyspace lacks.
    let existing = existing_tables(&session, ks).await?;
    let create = |ddl: String| {
        let session = &session;
        async move {
            session
                .query_unpaged(ddl, ())
                .await
                .map_err(|e| driver("create schema")(&e))
        }
    };
    if existing.is_none() {
        create(format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"
        ))
        .await?;
    }
    let existing = existing.unwrap_or_default();
    for (table, columns) in [
        (
            "created_users",
            "id UUID PRIMARY KEY, first_name TEXT, last_name TEXT, gender TEXT, address TEXT, \
             post_code TEXT, email TEXT, username TEXT, dob TIMESTAMP, registered_date TIMESTAMP, \
             phone TEXT, picture TEXT, \"timestamp\" TIMESTAMP",
        ),
        (
            "userstream_dead_letters",
            "log_id TEXT, log_seq BIGINT, reason TEXT, record TEXT, failed_at TIMESTAMP, \
             PRIMARY KEY (log_id, log_seq)",
        ),
        (
            "userstream_positions",
            "log_id TEXT PRIMARY KEY, position BIGINT, updated_at TIMESTAMP",
        ),
    ] {
        if !existing.iter().any(|t| t == table) {
            create(format!(
                "CREATE TABLE IF NOT EXISTS {ks}.{table} ({columns})"
            ))
            .await?;
        }
    }
    // A table made here has the column; one from before seed 004 may not.
    if existing.iter().any(|t| t == "created_users") {
        add_timestamp_column(&session, ks).await?;
    }

    let level = consistency(&options.consistency).map_err(CassandraError::Config)?;
    let prepare = |cql: String| {
        let session = &session;
        async move {
            let mut statement = session
                .prepare(cql)
                .await
                .map_err(|e| driver("prepare")(&e))?;
            statement.set_consistency(level);
            statement.set_is_idempotent(true);
            statement.set_request_timeout(Some(options.request_timeout));
            Ok::<_, CassandraError>(statement)
        }
    };
    let statements = Statements {
        insert_user: prepare(format!(
            "INSERT INTO {ks}.created_users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .await?,
        insert_dead_letter: prepare(format!(
            "INSERT INTO {ks}.userstream_dead_letters (log_id, log_seq, reason, record, failed_at) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?,
        delete_dead_letter: prepare(format!(
            "DELETE FROM {ks}.userstream_dead_letters WHERE log_id = ? AND log_seq = ?"
        ))
        .await?,
        write_position: prepare(format!(
            "INSERT INTO {ks}.userstream_positions (log_id, position, updated_at) VALUES (?, ?, ?)"
        ))
        .await?,
        read_position: prepare(format!("SELECT position FROM {ks}.userstream_positions WHERE log_id = ?")).await?,
        get_user: prepare(format!("SELECT {USER_COLUMNS} FROM {ks}.created_users WHERE id = ?")).await?,
        scan_users: paged(prepare(format!("SELECT {USER_COLUMNS} FROM {ks}.created_users")).await?),
        scan_ids: paged(prepare(format!("SELECT id FROM {ks}.created_users")).await?),
        scan_dead_letters: paged(prepare(format!(
            "SELECT log_id, log_seq, reason, failed_at, record FROM {ks}.userstream_dead_letters"
        ))
        .await?),
        scan_dead_letter_seqs: paged(prepare(format!("SELECT log_seq FROM {ks}.userstream_dead_letters")).await?),
    };
    Ok((session, statements))
}

/// The tables of keyspace `ks`, or `None` if there is no such keyspace.
async fn existing_tables(
    session: &Session,
    ks: &str,
) -> Result<Option<Vec<String>>, CassandraError> {
    let read = |e: &dyn std::fmt::Display| driver("read schema")(e);
    let keyspaces = session
        .query_unpaged(
            "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?",
            (ks,),
        )
        .await
        .map_err(|e| read(&e))?
        .into_rows_result()
        .map_err(|e| read(&e))?;
    if keyspaces.rows_num() == 0 {
        return Ok(None);
    }
    let tables = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (ks,),
        )
        .await
        .map_err(|e| read(&e))?
        .into_rows_result()
        .map_err(|e| read(&e))?;
    let names = tables
        .rows::<(String,)>()
        .map_err(|e| read(&e))?
        .map(|row| row.map(|(name,)| name).map_err(|e| read(&e)))
        .collect::<Result<_, _>>()?;
    Ok(Some(names))
}

fn paged(mut statement: PreparedStatement) -> PreparedStatement {
    statement.set_page_size(SCAN_PAGE_SIZE);
    statement
}

/// Tables created before seed 004's `timestamp` column gain it (`ALTER TABLE ... ADD` has no
/// `IF NOT EXISTS`, so the schema is asked first). Their old rows read back with the epoch.
async fn add_timestamp_column(session: &Session, ks: &str) -> Result<(), CassandraError> {
    let columns = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = 'created_users'",
            (ks,),
        )
        .await
        .map_err(|e| driver("read schema")(&e))?
        .into_rows_result()
        .map_err(|e| driver("read schema")(&e))?;
    let has_timestamp = columns
        .rows::<(String,)>()
        .map_err(|e| driver("read schema")(&e))?
        .any(|c| c.is_ok_and(|(name,)| name == "timestamp"));
    if !has_timestamp {
        let added = session
            .query_unpaged(
                format!("ALTER TABLE {ks}.created_users ADD \"timestamp\" TIMESTAMP"),
                (),
            )
            .await;
        // Another process may have added it between our read and our ALTER.
        if let Err(err) = added
            && !err
                .to_string()
                .contains("conflicts with an existing column")
        {
            return Err(driver("add the timestamp column")(&err));
        }
    }
    Ok(())
}

/// One write with retries: timeouts, overload and unavailability are worth another attempt
/// after a backoff; the statement is idempotent, so a write that did land is harmless to repeat.
async fn write_with_retry<V: scylla::serialize::row::SerializeRow>(
    session: &Session,
    statement: &PreparedStatement,
    values: V,
    attempts: u32,
) -> Result<(), CassandraError> {
    let mut attempt = 1;
    loop {
        match session.execute_unpaged(statement, &values).await {
            Ok(_) => return Ok(()),
            Err(err) if attempt < attempts => {
                let delay = Duration::from_millis(50 * 2u64.pow(attempt.min(8)));
                tracing::debug!(error = %err, attempt, ?delay, "Cassandra write failed, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => return Err(driver("write")(&err)),
        }
    }
}

/// One row's idempotent write.
fn write_user<'a>(
    session: &'a Session,
    statement: &'a PreparedStatement,
    row: &'a UserRow,
    attempts: u32,
) -> impl std::future::Future<Output = Result<(), CassandraError>> + Send + 'a {
    let values = (
        row.id,
        &row.first_name,
        &row.last_name,
        &row.gender,
        &row.address,
        &row.post_code,
        &row.email,
        &row.username,
        CqlTimestamp(row.dob.timestamp_millis()),
        CqlTimestamp(row.registered_date.timestamp_millis()),
        &row.phone,
        &row.picture,
        CqlTimestamp(row.timestamp.timestamp_millis()),
    );
    write_with_retry(session, statement, values, attempts)
}

/// One dead letter's idempotent write, keyed by its source.
fn write_dead_letter<'a>(
    session: &'a Session,
    statement: &'a PreparedStatement,
    log_id: &'a str,
    letter: &'a super::DeadLetter,
    now: CqlTimestamp,
    attempts: u32,
) -> impl std::future::Future<Output = Result<(), CassandraError>> + Send + 'a {
    let values = (
        log_id,
        letter.log_seq as i64,
        &letter.reason,
        &letter.record,
        now,
    );
    write_with_retry(session, statement, values, attempts)
}

#[async_trait::async_trait]
impl Sink for CassandraStore {
    async fn commit(&self, commit: Commit<'_>) -> Result<(), SinkError> {
        let session = &self.session;
        let s = &self.statements;
        let attempts = self.options.write_attempts;
        let concurrency = self.options.concurrency;
        let now = CqlTimestamp(Utc::now().timestamp_millis());
        async {
            // Futures collected first: a lazily mapped iterator held across the awaits trips
            // the compiler's `Send` inference for async-trait futures.
            let users: Vec<_> = commit
                .rows
                .iter()
                .map(|row| write_user(session, &s.insert_user, row, attempts))
                .collect();
            futures::stream::iter(users)
                .buffer_unordered(concurrency)
                .try_collect::<()>()
                .await?;
            let letters: Vec<_> = commit
                .dead_letters
                .iter()
                .map(|d| {
                    write_dead_letter(
                        session,
                        &s.insert_dead_letter,
                        commit.log_id,
                        d,
                        now,
                        attempts,
                    )
                })
                .collect();
            futures::stream::iter(letters)
                .buffer_unordered(concurrency)
                .try_collect::<()>()
                .await?;
            // Only now, with every write acknowledged, may the position move.
            match commit.position {
                Some(position) => {
                    let position = (commit.log_id, position as i64, now);
                    write_with_retry(session, &s.write_position, position, attempts).await
                }
                None => Ok(()),
            }
        }
        .await?;
        Ok(())
    }

    async fn position(&self, log_id: &str) -> Result<Option<u64>, SinkError> {
        Ok(async {
            let result = self
                .session
                .execute_unpaged(&self.statements.read_position, (log_id,))
                .await
                .map_err(|e| driver("read position")(&e))?;
            let rows = result
                .into_rows_result()
                .map_err(|e| driver("read position")(&e))?;
            let position = rows
                .maybe_first_row::<(Option<i64>,)>()
                .map_err(|e| driver("read position")(&e))?;
            Ok::<_, CassandraError>(position.and_then(|(p,)| p).map(|p| p as u64))
        }
        .await?)
    }

    async fn remove_dead_letters(&self, keys: &[(String, u64)]) -> Result<(), SinkError> {
        let (session, statement) = (&self.session, &self.statements.delete_dead_letter);
        let attempts = self.options.write_attempts;
        Ok(async {
            for (log_id, seq) in keys {
                write_with_retry(session, statement, (log_id, *seq as i64), attempts).await?;
            }
            Ok::<_, CassandraError>(())
        }
        .await?)
    }
}

/// Queries page through the tables (`SCAN_PAGE_SIZE` rows at a time) and hold at most the rows
/// they answer with: Cassandra has no index to order or filter by, and a table may be far larger
/// than memory.
#[async_trait::async_trait]
impl UserQuery for CassandraStore {
    async fn count(&self) -> Result<u64, SinkError> {
        self.count_rows::<Uuid>("count users", &self.statements.scan_ids)
            .await
    }

    async fn get(&self, id: Uuid) -> Result<Option<UserRow>, SinkError> {
        Ok(async {
            let result = self
                .session
                .execute_unpaged(&self.statements.get_user, (id,))
                .await
                .map_err(|e| driver("get user")(&e))?;
            let rows = result
                .into_rows_result()
                .map_err(|e| driver("get user")(&e))?;
            let row = rows
                .maybe_first_row::<UserTuple>()
                .map_err(|e| driver("get user")(&e))?;
            Ok::<_, CassandraError>(row.map(to_row))
        }
        .await?)
    }

    /// By `timestamp` (when the user was fetched), newest first, as every store orders.
    async fn latest(&self, limit: usize) -> Result<Vec<UserRow>, SinkError> {
        self.newest_users(limit, |_| true).await
    }

    async fn filter(&self, filter: &UserFilter) -> Result<Vec<UserRow>, SinkError> {
        let country = filter
            .country
            .as_ref()
            .map(|c| format!(", {}", c.trim().to_lowercase()));
        let gender = filter.gender.as_ref().map(|g| g.to_lowercase());
        self.newest_users(filter.limit, |r| {
            country
                .as_ref()
                .is_none_or(|c| r.address.to_lowercase().ends_with(c.as_str()))
                && gender
                    .as_ref()
                    .is_none_or(|g| r.gender.to_lowercase() == *g)
        })
        .await
    }

    async fn dead_letter_count(&self) -> Result<u64, SinkError> {
        self.count_rows::<i64>("count dead letters", &self.statements.scan_dead_letter_seqs)
            .await
    }

    /// Newest failure first, as every store orders.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetterEntry>, SinkError> {
        let mut newest = Newest::new(limit);
        self.scan(
            "scan dead letters",
            &self.statements.scan_dead_letters,
            |t: DeadLetterTuple| {
                let order = (t.3.map_or(0, |at| at.0), t.1);
                newest.push(order, dead_letter_entry(t));
            },
        )
        .await?;
        Ok(newest.into_vec())
    }

    async fn scan_dead_letters(
        &self,
        each: &mut (dyn FnMut(DeadLetterEntry) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError> {
        let mut failed = Ok(());
        self.scan(
            "scan dead letters",
            &self.statements.scan_dead_letters,
            |t: DeadLetterTuple| {
                if failed.is_ok() {
                    failed = each(dead_letter_entry(t));
                }
            },
        )
        .await?;
        failed
    }

    async fn scan_ids(
        &self,
        each: &mut (dyn FnMut(Uuid) -> Result<(), SinkError> + Send),
    ) -> Result<(), SinkError> {
        let mut failed = Ok(());
        self.scan("scan ids", &self.statements.scan_ids, |(id,): (Uuid,)| {
            if failed.is_ok() {
                failed = each(id);
            }
        })
        .await?;
        failed
    }
}

type DeadLetterTuple = (
    String,
    i64,
    Option<String>,
    Option<CqlTimestamp>,
    Option<String>,
);

fn dead_letter_entry((log_id, seq, reason, at, record): DeadLetterTuple) -> DeadLetterEntry {
    DeadLetterEntry {
        log_id,
        log_seq: seq as u64,
        reason: reason.unwrap_or_default(),
        failed_at: DateTime::from_timestamp_millis(at.map_or(0, |t| t.0))
            .map(|t| crate::model::row::format_timestamp(&t))
            .unwrap_or_default(),
        record: record.unwrap_or_default(),
    }
}
