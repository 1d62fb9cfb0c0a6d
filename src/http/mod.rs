//! The one HTTP server of a process. Everything served over HTTP is a router mounted here:
//! `serve-api`'s randomuser.me imitation, the Schema Registry, `/metrics`, the health endpoints
//! (and the coming console), so they share one way to bind, one graceful shutdown, and, in
//! `run`, one listener (`[http] listen`).

pub mod auth;
pub mod config;
pub mod health;
pub mod metrics;
pub mod server;

pub use config::HttpConfig;
pub use health::{Probe, Readiness};
pub use server::{bind, serve};
