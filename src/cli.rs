//! The command line: every command, its flags and an example, as `--help` shows them.

use crate::config::SourceKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "userstream",
    version,
    about = "Stream random user profiles from randomuser.me into a queryable store, in one binary",
    after_help = "Examples:\n  userstream run                      # generator -> log -> store, until Ctrl-C\n  userstream run --source randomuser  # the real API, within its rate limit\n  userstream query latest 5\n  userstream bench --users 1000000"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file [default: ./userstream.toml if it exists]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "USERSTREAM_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Directory of the embedded log and store (overrides `data_dir`)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); USERSTREAM_LOG takes a full filter
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Log lines as text (coloured on a terminal only) or one JSON object per line, for log
    /// shippers
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "USERSTREAM_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest on a schedule and process continuously until Ctrl-C (then drain and stop)
    #[command(
        after_help = "Example:\n  userstream run --rate 200 --batch-size 100\n  userstream run --source randomuser --max-users 1000"
    )]
    Run(RunArgs),
    /// Fetch pages into the raw log without processing them
    #[command(after_help = "Example:\n  userstream ingest --once --batch-size 5000")]
    Ingest(IngestArgs),
    /// Process the raw log into the store (until caught up, or forever with --follow)
    #[command(after_help = "Example:\n  userstream process\n  userstream process --follow")]
    Process(ProcessArgs),
    /// Query stored users
    #[command(
        after_help = "Examples:\n  userstream query count\n  userstream query get 7a0eed16-9430-4d68-901f-c0d4c1c3bf00\n  userstream query latest 10 --format json\n  userstream query find --country Germany --gender female"
    )]
    Query(QueryArgs),
    /// Inspect the dead-letter queue (records that failed validation, with the reason)
    #[command(after_help = "Example:\n  userstream dlq list --limit 20\n  userstream dlq count")]
    Dlq(DlqArgs),
    /// Check that every logged user is stored or dead-lettered and nothing else is stored
    /// (exits non-zero when it does not balance)
    #[command(
        after_help = "Examples:\n  userstream audit\n  userstream audit --show 100 --format json"
    )]
    Audit(AuditArgs),
    /// Scheduled ingest jobs (`[[jobs]]`): list them, show their runs, trigger one, or run the
    /// scheduler alone
    #[command(
        after_help = "Examples:\n  userstream jobs                       # jobs and when each is next due\n  userstream jobs runs hourly --format json\n  userstream jobs trigger hourly --users 500   # exit 0 succeeded, 1 failed, 99 skipped\n  userstream jobs schedule              # the scheduler only; pair with `process --follow`"
    )]
    Jobs(JobsArgs),
    /// Measure the whole embedded pipeline: throughput, end-to-end latency, peak memory
    #[command(
        after_help = "Examples:\n  userstream bench                    # 1,000,000 users, full speed\n  userstream bench --users 60000 --rate 1000"
    )]
    Bench(BenchArgs),
    /// Serve a randomuser.me-compatible API backed by the built-in generator
    #[command(
        after_help = "Example:\n  userstream serve-api --addr 127.0.0.1:8000\n  curl 'http://127.0.0.1:8000/api/?results=2&seed=abc&nat=gb'"
    )]
    ServeApi(ServeApiArgs),
    /// Serve a Confluent-compatible Schema Registry (schemas kept in DATA_DIR/registry.db)
    #[command(
        after_help = "Example:\n  userstream serve-registry --addr 127.0.0.1:8081\n  curl http://127.0.0.1:8081/subjects"
    )]
    ServeRegistry(ServeRegistryArgs),
}

/// Which users to fetch and how fast; every flag overrides the `[ingest]` config key of its name.
#[derive(Debug, Args, Clone, Default)]
pub struct SourceArgs {
    /// Where users come from [config: ingest.source; default: generator]
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,
    /// URL of a randomuser.me-compatible API; implies --source randomuser
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Users per request, 1..=5000
    #[arg(long, short = 'b', value_name = "N")]
    pub batch_size: Option<u32>,
    /// Paging seed (reproducible users); a random one is kept in the log if unset
    #[arg(long)]
    pub seed: Option<String>,
    /// Nationalities, comma-separated (e.g. GB,FR)
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    pub nat: Option<Vec<String>>,
    /// Stop once the first N users of the seed are in the log (counted across restarts, so a
    /// restarted run ends at the same page; rounded up to whole pages)
    #[arg(long, value_name = "N")]
    pub max_users: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Time between requests, e.g. 500ms, 10s [config: ingest.interval]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Option<Duration>,
    /// Users per second (sets the interval from the batch size) [config: ingest.rate]
    #[arg(long, value_name = "USERS_PER_SEC")]
    pub rate: Option<f64>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Fetch a single page and exit (the default unless --max-users is given)
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Keep processing new records until Ctrl-C
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub query: Query,
    /// Output format
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum Query {
    /// Number of stored users
    Count,
    /// One user by id (login.uuid)
    Get {
        #[arg(value_parser = parse_uuid)]
        id: uuid::Uuid,
    },
    /// The most recently stored users
    Latest {
        #[arg(default_value_t = 10)]
        n: usize,
    },
    /// Users by country and/or gender
    Find {
        /// Country name as the API writes it, e.g. "United Kingdom" (case-insensitive)
        #[arg(long)]
        country: Option<String>,
        /// male or female
        #[arg(long)]
        gender: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters, newest first, with reason and raw record
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Number of dead letters
    Count,
    /// Process dead letters again after a fix: each ends stored, or dead-lettered again with
    /// the reason it fails for now. Safe to repeat.
    #[command(
        after_help = "Examples:\n  userstream dlq redrive --dry-run\n  userstream dlq redrive --reason \"unknown schema id\""
    )]
    Redrive {
        /// Only dead letters whose reason contains this text
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Show what would happen to each; write nothing
        #[arg(long)]
        dry_run: bool,
        #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs with their schedule, size, next due time and last run (the default)
    List,
    /// Runs, newest first
    Runs {
        /// Only this job's runs
        name: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Run a job now, in this process, and wait for its end (recorded as a manual run). The
    /// last line of stdout is the run as JSON. Exit code: 0 succeeded, 1 failed or timed out,
    /// 99 skipped (the job was busy under overlap = skip, or max_queued runs already waited)
    Trigger {
        name: String,
        /// Users to fetch, instead of the job's size
        #[arg(long, value_name = "N")]
        users: Option<u64>,
    },
    /// Run the scheduler until Ctrl-C: ingest jobs into the log, nothing else (`run` does the
    /// same and processes too)
    Schedule,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Ids listed per finding (the counts are always complete)
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub show: usize,
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Users to push through the pipeline
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    pub users: u64,
    /// Hold a steady input rate (users/s) instead of going full speed
    #[arg(long, value_name = "USERS_PER_SEC")]
    pub rate: Option<f64>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Measure the Kafka path against these brokers (sets `kafka.brokers`)
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// An external Schema Registry for the Kafka path (sets `registry.url`)
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// Consumer-group members to run in the bench process (Kafka path)
    #[arg(long, default_value_t = 1)]
    pub processors: usize,
}

#[derive(Debug, Args)]
pub struct ServeApiArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ServeRegistryArgs {
    /// Address to listen on (Confluent's default port is 8081)
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub addr: SocketAddr,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))
}

fn parse_uuid(text: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(text).map_err(|e| {
        format!("not a user id (a UUID like 7a0eed16-9430-4d68-901f-c0d4c1c3bf00): {e}")
    })
}
