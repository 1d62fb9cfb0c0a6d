//! TLS for PostgreSQL with rustls (no OpenSSL to install): the public web roots, plus an optional
//! private CA. Whether TLS is used at all is the URL's `sslmode`.

use super::PgError;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

pub fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| PgError::Tls(format!("reading CA file {}: {e}", path.display())))?;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| PgError::Tls(format!("CA file {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| PgError::Tls(format!("CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
