//! The REST API over TLS (`rivulet server --tls-cert FILE --tls-key FILE`): rustls with
//! the `ring` provider (as the cluster's TLS), HTTP/1.1 by ALPN, no client certificates
//! (clients authenticate with bearer tokens).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM files the server's TLS is made of.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain (PEM): the server's certificate first, then intermediates.
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the server's certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error("the TLS certificate {}: {reason}", path.display())]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file cannot be read or holds no PEM private key.
    #[error("the TLS key {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (a key that is not the certificate's, an unsupported key).
    #[error("the TLS certificate {} and key {}: {reason}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
}

impl TlsFiles {
    /// Load the certificate and key into an acceptor for the listener.
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let cert_err = |reason: String| TlsError::Cert { path: self.cert.clone(), reason };
        let key_err = |reason: String| TlsError::Key { path: self.key.clone(), reason };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&self.cert).map_err(cert_err)?)
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err(format!("not a PEM certificate ({e})")))?;
        if chain.is_empty() {
            return Err(cert_err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(&read(&self.key).map_err(key_err)?).map_err(|e| key_err(format!("holds no PEM private key ({e})")))?;
        let pair_err = |e: rustls::Error| {
            let reason = match e {
                rustls::Error::InconsistentKeys(_) => "the key is not the certificate's (its public key differs)".to_owned(),
                e => e.to_string(),
            };
            TlsError::Pair { cert: self.cert.clone(), key: self.key.clone(), reason }
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(pair_err)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(pair_err)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| e.to_string())
}
