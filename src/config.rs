//! Configuration: built-in defaults, then a TOML file, then `USERSTREAM_*` environment variables,
//! then command-line flags (applied by each command), each layer overriding the one before.
//!
//! Every key is checked: an unknown key or a bad value is an error naming the key and where it came
//! from, never a silently ignored setting.

use crate::bus::kafka::KafkaOptions;
use crate::http::HttpConfig;
use crate::postgres::PostgresOptions;
use crate::registry::RegistryConfig;
use crate::scheduler::config::validate_jobs;
use crate::scheduler::{JobConfig, SchedulerConfig};
use crate::sink::cassandra::CassandraOptions;
use crate::source::generator::validate_nationalities;
use crate::source::randomuser::ClientConfig;
use crate::source::randomuser::config::MAX_RESULTS;
use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "userstream.toml";

/// The API's published limit per IP, which no configuration may exceed against the real API.
pub const API_USERS_PER_5_MIN: u32 = 20_000;

/// The longest time between fetches a rate may ask for: beyond a day, a rate is a typo (and
/// beyond ~10^19 s no `Duration` can hold it).
pub const MAX_FETCH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded log and store live (`log.db`, `store.db`).
    pub data_dir: PathBuf,
    pub ingest: IngestConfig,
    pub randomuser: ClientConfig,
    pub process: ProcessConfig,
    pub store: StoreConfig,
    /// Where raw records are kept.
    pub log: LogConfig,
    /// The old name of `[log]`, still read (with a warning) so existing files keep working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<LogConfig>,
    /// Pool and TLS settings for every PostgreSQL connection.
    pub postgres: PostgresOptions,
    /// Keyspace, replication, consistency, credentials and TLS for `[store] cassandra`.
    pub cassandra: CassandraOptions,
    /// When `brokers` is set, records travel log -> Kafka -> processor (see `bus::kafka`).
    pub kafka: KafkaOptions,
    /// The Schema Registry of the Kafka path: our embedded one, or `url`.
    pub registry: RegistryConfig,
    /// Where `run` and `process --follow` serve `/metrics` and the health endpoints.
    pub http: HttpConfig,
    /// Scheduled ingest jobs (`[[jobs]]`); when any is set, `run` ingests through them.
    pub jobs: Vec<JobConfig>,
    /// How the processes running jobs share them (leases, the run history's database).
    pub scheduler: SchedulerConfig,
}

/// Where rows go; the embedded SQLite store under `data_dir` unless a server is named.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:password@host:5432/db?sslmode=require`: PostgreSQL as the final store.
    pub postgres: Option<String>,
    /// `host1:9042,host2:9042`: a Cassandra or ScyllaDB cluster as the final store.
    pub cassandra: Option<String>,
}

/// Where raw records are kept (the log); the embedded SQLite log under `data_dir` by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `postgres://...`: the raw log in PostgreSQL.
    pub postgres: Option<String>,
}

