//! Validation and transform of one raw API record into a [`UserRow`], as DATA.md defines the row.
//!
//! This is a pure function of the record's bytes and its fetch time (both kept in the raw log): the
//! same record always gives the same row or the same rejection, which is what makes replays and
//! restarts produce the same exact result.

use crate::model::api::{ApiUser, Scalar};
use crate::model::redact::withheld_reason;
use crate::model::row::UserRow;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use uuid::Uuid;

/// Why a record was rejected; stored verbatim as the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Checked before parsing: serde would otherwise accept a JSON array as a struct's fields.
    #[error("not a JSON object: {0}")]
    NotObject(String),
    #[error("not a JSON user object: {0}")]
    NotJson(String),
    /// Ingest could not positively remove the record's credentials and withheld them
    /// ([`crate::model::redact::Redacted::Withheld`]); the reason says what was wrong.
    #[error("credentials withheld: {0}")]
    Withheld(String),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{field} is not a valid {expected}: {value:?}")]
    Malformed {
        field: &'static str,
        expected: &'static str,
        value: String,
    },
}

impl Invalid {
    /// The kind of failure, as the `error_type` label of the dead-letter metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Invalid::NotObject(_) => "not_object",
            Invalid::NotJson(_) => "not_json",
            Invalid::Withheld(_) => "credentials_withheld",
            Invalid::Missing(_) => "missing_field",
            Invalid::Empty(_) => "empty_field",
            Invalid::Malformed { .. } => "malformed_field",
        }
    }
}

/// Validates `raw` (one API record, credentials already removed) and builds its row, stamped with
/// `fetched_at` (the row's `timestamp`).
pub fn transform(raw: &str, fetched_at: DateTime<Utc>) -> Result<UserRow, Invalid> {
    if !raw.trim_start().starts_with('{') {
        return Err(Invalid::NotObject(raw.chars().take(60).collect()));
    }
    // Before the full parse: a withheld record may no longer parse as a user at all, and its own
    // reason is the one to keep.
    if let Some(reason) = withheld_reason(raw) {
        return Err(Invalid::Withheld(reason));
    }
    let user: ApiUser<'_> =
        serde_json::from_str(raw).map_err(|err| Invalid::NotJson(err.to_string()))?;

    let login = user.login.as_ref().ok_or(Invalid::Missing("login"))?;
    let uuid_text = required(&login.uuid, "login.uuid")?;
    let id = Uuid::parse_str(uuid_text).map_err(|_| Invalid::Malformed {
        field: "login.uuid",
        expected: "UUID",
        value: uuid_text.to_owned(),
    })?;
    // The nil UUID would make every such record collide on one row.
    if id.is_nil() {
        return Err(Invalid::Malformed {
            field: "login.uuid",
            expected: "non-nil UUID",
            value: uuid_text.to_owned(),
        });
    }

    let name = user.name.as_ref().ok_or(Invalid::Missing("name"))?;
    let location = user.location.as_ref().ok_or(Invalid::Missing("location"))?;
    let street = location
        .street
        .as_ref()
        .ok_or(Invalid::Missing("location.street"))?;
    let street_number = scalar(&street.number, "location.street.number")?;
    let street_name = required(&street.name, "location.street.name")?;
    let city = required(&location.city, "location.city")?;
    let state = required(&location.state, "location.state")?;
    let country = required(&location.country, "location.country")?;
    // Some postcodes are legitimately empty strings in the API; missing altogether is not.
    let post_code = location
        .postcode
        .as_ref()
        .ok_or(Invalid::Missing("location.postcode"))?
        .to_text();
    text_only(&post_code, "location.postcode")?;

    let email = required(&user.email, "email")?;
    if !email.contains('@') {
        return Err(Invalid::Malformed {
            field: "email",
            expected: "email address",
            value: email.to_owned(),
        });
    }

    Ok(UserRow {
        id,
        first_name: required(&name.first, "name.first")?.to_owned(),
        last_name: required(&name.last, "name.last")?.to_owned(),
        gender: required(&user.gender, "gender")?.to_owned(),
        address: format!("{street_number} {street_name}, {city}, {state}, {country}"),
        post_code,
        email: email.to_owned(),
        username: required(&login.username, "login.username")?.to_owned(),
        dob: timestamp(user.dob.as_ref().and_then(|d| d.date.as_ref()), "dob.date")?,
        registered_date: timestamp(
            user.registered.as_ref().and_then(|d| d.date.as_ref()),
            "registered.date",
        )?,
        phone: required(&user.phone, "phone")?.to_owned(),
        picture: required(
            &user.picture.as_ref().and_then(|p| p.medium.clone()),
            "picture.medium",
        )?
        .to_owned(),
        timestamp: fetched_at,
    })
}

/// A present, non-blank string field.
fn required<'s>(value: &'s Option<Cow<'_, str>>, field: &'static str) -> Result<&'s str, Invalid> {
    let text = value.as_deref().ok_or(Invalid::Missing(field))?.trim();
    if text.is_empty() {
        return Err(Invalid::Empty(field));
    }
    text_only(text, field)?;
    Ok(text)
}

/// Refuses a NUL character (`\u0000` in the JSON): PostgreSQL's `text` cannot hold one, so the
/// row's batch could never commit there, and it is never part of a real name or address.
fn text_only(text: &str, field: &'static str) -> Result<(), Invalid> {
    if text.contains('\0') {
        return Err(Invalid::Malformed {
            field,
            expected: "text without NUL characters",
            value: text.to_owned(),
        });
    }
    Ok(())
}

/// A present, non-blank number-or-string field, as text.
fn scalar(value: &Option<Scalar<'_>>, field: &'static str) -> Result<String, Invalid> {
    let text = value.as_ref().ok_or(Invalid::Missing(field))?.to_text();
    if text.is_empty() {
        return Err(Invalid::Empty(field));
    }
    text_only(&text, field)?;
    Ok(text)
}

fn timestamp(value: Option<&Cow<'_, str>>, field: &'static str) -> Result<DateTime<Utc>, Invalid> {
    let text = value.ok_or(Invalid::Missing(field))?;
    DateTime::parse_from_rfc3339(text)
        .map(|ts| ts.with_timezone(&Utc))
        .map_err(|_| Invalid::Malformed {
            field,
            expected: "RFC 3339 timestamp",
            value: text.to_string(),
        })
}

#[cfg(test)]
mod tests;
