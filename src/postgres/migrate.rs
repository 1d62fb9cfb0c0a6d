//! Versioned schema migrations: each component (log, store) has an ordered list; the versions
//! applied are recorded in `userstream_migrations`, and every run applies the missing ones in one
//! transaction under an advisory lock, so concurrent starts of many processes are safe.

use super::{PgError, Postgres};

/// One schema step. Never edit a released migration; add the next version.
pub struct Migration {
    pub version: i32,
    pub sql: &'static str,
}

/// Arbitrary constant naming our advisory lock.
const MIGRATION_LOCK: i64 = 0x7573_6572_7374_7265; // "userstre"

pub async fn migrate(
    pg: &Postgres,
    component: &str,
    migrations: &[Migration],
) -> Result<(), PgError> {
    async {
        let mut client = pg.pool().get().await?;
        let tx = client
            .transaction()
            .await
            .map_err(PgError::op("begin migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(PgError::op("lock migrations"))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS userstream_migrations (
                 component  TEXT        NOT NULL,
                 version    INTEGER     NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                 PRIMARY KEY (component, version))",
        )
        .await
        .map_err(PgError::op("create migrations table"))?;
        let row = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM userstream_migrations WHERE component = $1",
                &[&component],
            )
            .await
            .map_err(PgError::op("read schema version"))?;
        let current: i32 = row.get(0);
        for migration in migrations.iter().filter(|m| m.version > current) {
            tx.batch_execute(migration.sql)
                .await
                .map_err(PgError::op("apply migration"))?;
            tx.execute(
                "INSERT INTO userstream_migrations (component, version) VALUES ($1, $2)",
                &[&component, &migration.version],
            )
            .await
            .map_err(PgError::op("record migration"))?;
            tracing::info!(
                component,
                version = migration.version,
                "applied PostgreSQL migration"
            );
        }
        tx.commit().await.map_err(PgError::op("commit migration"))
    }
    .await
}
