//! Compatibility levels, with Confluent's meaning: BACKWARD = consumers using the new schema can
//! read data written with the previous one; the `_TRANSITIVE` forms check every earlier version.

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

pub const LEVELS: [&str; 7] = [
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

pub const DEFAULT_LEVEL: &str = "BACKWARD";

/// Normalises a level name, or `None` if it isn't one.
pub fn parse_level(name: &str) -> Option<&'static str> {
    let upper = name.trim().to_ascii_uppercase();
    LEVELS.iter().copied().find(|l| *l == upper)
}

/// Checks `new` against `existing` (oldest first) under `level`; `Err` says why not.
pub fn check(level: &str, new: &Schema, existing: &[Schema]) -> Result<(), String> {
    let against: &[Schema] = match level {
        "NONE" => return Ok(()),
        l if l.ends_with("_TRANSITIVE") => existing,
        _ => existing.last().map(std::slice::from_ref).unwrap_or(&[]),
    };
    for old in against {
        let backward = || {
            SchemaCompatibility::can_read(old, new)
                .map_err(|e| format!("new schema cannot read old data: {e}"))
        };
        let forward = || {
            SchemaCompatibility::can_read(new, old)
                .map_err(|e| format!("old schema cannot read new data: {e}"))
        };
        match level.trim_end_matches("_TRANSITIVE") {
            "BACKWARD" => backward()?,
            "FORWARD" => forward()?,
            _ => {
                backward()?;
                forward()?;
            }
        }
    }
    Ok(())
}
