//! userstream: the randomuser.me -> Kafka -> Spark -> Cassandra tutorial stack as one Rust program.
//!
//! The crate is laid out by component, in the order data flows through them:
//!
//! * [`source`]: where user records come from (the randomuser.me API, a built-in generator, and a
//!   local randomuser.me-compatible server backed by that generator).
//! * [`ingest`]: pulls pages from a source on a schedule, strips credentials and appends the raw
//!   records to the [`log`] together with the paging cursor, atomically.
//! * [`log`]: the durable, ordered record of everything fetched (the outbox for later buses).
//! * [`process`]: validates and transforms each raw record into a [`model::UserRow`].
//! * [`sink`]: stores rows, dead letters and the processor's read position in one transaction.
//! * [`postgres`]: the pool, TLS and migrations the PostgreSQL log and store share.
//! * [`pipeline`], [`bench`], [`commands`]: the wiring the CLI exposes.
//! * [`http`]: the one HTTP server every served router mounts on; [`telemetry`]: log lines,
//!   metrics (as named events) and progress.
//!
//! `docs/ARCHITECTURE.md` explains where each delivery guarantee is enforced.

pub mod audit;
pub mod avro;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error_chain;
pub mod http;
pub mod ingest;
pub mod log;
pub mod model;
pub mod pipeline;
pub mod postgres;
pub mod process;
pub mod registry;
pub mod scheduler;
pub mod sink;
pub mod source;
pub mod sqlite;
pub mod supervisor;
pub mod telemetry;
pub mod tls;
