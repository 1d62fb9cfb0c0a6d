//! `[cassandra]`: how to reach and write to a Cassandra or ScyllaDB cluster.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraOptions {
    /// The tutorials' keyspace.
    pub keyspace: String,
    /// Replication strategy class for `CREATE KEYSPACE IF NOT EXISTS`.
    pub replication_class: String,
    /// Replication factor (SimpleStrategy) or per-datacenter factors, e.g. `"dc1:3,dc2:3"`
    /// (NetworkTopologyStrategy).
    pub replication_factor: String,
    /// Consistency of every write and read: ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM,
    /// EACH_QUORUM, LOCAL_ONE.
    pub consistency: String,
    /// Most writes in flight at once per batch.
    pub concurrency: usize,
    /// Attempts per write on timeouts, overload and unavailability, with exponential backoff.
    pub write_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Wait for all nodes to agree on the schema after DDL; only a test server without
    /// `system.peers` support needs this off.
    pub await_schema_agreement: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Connect with TLS (rustls), verifying the server against the public roots and `ca_file`.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
}

impl Default for CassandraOptions {
    fn default() -> Self {
        Self {
            keyspace: "spark_streams".into(),
            replication_class: "SimpleStrategy".into(),
            replication_factor: "1".into(),
            consistency: "LOCAL_QUORUM".into(),
            concurrency: 256,
            write_attempts: 5,
            request_timeout: Duration::from_secs(12),
            await_schema_agreement: true,
            username: None,
            password: None,
            tls: false,
            ca_file: None,
        }
    }
}

impl CassandraOptions {
    /// The replication map of `CREATE KEYSPACE`, from class and factor(s).
    pub fn replication_map(&self) -> Result<String, String> {
        let ident_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        if !ident_ok(&self.replication_class) {
            return Err(format!(
                "cassandra.replication_class = {:?} is not a class name",
                self.replication_class
            ));
        }
        let factors: Vec<(Option<&str>, &str)> = self
            .replication_factor
            .split(',')
            .map(|part| match part.split_once(':') {
                Some((dc, n)) => (Some(dc.trim()), n.trim()),
                None => (None, part.trim()),
            })
            .collect();
        let mut map = format!("{{'class': '{}'", self.replication_class);
        for (dc, n) in factors {
            if n.parse::<u32>().map_or(true, |n| n == 0) || dc.is_some_and(|dc| !ident_ok(dc)) {
                return Err(format!(
                    "cassandra.replication_factor = {:?} must be a positive number or \"dc:n,dc:n\"",
                    self.replication_factor
                ));
            }
            map.push_str(&format!(
                ", '{}': '{n}'",
                dc.unwrap_or("replication_factor")
            ));
        }
        map.push('}');
        Ok(map)
    }

    pub fn validate(&self) -> Result<(), String> {
        self.replication_map()?;
        if !self
            .keyspace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || self.keyspace.is_empty()
        {
            return Err(format!(
                "cassandra.keyspace = {:?} is not a valid keyspace name",
                self.keyspace
            ));
        }
        super::consistency(&self.consistency)?;
        if self.concurrency == 0 || self.write_attempts == 0 {
            return Err(
                "cassandra.concurrency and cassandra.write_attempts must be at least 1".into(),
            );
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("cassandra.username and cassandra.password go together".into());
        }
        Ok(())
    }
}
