//! Avro for the Kafka path: the `users_created` value schema ([`schema`]) and the Confluent wire
//! format with writer schemas resolved by id ([`wire`]).

mod codec;
pub mod schema;
pub mod wire;

pub use schema::{USER_SCHEMA, user_schema};
pub use wire::{
    AvroError, decode_frame, decode_user, encode_frame, encode_user, encode_user_keyed,
};
