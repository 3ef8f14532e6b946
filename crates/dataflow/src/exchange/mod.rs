//! The exchange port: how messages get from one subtask to another.
//!
//! A task sends through [`OutputEdge`]s (partitioning records over the downstream
//! subtasks) or, for a source, through a [`SourceOutput`] (batching and watermarks on
//! top); it receives from an [`InputGate`] (barrier alignment over its
//! [`InputQueue`]). Channels themselves come from an [`Exchange`]: the
//! [`LocalExchange`] connects subtasks of one process with bounded in-memory queues
//! (backpressure). An exchange across processes implements the same three traits — a
//! [`ChannelSender`] that writes to a connection, an [`InputQueue`] fed by one — and
//! nothing above this module changes: barriers, watermarks and end-of-input travel
//! in-band as [`Message`]s either way.

mod gate;
mod local;
mod output;
mod source_output;
mod watermarks;

pub use gate::{GateEvent, InputGate};
pub use local::{LocalExchange, LocalSender};
pub use output::OutputEdge;
pub use source_output::{SourceOutput, WATERMARK_EVERY};
pub use watermarks::{InputWatermarks, WatermarkChange};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::message::{Envelope, Message};

/// A receiving subtask of a job: its node's index in the job graph and its subtask index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct SubtaskId {
    /// Node index.
    pub node: usize,
    /// Subtask index.
    pub subtask: u32,
}

/// The receiving task has stopped (it failed or the job is being torn down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the downstream task stopped")]
pub struct DownstreamGone;

/// Why records could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The downstream task stopped.
    #[error("downstream task stopped")]
    Gone,
    /// A record could not be keyed for a hash-partitioned edge.
    #[error("{0}")]
    Key(String),
    /// A channel was asked for a subtask that has no input queue (a planning bug).
    #[error("subtask {0:?} has no input queue")]
    NoInput(SubtaskId),
}

impl From<DownstreamGone> for ExchangeError {
    fn from(_: DownstreamGone) -> Self {
        ExchangeError::Gone
    }
}

/// What sending returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DownstreamGone>> + Send + 'a>>;

/// The sending end of one channel into a subtask's input.
pub trait ChannelSender: Send + Sync + fmt::Debug {
    /// Send `msg`, waiting while the receiver is full (backpressure).
    fn send(&self, msg: Message) -> SendFuture<'_>;
}

/// A subtask's input: every channel into it merged into one queue, each message tagged
/// with the channel it came on.
pub trait InputQueue: Send + fmt::Debug {
    /// Poll for the next message; `Ready(None)` once every sender is gone. Cancel-safe.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>>;
}

/// Creates the channels of a job: one input queue per receiving subtask, one sender per
/// channel into it.
pub trait Exchange: Send + Sync {
    /// The input queue of subtask `to`, fed by `channels` channels (indices `0..channels`).
    fn input(&self, to: SubtaskId, channels: usize) -> Box<dyn InputQueue>;
    /// The sending end of channel `channel` of `to`'s input (after [`Exchange::input`] for `to`).
    fn sender(&self, to: SubtaskId, channel: usize) -> Result<Box<dyn ChannelSender>, ExchangeError>;
    /// Every channel is created: from now on an input ends when its senders are gone.
    fn seal(&self);
}
