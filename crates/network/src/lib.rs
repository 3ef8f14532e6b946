//! Rivulet's exchange across processes: the dataflow's messages between subtasks on
//! different workers, over one authenticated TCP connection per worker pair.
//!
//! - [`frame`]: what travels on a connection (messages, credit, heartbeats) and its
//!   encoding, inside `tokio-util`'s length-delimited framing; a batch travels as its
//!   own encoded bytes;
//! - [`handshake`]: how two workers prove they hold the cluster token and belong to the
//!   same attempt of a job;
//! - [`NetworkExchange`]: the `rivulet_dataflow::Exchange` port over those connections,
//!   with per-channel credit (backpressure) and heartbeats (a quiet or broken
//!   connection fails the exchange instead of hanging it);
//! - [`transport`]: plain TCP, or mutually authenticated TLS (rustls) when the cluster
//!   has a certificate.

mod exchange;
pub mod frame;
pub mod handshake;
pub mod transport;

pub use exchange::{LinkFailure, NetworkConfig, NetworkError, NetworkExchange};
pub use handshake::{ClusterToken, HandshakeError, WorkerId};
pub use transport::{ClusterTls, Stream, TlsError, Transport};
