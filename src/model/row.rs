//! The `created_users` row, exactly the columns of the tutorials' Cassandra table (DATA.md).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

/// One stored user. `id` is the API's `login.uuid`, which makes every write idempotent: the same
/// user fetched, logged or replayed twice lands on the same row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub gender: String,
    /// `"{street.number} {street.name}, {city}, {state}, {country}"`.
    pub address: String,
    /// Always text: the API mixes numbers and strings.
    pub post_code: String,
    pub email: String,
    pub username: String,
    #[serde(serialize_with = "serialize_timestamp")]
    pub dob: DateTime<Utc>,
    #[serde(serialize_with = "serialize_timestamp")]
    pub registered_date: DateTime<Utc>,
    pub phone: String,
    /// `picture.medium`.
    pub picture: String,
    /// When the user was fetched from the API (seed 004's column), to the millisecond. It comes
    /// from the raw log (or the Kafka message carrying the record), never from the clock at write
    /// time, so a record processed twice is written with the same value.
    #[serde(serialize_with = "serialize_timestamp")]
    pub timestamp: DateTime<Utc>,
}

/// Column names in storage order; shared by every store so `query` output looks the same everywhere.
pub const COLUMNS: [&str; 13] = [
    "id",
    "first_name",
    "last_name",
    "gender",
    "address",
    "post_code",
    "email",
    "username",
    "dob",
    "registered_date",
    "phone",
    "picture",
    "timestamp",
];

/// Timestamps are stored as RFC 3339 text with millisecond precision, the API's own precision, so
/// they sort lexically and compare equal after a round trip.
pub fn format_timestamp(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A fetch time in microseconds (as the log keeps it) at the row's millisecond precision, the
/// precision of a CQL `timestamp`, so every store returns exactly the value it was given.
pub fn fetch_timestamp(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(micros.div_euclid(1000)).unwrap_or_default()
}

fn serialize_timestamp<S: serde::Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(ts))
}

impl UserRow {
    /// The row's values as text in [`COLUMNS`] order, for table output.
    pub fn values(&self) -> [String; 13] {
        [
            self.id.to_string(),
            self.first_name.clone(),
            self.last_name.clone(),
            self.gender.clone(),
            self.address.clone(),
            self.post_code.clone(),
            self.email.clone(),
            self.username.clone(),
            format_timestamp(&self.dob),
            format_timestamp(&self.registered_date),
            self.phone.clone(),
            self.picture.clone(),
            format_timestamp(&self.timestamp),
        ]
    }
}
