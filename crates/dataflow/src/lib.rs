//! The dataflow vocabulary every other Rivulet crate speaks: encoded [`Batch`]es, the
//! [`Message`]s that flow between tasks, the exchange port that carries them
//! ([`exchange`]: channels, input gates with barrier alignment, partitioned output
//! edges, the source output), key groups, per-node metrics and processing time.
//!
//! Nothing here knows a connector, an operator, a state backend or the checkpoint
//! protocol beyond the [`Barrier`] that travels in-band.

pub mod batch;
pub mod bounded_file;
pub mod exchange;
mod json_field;
pub mod key_group;
pub mod message;
pub mod metrics;
pub mod partition;
pub mod role;
pub mod time;

pub use batch::{Batch, BatchBuilder};
pub use bounded_file::{BoundedReadError, read_bounded_file};
pub use exchange::{
    ChannelSender, DownstreamGone, Exchange, ExchangeError, GateEvent, InputGate, InputQueue, InputWatermarks, LocalExchange, OutputEdge,
    SourceOutput, SubtaskId, WATERMARK_EVERY, WatermarkChange,
};
pub use key_group::{KeyGroupRange, key_group};
pub use message::{Barrier, Envelope, Message, SnapshotFormat, SnapshotKind};
pub use metrics::NodeMetrics;
pub use partition::{KeySelector, PartitionKind, Partitioning};
pub use role::NodeRole;
pub use time::{blocking, now_ms};
