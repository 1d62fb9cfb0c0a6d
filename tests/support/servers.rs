//! The real servers alone, for `cargo bench` (which cannot use the rest of `support`: the
//! scenarios there name the test-only `CARGO_BIN_EXE_userstream`).

#![allow(dead_code)] // each bench uses one server

#[path = "cassandra.rs"]
pub mod cassandra;
#[path = "certs.rs"]
pub mod certs;
#[path = "java.rs"]
pub mod java;
#[path = "kafka_cluster.rs"]
pub mod kafka_cluster;
