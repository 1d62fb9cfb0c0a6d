//! The run history in PostgreSQL, for schedulers on several hosts.
//!
//! The same transactions as the SQLite history; where SQLite serializes every writer on its one
//! write lock, PostgreSQL serializes the claims of one job on a transaction-scoped advisory lock
//! named after the job, and a run's update on its row lock.

use super::{
    Admission, COLUMNS, HistoryError, Lease, NewRun, RunColumns, RunHistory, RunRecord, lapse,
    lease_held, micros, new_record, start, stored_lease,
};
use crate::postgres::{Migration, PgError, Postgres, PostgresOptions, migrate};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: "
    CREATE TABLE job_runs (
        run_id          TEXT    PRIMARY KEY,
        job             TEXT    NOT NULL,
        slot            BIGINT,
        trigger         TEXT    NOT NULL,
        status          TEXT    NOT NULL,
        attempt         BIGINT  NOT NULL,
        users_requested BIGINT,
        created_at      BIGINT  NOT NULL,
        started_at      BIGINT,
        ended_at        BIGINT,
        users_fetched   BIGINT  NOT NULL,
        users_published BIGINT  NOT NULL,
        api_errors      TEXT    NOT NULL,
        error           TEXT,
        owner           TEXT,
        lease_until     BIGINT
    );
    CREATE UNIQUE INDEX job_runs_one_per_slot ON job_runs (job, slot) WHERE slot IS NOT NULL;
    CREATE INDEX job_runs_by_job ON job_runs (job, status, created_at);
    ",
}];

/// The advisory lock class of per-job claims ("jobs").
const JOB_LOCK_CLASS: i32 = 0x6a6f_6273;

pub struct PostgresRunHistory {
    pg: Postgres,
}

impl PostgresRunHistory {
    pub async fn open(url: &str, options: &PostgresOptions) -> Result<Self, HistoryError> {
        let pg = Postgres::connect(url, options).await?;
        migrate(&pg, "job_runs", MIGRATIONS).await?;
        Ok(Self { pg })
    }
}

fn columns(row: &Row) -> RunColumns {
    RunColumns {
        run_id: row.get(0),
        job: row.get(1),
        slot: row.get(2),
        trigger: row.get(3),
        status: row.get(4),
        attempt: row.get(5),
        users_requested: row.get(6),
        created_at: row.get(7),
        started_at: row.get(8),
        ended_at: row.get(9),
        users_fetched: row.get(10),
        users_published: row.get(11),
        api_errors: row.get(12),
        error: row.get(13),
        owner: row.get(14),
    }
}

fn records(rows: Vec<Row>) -> Result<Vec<RunRecord>, HistoryError> {
    rows.iter().map(|r| columns(r).into_record()).collect()
}

async fn write(
    tx: &deadpool_postgres::Transaction<'_>,
    run: &RunRecord,
    lease_until: Option<i64>,
) -> Result<(), HistoryError> {
    let api_errors = serde_json::to_string(&run.api_errors).expect("a map of counts serializes");
    let params: [&(dyn ToSql + Sync); 16] = [
        &run.run_id,
        &run.job,
        &run.slot.map(micros),
        &run.trigger.as_str(),
        &run.status.as_str(),
        &i64::from(run.attempt),
        &run.users_requested.map(|u| u as i64),
        &micros(run.created_at),
        &run.started_at.map(micros),
        &run.ended_at.map(micros),
        &(run.users_fetched as i64),
        &(run.users_published as i64),
        &api_errors,
        &run.error,
        &run.owner,
        &lease_until,
    ];
    tx.execute(
        "INSERT INTO job_runs (run_id, job, slot, trigger, status, attempt, users_requested, \
         created_at, started_at, ended_at, users_fetched, users_published, api_errors, error, \
         owner, lease_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (run_id) DO UPDATE SET status = $5, attempt = $6, started_at = $9, \
         ended_at = $10, users_fetched = $11, users_published = $12, api_errors = $13, \
         error = $14, owner = $15, lease_until = $16",
        &params,
    )
    .await
    .map_err(PgError::op("write run"))?;
    Ok(())
}

async fn lock_job(tx: &deadpool_postgres::Transaction<'_>, job: &str) -> Result<(), HistoryError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&JOB_LOCK_CLASS, &job],
    )
    .await
    .map_err(PgError::op("lock job"))?;
    Ok(())
}

