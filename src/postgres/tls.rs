//! TLS for PostgreSQL: the shared rustls config ([`crate::tls`]) as a tokio-postgres connector.
//! Whether TLS is used at all is the URL's `sslmode`.

use super::PgError;
use std::path::Path;
use tokio_postgres_rustls::MakeRustlsConnect;

pub fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, PgError> {
    Ok(MakeRustlsConnect::new(
        crate::tls::client_config(ca_file).map_err(PgError::Tls)?,
    ))
}
