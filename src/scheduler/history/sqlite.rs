//! The run history in SQLite (`DATA_DIR/meta.db`): the embedded default.
//!
//! Every process on the machine opens the same file. Each write is one `BEGIN IMMEDIATE`
//! transaction, which takes SQLite's write lock before reading, so the check and the write of a
//! claim cannot interleave with another process's (a deferred transaction would read, then fail
//! to upgrade). `synchronous = FULL`, as for the log: a claim or an outcome acknowledged and then
//! lost to a power cut could run a slot twice.

use super::{
    Admission, COLUMNS, HistoryError, Lease, NewRun, RunColumns, RunHistory, RunRecord, lapse,
    lease_held, micros, new_record, start, stored_lease,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS job_runs (
    run_id          TEXT    PRIMARY KEY,
    job             TEXT    NOT NULL,
    slot            INTEGER,          -- microseconds since the epoch, UTC; NULL for manual runs
    trigger         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    users_requested INTEGER,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    ended_at        INTEGER,
    users_fetched   INTEGER NOT NULL,
    users_published INTEGER NOT NULL,
    api_errors      TEXT    NOT NULL, -- JSON object: error kind -> count
    error           TEXT,
    owner           TEXT,
    lease_until     INTEGER
);
-- The guarantee that a slot is recorded (and so run) once, whichever process saw it first.
CREATE UNIQUE INDEX IF NOT EXISTS job_runs_one_per_slot ON job_runs (job, slot)
    WHERE slot IS NOT NULL;
CREATE INDEX IF NOT EXISTS job_runs_by_job ON job_runs (job, status, created_at);
";

pub struct SqliteRunHistory {
    conn: tokio_rusqlite::Connection,
    file: crate::sqlite::FileId,
}

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> HistoryError {
    move |source| HistoryError::Sqlite { op, source }
}

impl SqliteRunHistory {
    /// Opens (creating if needed) the history at `path`.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let mut conn = crate::sqlite::open(path).map_err(sql("open"))?;
        crate::sqlite::enable_wal(&conn).map_err(sql("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql("set synchronous"))?;
        crate::sqlite::create_schema(&mut conn, SCHEMA).map_err(sql("create schema"))?;
        let file = crate::sqlite::FileId::of(path).map_err(HistoryError::FileGone)?;
        Ok(Self {
            conn: conn.into(),
            file,
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, HistoryError> + Send + 'static,
    ) -> Result<T, HistoryError> {
        self.conn.call_unwrap(op).await
    }
}

fn columns(row: &Row<'_>) -> rusqlite::Result<RunColumns> {
    Ok(RunColumns {
        run_id: row.get(0)?,
        job: row.get(1)?,
        slot: row.get(2)?,
        trigger: row.get(3)?,
        status: row.get(4)?,
        attempt: row.get(5)?,
        users_requested: row.get(6)?,
        created_at: row.get(7)?,
        started_at: row.get(8)?,
        ended_at: row.get(9)?,
        users_fetched: row.get(10)?,
        users_published: row.get(11)?,
        api_errors: row.get(12)?,
        error: row.get(13)?,
        owner: row.get(14)?,
    })
}

fn query(
    conn: &Connection,
    sql_text: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RunRecord>, HistoryError> {
    let mut stmt = conn.prepare_cached(sql_text).map_err(sql("prepare"))?;
    let rows = stmt
        .query_map(params, columns)
        .map_err(sql("query"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("read row"))?;
    rows.into_iter().map(RunColumns::into_record).collect()
}

fn write(conn: &Connection, run: &RunRecord, lease_until: Option<i64>) -> Result<(), HistoryError> {
    conn.execute(
        "INSERT OR REPLACE INTO job_runs (run_id, job, slot, trigger, status, attempt, \
         users_requested, created_at, started_at, ended_at, users_fetched, users_published, \
         api_errors, error, owner, lease_until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            run.run_id,
            run.job,
            run.slot.map(micros),
            run.trigger.as_str(),
            run.status.as_str(),
            run.attempt,
            run.users_requested.map(|u| u as i64),
            micros(run.created_at),
            run.started_at.map(micros),
            run.ended_at.map(micros),
            run.users_fetched as i64,
            run.users_published as i64,
            serde_json::to_string(&run.api_errors).expect("a map of counts serializes"),
            run.error,
            run.owner,
            lease_until,
        ],
    )
    .map_err(sql("write run"))?;
    Ok(())
}

#[async_trait::async_trait]
impl RunHistory for SqliteRunHistory {
    async fn ready(&self) -> Result<(), HistoryError> {
        self.file.check().map_err(HistoryError::FileGone)?;
        self.last_slot("").await.map(drop)
    }

    async fn insert(
        &self,
        run: NewRun,
        admission: Admission,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql("begin"))?;
            if let Some(slot) = run.slot {
                let taken: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM job_runs WHERE job = ?1 AND slot = ?2",
                        params![run.job, micros(slot)],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql("look up slot"))?;
                if taken.is_some() {
                    return Ok(None);
                }
            }
            let (queued, live): (i64, i64) = tx
                .query_row(
                    "SELECT count(*) FILTER (WHERE status = 'queued'), \
                     count(*) FILTER (WHERE status = 'running' AND lease_until >= ?2) \
                     FROM job_runs WHERE job = ?1 AND status IN ('queued', 'running')",
                    params![run.job, micros(now)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(sql("count pending runs"))?;
            let refusal = admission.refusal(queued.unsigned_abs(), live.unsigned_abs());
            let record = new_record(run, refusal, now);
            write(&tx, &record, None)?;
            tx.commit().map_err(sql("commit"))?;
            Ok(Some(record))
        })
        .await
    }

    async fn claim(
        &self,
        job: &str,
        run_id: Option<&str>,
        lease: &Lease,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        let (job, run_id, lease) = (job.to_owned(), run_id.map(str::to_owned), lease.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql("begin"))?;
            let lapsed = query(
                &tx,
                &format!(
                    "SELECT {COLUMNS} FROM job_runs WHERE job = ?1 AND status = 'running' \
                     AND lease_until < ?2"
                ),
                params![job, micros(now)],
            )?;
            for mut run in lapsed {
                lapse(&mut run, max_attempts, now);
                write(&tx, &run, None)?;
            }
            let live: i64 = tx
                .query_row(
                    "SELECT count(*) FROM job_runs WHERE job = ?1 AND status = 'running'",
                    params![job],
                    |r| r.get(0),
                )
                .map_err(sql("look for live runs"))?;
            if live > 0 {
                tx.commit().map_err(sql("commit"))?;
                return Ok(None);
            }
            let next = query(
                &tx,
                &format!(
                    "SELECT {COLUMNS} FROM job_runs WHERE job = ?1 AND status = 'queued' \
                     AND (?2 IS NULL OR run_id = ?2) ORDER BY created_at, slot LIMIT 1"
                ),
                params![job, run_id],
            )?;
            let Some(mut run) = next.into_iter().next() else {
                tx.commit().map_err(sql("commit"))?;
                return Ok(None);
            };
            start(&mut run, &lease, now);
            write(&tx, &run, stored_lease(&run, &lease))?;
            tx.commit().map_err(sql("commit"))?;
            Ok(Some(run))
        })
        .await
    }

    async fn update(
        &self,
        run: &RunRecord,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<bool, HistoryError> {
        let (run, lease) = (run.clone(), lease.clone());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql("begin"))?;
            let holder: Option<(Option<String>, String, Option<i64>)> = tx
                .query_row(
                    "SELECT owner, status, lease_until FROM job_runs WHERE run_id = ?1",
                    params![run.run_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(sql("read lease"))?;
            let held = holder.as_ref().is_some_and(|(owner, status, until)| {
                lease_held((owner.as_deref(), status, *until), &lease, now)
            });
            if !held {
                return Ok(false);
            }
            write(&tx, &run, stored_lease(&run, &lease))?;
            tx.commit().map_err(sql("commit"))?;
            Ok(true)
        })
        .await
    }

    async fn cancel_queued(
        &self,
        run_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, HistoryError> {
        let (run_id, reason) = (run_id.to_owned(), reason.to_owned());
        self.with(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE job_runs SET status = 'failed', error = ?2, ended_at = ?3 \
                     WHERE run_id = ?1 AND status = 'queued'",
                    params![run_id, reason, micros(now)],
                )
                .map_err(sql("cancel run"))?;
            Ok(changed == 1)
        })
        .await
    }

    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, HistoryError> {
        let run_id = run_id.to_owned();
        self.with(move |conn| {
            Ok(query(
                conn,
                &format!("SELECT {COLUMNS} FROM job_runs WHERE run_id = ?1"),
                params![run_id],
            )?
            .pop())
        })
        .await
    }

    async fn list(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, HistoryError> {
        let job = job.map(str::to_owned);
        self.with(move |conn| {
            query(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM job_runs WHERE (?1 IS NULL OR job = ?1) \
                     ORDER BY created_at DESC, slot DESC LIMIT ?2"
                ),
                params![job, limit as i64],
            )
        })
        .await
    }

    async fn last_slot(&self, job: &str) -> Result<Option<DateTime<Utc>>, HistoryError> {
        let job = job.to_owned();
        self.with(move |conn| {
            let last: Option<i64> = conn
                .query_row(
                    "SELECT max(slot) FROM job_runs WHERE job = ?1",
                    params![job],
                    |r| r.get(0),
                )
                .map_err(sql("read last slot"))?;
            last.map(super::from_micros).transpose()
        })
        .await
    }
}
