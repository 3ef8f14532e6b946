//! Built-in sources and sinks. Each lives in its own module, is built from its own spec
//! by its own code ([`source_connector`], [`sink_connector`]: the registry), encodes its
//! own checkpoint position, and — for a transactional sink — brings its own
//! [`Committer`](rivulet_checkpoint::Committer). The runtime and the checkpoint protocol
//! know none of them by name.
//!
//! Sources read records, assign event time, and emit watermarks in-band at least every
//! 1,000 records and at end of input ([`SourceContext`]), so event-time results never
//! depend on how fast the input is read. Sinks take records ([`Sink`]); the [`SinkTask`]
//! feeds them and speaks the checkpoint protocol for them.
//!
//! Adding a connector: a spec struct in `rivulet-job` (and its variant), a module here
//! implementing [`SourceConnector`] or [`SinkConnector`] and stating what it touches
//! outside the process ([`Access`]), and its lines in [`registry`].

mod access;
mod blackhole;
mod context;
mod error;
mod file;
mod generator;
mod json_line;
mod kafka;
pub mod nexmark;
mod objects;
mod part_files;
mod postgres;
pub mod registry;
mod secrets;
mod sequence;
mod sink;
mod source;
mod stdout;

pub use access::{Access, Accessed, Place, PlaceField};
pub use context::ConnectorContext;
pub use error::ConnectorError;
pub use secrets::secret_accesses;
pub use registry::{accesses, committer_for, connections, places_mut, sink_connector, source_connector};
pub use sink::{Sink, SinkConnector, SinkTask};
pub use source::{SourceConnector, SourceContext, SourceTask};

/// A boxed future, as connectors' trait methods return them.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