#[async_trait::async_trait]
impl RunHistory for PostgresRunHistory {
    async fn insert(
        &self,
        run: NewRun,
        admission: Admission,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        let mut client = self.pg.pool().get().await.map_err(PgError::from)?;
        let tx = client.transaction().await.map_err(PgError::op("begin"))?;
        lock_job(&tx, &run.job).await?;
        if let Some(slot) = run.slot {
            let taken = tx
                .query_opt(
                    "SELECT 1 FROM job_runs WHERE job = $1 AND slot = $2",
                    &[&run.job, &micros(slot)],
                )
                .await
                .map_err(PgError::op("look up slot"))?;
            if taken.is_some() {
                return Ok(None);
            }
        }
        let pending = tx
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'queued'), \
                 count(*) FILTER (WHERE status = 'running' AND lease_until >= $2) \
                 FROM job_runs WHERE job = $1 AND status IN ('queued', 'running')",
                &[&run.job, &micros(now)],
            )
            .await
            .map_err(PgError::op("count pending runs"))?;
        let (queued, live): (i64, i64) = (pending.get(0), pending.get(1));
        let refusal = admission.refusal(queued.unsigned_abs(), live.unsigned_abs());
        let record = new_record(run, refusal, now);
        write(&tx, &record, None).await?;
        tx.commit().await.map_err(PgError::op("commit"))?;
        Ok(Some(record))
    }

    async fn claim(
        &self,
        job: &str,
        run_id: Option<&str>,
        lease: &Lease,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        let mut client = self.pg.pool().get().await.map_err(PgError::from)?;
        let tx = client.transaction().await.map_err(PgError::op("begin"))?;
        lock_job(&tx, job).await?;
        let lapsed = tx
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM job_runs WHERE job = $1 AND status = 'running' \
                     AND lease_until < $2 FOR UPDATE"
                ),
                &[&job, &micros(now)],
            )
            .await
            .map_err(PgError::op("look for lapsed leases"))?;
        for mut run in records(lapsed)? {
            lapse(&mut run, max_attempts, now);
            write(&tx, &run, None).await?;
        }
        let live: i64 = tx
            .query_one(
                "SELECT count(*) FROM job_runs WHERE job = $1 AND status = 'running'",
                &[&job],
            )
            .await
            .map_err(PgError::op("look for live runs"))?
            .get(0);
        let next = if live > 0 {
            None
        } else {
            let rows = tx
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM job_runs WHERE job = $1 AND status = 'queued' \
                         AND ($2::TEXT IS NULL OR run_id = $2) ORDER BY created_at, slot LIMIT 1"
                    ),
                    &[&job, &run_id],
                )
                .await
                .map_err(PgError::op("look for queued runs"))?;
            records(rows)?.pop()
        };
        let claimed = match next {
            Some(mut run) => {
                start(&mut run, lease, now);
                write(&tx, &run, stored_lease(&run, lease)).await?;
                Some(run)
            }
            None => None,
        };
        tx.commit().await.map_err(PgError::op("commit"))?;
        Ok(claimed)
    }

    async fn update(
        &self,
        run: &RunRecord,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<bool, HistoryError> {
        let mut client = self.pg.pool().get().await.map_err(PgError::from)?;
        let tx = client.transaction().await.map_err(PgError::op("begin"))?;
        // FOR UPDATE: a claim that found this lease lapsed holds the row until it commits, and
        // this check then sees its outcome.
        let holder = tx
            .query_opt(
                "SELECT owner, status, lease_until FROM job_runs WHERE run_id = $1 FOR UPDATE",
                &[&run.run_id],
            )
            .await
            .map_err(PgError::op("read lease"))?;
        let held = holder.is_some_and(|row| {
            let owner: Option<String> = row.get(0);
            let status: String = row.get(1);
            lease_held((owner.as_deref(), &status, row.get(2)), lease, now)
        });
        if !held {
            return Ok(false);
        }
        write(&tx, run, stored_lease(run, lease)).await?;
        tx.commit().await.map_err(PgError::op("commit"))?;
        Ok(true)
    }

    async fn cancel_queued(
        &self,
        run_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, HistoryError> {
        let client = self.pg.pool().get().await.map_err(PgError::from)?;
        let changed = client
            .execute(
                "UPDATE job_runs SET status = 'failed', error = $2, ended_at = $3 \
                 WHERE run_id = $1 AND status = 'queued'",
                &[&run_id, &reason, &micros(now)],
            )
            .await
            .map_err(PgError::op("cancel run"))?;
        Ok(changed == 1)
    }

    async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, HistoryError> {
        let client = self.pg.pool().get().await.map_err(PgError::from)?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM job_runs WHERE run_id = $1"),
                &[&run_id],
            )
            .await
            .map_err(PgError::op("read run"))?;
        Ok(records(rows)?.pop())
    }

    async fn list(&self, job: Option<&str>, limit: usize) -> Result<Vec<RunRecord>, HistoryError> {
        let client = self.pg.pool().get().await.map_err(PgError::from)?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM job_runs WHERE ($1::TEXT IS NULL OR job = $1) \
                     ORDER BY created_at DESC, slot DESC LIMIT $2"
                ),
                &[&job, &(limit as i64)],
            )
            .await
            .map_err(PgError::op("list runs"))?;
        records(rows)
    }

    async fn last_slot(&self, job: &str) -> Result<Option<DateTime<Utc>>, HistoryError> {
        let client = self.pg.pool().get().await.map_err(PgError::from)?;
        let last: Option<i64> = client
            .query_one("SELECT max(slot) FROM job_runs WHERE job = $1", &[&job])
            .await
            .map_err(PgError::op("read last slot"))?
            .get(0);
        last.map(super::from_micros).transpose()
    }
}
