//! A Confluent-compatible Schema Registry: the server userstream embeds for users who have none
//! (`userstream serve-registry`), and the client the Kafka path uses against it or any external
//! registry (Confluent, Karapace).
//!
//! * [`store`]: subjects, versions, schemas and compatibility settings in SQLite, durably.
//! * [`compat`]: Avro compatibility levels (BACKWARD by default, as Confluent).
//! * [`server`]: the REST subset real clients use, with Confluent's status and error codes.
//! * [`client`]: register / look up by id, with a cache of parsed writer schemas.

pub mod client;
pub mod compat;
pub mod config;
pub mod error;
pub mod server;
pub mod store;

pub use client::RegistryClient;
pub use config::RegistryConfig;
pub use error::RegistryError;
pub use store::RegistryStore;
