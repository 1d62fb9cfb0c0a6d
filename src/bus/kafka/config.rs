//! `[kafka]`: brokers, topics, and any librdkafka property passed through unchanged (TLS, SASL,
//! tuning), so Kafka users configure it the way they already know.

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaOptions {
    /// `host1:9092,host2:9092`; the Kafka path is off while unset.
    pub brokers: Option<String>,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    /// For creating `topic` if it is missing (the dead-letter topic gets one partition).
    pub partitions: i32,
    pub replication: i32,
    /// Schema Registry the Avro schema is registered in. Not a `[kafka]` key: derived from
    /// `[registry]` by `Config::load` (and set directly by code that builds options itself).
    #[serde(skip)]
    pub registry_url: String,
    /// Whether `run` serves our own registry; derived from `[registry]` like `registry_url`.
    #[serde(skip)]
    pub serve_registry: bool,
    /// Consumer-group members `run` starts in its own process (more can join from others).
    pub processors: usize,
    /// Records per relay batch and most messages per processed batch.
    pub batch_size: usize,
    /// librdkafka properties for every client, e.g. `"security.protocol" = "SASL_SSL"`.
    pub properties: BTreeMap<String, String>,
    /// Applied after `properties` to consumers only (e.g. `session.timeout.ms`), since
    /// librdkafka warns about every consumer property handed to a producer and vice versa.
    pub consumer_properties: BTreeMap<String, String>,
    /// Applied after `properties` to producers only (e.g. `linger.ms`).
    pub producer_properties: BTreeMap<String, String>,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        Self {
            brokers: None,
            topic: "users_created".into(),
            dlq_topic: "users_created.dlq".into(),
            group_id: "userstream".into(),
            partitions: 6,
            replication: 1,
            registry_url: "http://127.0.0.1:8081".into(),
            serve_registry: true,
            processors: 1,
            batch_size: 5000,
            properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
        }
    }
}

impl KafkaOptions {
    /// The subject of the value schema (TopicNameStrategy).
    pub fn subject(&self) -> String {
        format!("{}-value", self.topic)
    }

    /// A client config with our defaults first, then the user's pass-through properties.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set(
            "bootstrap.servers",
            self.brokers.as_deref().unwrap_or("localhost:9092"),
        );
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// [`client_config`](Self::client_config) plus `consumer_properties`.
    pub fn consumer_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = self.client_config(defaults);
        for (key, value) in &self.consumer_properties {
            config.set(key, value);
        }
        config
    }

    /// [`client_config`](Self::client_config) plus `producer_properties`.
    pub fn producer_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = self.client_config(defaults);
        for (key, value) in &self.producer_properties {
            config.set(key, value);
        }
        config
    }
}
