//! PostgreSQL access shared by the PostgreSQL log ([`crate::log::PostgresLog`]) and store
//! ([`crate::sink::PostgresStore`]): a connection pool, TLS, and versioned migrations.
//!
//! Everything is async on the process's one runtime: the pool's connections are driven by it, so
//! any number of components and processors share it without runtimes of their own.

pub mod migrate;
pub mod tls;

pub use migrate::{Migration, migrate};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach a PostgreSQL server. TLS follows the URL's `sslmode` (`disable`, `prefer`,
/// `require`), as with libpq; `ca_file` adds a private CA to the public roots.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresOptions {
    /// Connections in the pool (concurrent statements).
    pub pool_size: Option<usize>,
    /// PEM file of an extra certificate authority.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL {op}: {source}")]
    Postgres {
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL connection pool: {0}")]
    Pool(String),
    #[error("PostgreSQL URL {url}: {reason}")]
    Config { url: String, reason: String },
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
}

impl PgError {
    pub fn op(op: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        move |source| PgError::Postgres { op, source }
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        // The pool's own message can hide the cause, which the chain names.
        PgError::Pool(crate::error_chain::describe(&err))
    }
}

/// A pool of connections.
pub struct Postgres {
    pool: Pool,
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

impl Postgres {
    /// Builds the pool and checks that a connection can be made.
    pub async fn connect(url: &str, options: &PostgresOptions) -> Result<Self, PgError> {
        let config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| PgError::Config {
                    url: redact_url(url),
                    reason: e.to_string(),
                })?;
        let tls = tls::connector(options.ca_file.as_deref())?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.unwrap_or(8))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let pg = Self { pool };
        async {
            let client = pg.pool.get().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(PgError::op("connect"))?;
            Ok::<_, PgError>(())
        }
        .await
        .map_err(|e| match e {
            PgError::Pool(reason) => PgError::Config {
                url: redact_url(url),
                reason: format!("cannot connect: {reason}"),
            },
            other => other,
        })?;
        Ok(pg)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}
