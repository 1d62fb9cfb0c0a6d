//! The two shapes of a user: as the API sends it ([`api`]) and as we store it ([`row`]).

pub mod api;
pub mod redact;
pub mod row;

pub use api::ApiUser;
pub use row::UserRow;
