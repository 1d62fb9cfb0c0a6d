//! A self-signed server certificate made by the test itself, valid for `localhost` and
//! `127.0.0.1`, for servers that must speak TLS (PostgreSQL, Cassandra). Clients trust it through
//! the product's own `ca_file` setting, exactly as a user with a private CA would.

use std::path::{Path, PathBuf};

pub struct SelfSigned {
    /// The certificate (PEM): the server's certificate and the clients' `ca_file`.
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM, unencrypted).
    pub key: PathBuf,
}

impl SelfSigned {
    /// Writes `server.crt` and `server.key` into `dir`.
    pub fn create(dir: &Path) -> Self {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let (cert_path, key_path) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
        // PostgreSQL refuses a key that others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Self {
            cert: cert_path,
            key: key_path,
        }
    }
}
