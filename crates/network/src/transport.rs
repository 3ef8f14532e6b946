//! How cluster connections are carried: plain TCP, or TLS (rustls) when the cluster is
//! given a certificate. With TLS every connection — a worker's control connection to the
//! coordinator and the exchange's connections between workers — is mutually
//! authenticated: each side presents a certificate signed by the cluster's CA, and the
//! certificate must name [`SERVER_NAME`] (peers are reached by changing addresses, so the
//! name checked is the cluster's, not the address's). The token handshake runs inside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The name every cluster certificate carries (as a DNS subject alternative name).
pub const SERVER_NAME: &str = "rivulet-cluster";

/// Why the cluster's TLS material is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file holds nothing usable.
    #[error("{what}: {reason}")]
    Pem {
        /// Which file (certificate, key, CA).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// rustls refused the combination.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The cluster's TLS: its certificate and key, and the CA that signs every member's.
pub struct ClusterTls {
    client: tokio_rustls::TlsConnector,
    server: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterTls")
    }
}

impl ClusterTls {
    /// From PEM: this member's certificate chain and private key, and the CA's
    /// certificate(s).
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<ClusterTls, TlsError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pem = |what: &'static str| move |e: rustls::pki_types::pem::Error| TlsError::Pem { what, reason: e.to_string() };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).collect::<Result<_, _>>().map_err(pem("certificate"))?;
        if chain.is_empty() {
            return Err(TlsError::Pem { what: "certificate", reason: "no CERTIFICATE block".into() });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem("private key"))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca) {
            roots.add(c.map_err(pem("CA"))?)?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem { what: "CA", reason: "no CERTIFICATE block".into() });
        }
        let roots = Arc::new(roots);
        let verifier =
            rustls::server::WebPkiClientVerifier::builder(roots.clone()).build().map_err(|e| TlsError::Pem { what: "CA", reason: e.to_string() })?;
        let server = rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain.clone(), key.clone_key())?;
        let client = rustls::ClientConfig::builder().with_root_certificates(roots).with_client_auth_cert(chain, key)?;
        Ok(ClusterTls { client: tokio_rustls::TlsConnector::from(Arc::new(client)), server: tokio_rustls::TlsAcceptor::from(Arc::new(server)) })
    }
}

/// Plain TCP, or TLS when the cluster has a certificate.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    tls: Option<Arc<ClusterTls>>,
}

impl Transport {
    /// Connections over TLS.
    pub fn tls(tls: ClusterTls) -> Transport {
        Transport { tls: Some(Arc::new(tls)) }
    }

    /// Whether connections are encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The dialling side of a connection.
    pub async fn client(&self, tcp: TcpStream) -> io::Result<Stream> {
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(t) => {
                let name = ServerName::try_from(SERVER_NAME).map_err(|e| io::Error::other(e.to_string()))?;
                Ok(Stream::Client(Box::new(t.client.connect(name, tcp).await?)))
            }
        }
    }

    /// The accepting side of a connection.
    pub async fn server(&self, tcp: TcpStream) -> io::Result<Stream> {
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(t) => Ok(Stream::Server(Box::new(t.server.accept(tcp).await?))),
        }
    }
}

/// A cluster connection, plain or encrypted.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS, dialled.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// TLS, accepted.
    Server(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
