//! A borrowed, typed view of one randomuser.me record (API 1.4).
//!
//! Every field is optional here on purpose: a missing field is a validation failure with a precise
//! reason ("login.uuid is missing") decided in [`crate::process::transform`], not a serde error that
//! loses the record. Credentials (`login.password`, `salt`, `md5`, `sha1`, `sha256`) are not even
//! declared, so they can never be read into memory through this type.

use serde::Deserialize;
use std::borrow::Cow;

/// One user as the API sends it. Unknown fields are ignored so API additions don't break us.
#[derive(Debug, Default, Deserialize)]
pub struct ApiUser<'a> {
    #[serde(borrow)]
    pub gender: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Name<'a>>,
    #[serde(borrow)]
    pub location: Option<Location<'a>>,
    #[serde(borrow)]
    pub email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub login: Option<Login<'a>>,
    #[serde(borrow)]
    pub dob: Option<Dated<'a>>,
    #[serde(borrow)]
    pub registered: Option<Dated<'a>>,
    #[serde(borrow)]
    pub phone: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub cell: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub picture: Option<Picture<'a>>,
    #[serde(borrow)]
    pub nat: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Name<'a> {
    #[serde(borrow)]
    pub title: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub first: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub last: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Location<'a> {
    #[serde(borrow)]
    pub street: Option<Street<'a>>,
    #[serde(borrow)]
    pub city: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub state: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub country: Option<Cow<'a, str>>,
    /// A JSON number for most nationalities, a string for GB, CA, NL, NO.
    #[serde(borrow)]
    pub postcode: Option<Scalar<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Street<'a> {
    #[serde(borrow)]
    pub number: Option<Scalar<'a>>,
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
}

/// The non-secret part of `login`; the secrets are deliberately absent (see module docs).
#[derive(Debug, Default, Deserialize)]
pub struct Login<'a> {
    #[serde(borrow)]
    pub uuid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub username: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Dated<'a> {
    #[serde(borrow)]
    pub date: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Picture<'a> {
    #[serde(borrow)]
    pub medium: Option<Cow<'a, str>>,
}

/// A JSON value the API sends either as a number or as a string (postcode, street number).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Scalar<'a> {
    Int(i64),
    Float(f64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

impl Scalar<'_> {
    /// The value as text, the way the API would print it: `63104` and `"63104"` both give `63104`.
    pub fn to_text(&self) -> String {
        match self {
            Scalar::Int(n) => n.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.trim().to_owned(),
        }
    }
}
