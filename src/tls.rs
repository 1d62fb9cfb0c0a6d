//! One rustls client configuration for every server we talk to over TLS (PostgreSQL, Cassandra):
//! the public web roots plus an optional private CA, with no OpenSSL to install.

use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// A client config trusting the web roots and the certificates in `ca_file` (PEM), if given.
/// Errors name the file and what was wrong with it.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("reading CA file {}: {e}", path.display()))?;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