/// Which source ingest pulls from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The built-in generator: offline, reproducible, unlimited.
    Generator,
    /// An HTTP randomuser.me API: the real one by default, or `[randomuser] url`.
    Randomuser,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub source: SourceKind,
    /// Users per request (the API's `results`, 1..=5000).
    pub batch_size: u32,
    /// Time between requests; `0s` means back to back.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Users per second; when set, the interval becomes `batch_size / rate`.
    pub rate: Option<f64>,
    /// Paging seed; a random one is chosen (and kept in the log) when unset.
    pub seed: Option<String>,
    /// Nationalities to request (`US`, `GB`, ...); empty means all.
    pub nat: Vec<String>,
    /// Stop once the first this-many users of the seed are in the log (counted on the stored
    /// cursor, so across restarts; rounded up to whole pages); unset means run until stopped.
    pub max_users: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Most log records per store transaction.
    pub batch_size: usize,
    /// How often a processor with no in-process ingest looks for new records.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Attempts at committing one batch before the processor stops with an error. The default,
    /// 12, waits about 75 s in all: long enough for a database node to restart.
    pub commit_attempts: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("userstream-data"),
            ingest: IngestConfig::default(),
            randomuser: ClientConfig::default(),
            process: ProcessConfig::default(),
            store: StoreConfig::default(),
            log: LogConfig::default(),
            backup: None,
            postgres: PostgresOptions::default(),
            cassandra: CassandraOptions::default(),
            kafka: KafkaOptions::default(),
            registry: RegistryConfig::default(),
            http: HttpConfig::default(),
            jobs: Vec::new(),
            scheduler: SchedulerConfig::default(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Generator,
            batch_size: 100,
            interval: Duration::from_secs(1),
            rate: None,
            seed: None,
            nat: Vec::new(),
            max_users: None,
        }
    }
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            // Big batches amortise the index pages every commit rewrites (see sink/sqlite.rs):
            // 20000 ran the 1M-user bench 30% faster than 5000. Small loads make small batches.
            batch_size: 20_000,
            poll_interval: Duration::from_millis(200),
            commit_attempts: 12,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (or `userstream.toml` if present), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.is_file() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        // `USERSTREAM_INGEST__BATCH_SIZE=500` sets `ingest.batch_size`. `USERSTREAM_CONFIG`,
        // `USERSTREAM_LOG` and `USERSTREAM_LOG_FORMAT` belong to the command line and the logger,
        // not to this file's keys (`USERSTREAM_LOG__POSTGRES` is `[log] postgres`).
        let env = Env::prefixed("USERSTREAM_")
            .split("__")
            .ignore(&["config", "log", "log_format"]);
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|err| anyhow::anyhow!("invalid configuration: {}", describe(err)))?;
        let mut config = config;
        if let Some(old) = config.backup.take() {
            if config.log.postgres.is_some() {
                bail!(
                    "both [log] and [backup] (its old name) are set; keep [log] (USERSTREAM_LOG__POSTGRES)"
                );
            }
            tracing::warn!(
                "[backup] is now called [log] (USERSTREAM_BACKUP__* is USERSTREAM_LOG__*); the old name still works for now"
            );
            config.log = old;
        }
        config.apply_registry();
        Ok(config)
    }

    /// Points the Kafka path at `[registry]`; run again after changing `registry`.
    pub fn apply_registry(&mut self) {
        self.kafka.registry_url = self.registry.client_url();
        self.kafka.serve_registry = self.registry.serves();
    }

    /// Checks values that are well-typed but wrong; run after command-line overrides.
    pub fn validate(&self) -> anyhow::Result<()> {
        let ingest = &self.ingest;
        if !(1..=MAX_RESULTS).contains(&ingest.batch_size) {
            bail!(
                "ingest.batch_size = {} is out of range: the API serves 1..={MAX_RESULTS} users per request",
                ingest.batch_size
            );
        }
        if let Some(rate) = ingest.rate {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("ingest.rate = {rate} must be a positive number of users per second");
            }
            let interval = f64::from(ingest.batch_size) / rate;
            if interval > MAX_FETCH_INTERVAL.as_secs_f64() {
                bail!(
                    "ingest.rate = {rate:e} is too low: one page of {} users every {interval:.3e} s; \
                     the longest interval is {MAX_FETCH_INTERVAL:?}",
                    ingest.batch_size
                );
            }
        }
        if ingest.max_users == Some(0) {
            bail!("ingest.max_users = 0 would fetch nothing; leave it unset to run until stopped");
        }
        validate_nationalities(&ingest.nat).context("ingest.nat")?;
        if self.process.batch_size == 0 {
            bail!("process.batch_size must be at least 1");
        }
        if self.process.commit_attempts == 0 {
            bail!("process.commit_attempts must be at least 1");
        }
        for (key, url) in [
            ("store.postgres", &self.store.postgres),
            ("log.postgres", &self.log.postgres),
            ("scheduler.postgres", &self.scheduler.postgres),
        ] {
            if let Some(url) = url {
                url.parse::<tokio_postgres::Config>().map_err(|e| {
                    anyhow::anyhow!(
                        "{key} = {:?} is not a PostgreSQL URL: {e}",
                        crate::postgres::redact_url(url)
                    )
                })?;
            }
        }
        if self.store.postgres.is_some() && self.store.cassandra.is_some() {
            bail!("store.postgres and store.cassandra are both set; choose one store");
        }
        if self.store.cassandra.is_some() {
            self.cassandra.validate().map_err(anyhow::Error::msg)?;
        }
        if self.kafka.brokers.is_some() {
            match &self.registry.url {
                Some(url) => {
                    reqwest::Url::parse(url)
                        .with_context(|| format!("registry.url = {url:?} is not a URL"))?;
                }
                None => {
                    self.registry
                        .listen
                        .parse::<std::net::SocketAddr>()
                        .with_context(|| {
                            format!(
                                "registry.listen = {:?} is not an address like 127.0.0.1:8081",
                                self.registry.listen
                            )
                        })?;
                }
            }
            if self.kafka.batch_size == 0 {
                bail!("kafka.batch_size must be at least 1");
            }
        }
        self.http.address()?;
        if let Some(token) = &self.http.token {
            token.validate()?;
        }
        validate_jobs(&self.jobs, &self.scheduler)?;
        if self.postgres.pool_size == Some(0) {
            bail!("postgres.pool_size must be at least 1");
        }
        if self.data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        let api = &self.randomuser;
        if api.max_attempts == 0 {
            bail!("randomuser.max_attempts must be at least 1");
        }
        if api.timeout.is_zero() {
            bail!("randomuser.timeout must be more than 0s");
        }
        if ingest.source == SourceKind::Randomuser {
            let url = reqwest::Url::parse(&api.url)
                .with_context(|| format!("randomuser.url = {:?} is not a URL", api.url))?;
            if !matches!(url.scheme(), "http" | "https") {
                bail!(
                    "randomuser.url = {:?} is not an http:// or https:// URL",
                    api.url
                );
            }
            let per_window = api.budget_per_window();
            let over_limit = per_window == 0
                || per_window > API_USERS_PER_5_MIN
                || api.window < Duration::from_secs(300);
            if api.is_public_api() && over_limit {
                bail!(
                    "randomuser.users_per_window = {per_window} per {:?} exceeds randomuser.me's published limit of \
                     {API_USERS_PER_5_MIN} users per 5 minutes per IP",
                    api.window
                );
            }
            if per_window != 0 && ingest.batch_size > per_window {
                bail!(
                    "ingest.batch_size = {} exceeds randomuser.users_per_window = {per_window}: no request could ever be sent",
                    ingest.batch_size,
                );
            }
        }
        Ok(())
    }

    /// The time between fetches the schedule should keep.
    pub fn fetch_interval(&self) -> Duration {
        match self.ingest.rate {
            // Validated to fit; a config that skipped validation waits the longest allowed.
            Some(rate) => Duration::try_from_secs_f64(f64::from(self.ingest.batch_size) / rate)
                .map_or(MAX_FETCH_INTERVAL, |d| d.min(MAX_FETCH_INTERVAL)),
            None => self.ingest.interval,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("log.db")
    }

    /// The embedded metadata database: the run history when no PostgreSQL holds it.
    pub fn meta_path(&self) -> PathBuf {
        self.data_dir.join("meta.db")
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("store.db")
    }

    /// Creates the data directory, naming it if that fails.
    pub fn ensure_data_dir(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))
    }
}

/// One line per problem, each naming the key and its source.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!(" (key `{}`)", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" in {} {src}", m.name),
                    None => format!(" in {}", m.name),
                })
                .unwrap_or_default();
            format!("{}{key}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
