//! Sources: the connector interface, and the context a source subtask runs in.

use rivulet_checkpoint::{SourceCheckpointing, SourcePosition};
use rivulet_dataflow::{Barrier, ExchangeError, NodeRole, SourceOutput};

use crate::BoxFuture;
use crate::error::ConnectorError;

/// A source of a job, built from its spec.
pub trait SourceConnector: Send + Sync {
    /// Whether a restored subtask takes the positions of every old subtask (its units of
    /// input, like Kafka partitions, move between subtasks) rather than its own: then the
    /// source may change parallelism between runs.
    fn rescalable(&self) -> bool {
        false
    }

    /// Subtask `subtask` of `parallelism`. `restored` is `None` on a fresh start, else the
    /// positions it resumes from: its own (none if the snapshot had no entry for it), or
    /// every subtask's when [`SourceConnector::rescalable`].
    fn open(&self, subtask: u32, parallelism: u32, restored: Option<Vec<SourcePosition>>) -> Result<Box<dyn SourceTask>, ConnectorError>;
}

/// A source subtask, ready to run.
pub trait SourceTask: Send {
    /// Read into `ctx` until the input ends (bounded), a stop barrier, or a failure.
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), ConnectorError>>;
}

/// Where a source subtask sends what it reads, and how it takes part in snapshots.
pub struct SourceContext {
    id: String,
    out: SourceOutput,
    checkpointing: Option<SourceCheckpointing>,
    max_record_bytes: usize,
}

impl SourceContext {
    /// Source `id` writing into `out`, checkpointing through `checkpointing` if the job
    /// does, refusing records larger than `max_record_bytes`.
    pub fn new(id: &str, out: SourceOutput, checkpointing: Option<SourceCheckpointing>, max_record_bytes: usize) -> Self {
        SourceContext { id: id.to_owned(), out, checkpointing, max_record_bytes }
    }

    /// The source's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A failure of this source.
    pub fn err(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::failed(NodeRole::Source, &self.id, message)
    }

    fn exchange(&self, e: ExchangeError) -> ConnectorError {
        ConnectorError::exchange(NodeRole::Source, &self.id, e)
    }

    /// Add one record (batched; a full batch goes out with its watermark).
    pub async fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), ConnectorError> {
        let size = value.len() + key.map_or(0, <[u8]>::len);
        if size > self.max_record_bytes {
            return Err(self.err(format!("a record of {size} bytes is larger than max_record_bytes ({})", self.max_record_bytes)));
        }
        self.out.push(key, value, timestamp).await.map_err(|e| self.exchange(e))
    }

    /// Send the pending batch and the watermark it allows.
    pub async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().await.map_err(|e| self.exchange(e))
    }

    /// Tell downstream this source is idle.
    pub async fn idle(&mut self) -> Result<(), ConnectorError> {
        self.out.idle().await.map_err(|e| self.exchange(e))
    }

    /// Send an undecodable record to the `dead-letter` side output (counted).
    pub async fn dead_letter(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), ConnectorError> {
        self.out.dead_letter(key, value, timestamp).await.map_err(|e| self.exchange(e))
    }

    /// Derive watermarks from `basis` rather than from the largest timestamp seen.
    pub fn set_watermark_basis(&mut self, basis: Option<i64>) {
        self.out.set_watermark_basis(basis);
    }

    /// Whether the source has event time.
    pub fn has_event_time(&self) -> bool {
        self.out.has_event_time()
    }

    /// Continue watermark generation from a restored position.
    pub fn restore_max_ts(&mut self, max_ts: i64) {
        self.out.restore_max_ts(max_ts);
    }

    /// The largest event time seen.
    pub fn max_ts(&self) -> i64 {
        self.out.max_ts()
    }

    /// A barrier the coordinator asked for, if any (checked between records).
    pub fn poll_barrier(&mut self) -> Option<Barrier> {
        self.checkpointing.as_mut().and_then(SourceCheckpointing::poll_barrier)
    }

    /// Wait for a barrier (sources that sleep); never resolves without checkpointing.
    pub async fn next_barrier(&mut self) -> Barrier {
        match self.checkpointing.as_mut() {
            Some(c) => c.next_barrier().await,
            None => std::future::pending().await,
        }
    }

    /// Emit `barrier` after everything pushed so far, recording `position`.
    pub async fn barrier(&mut self, barrier: Barrier, position: SourcePosition) -> Result<(), ConnectorError> {
        self.out.barrier(barrier).await.map_err(|e| self.exchange(e))?;
        if let Some(c) = &mut self.checkpointing {
            c.ack(barrier, position);
        }
        Ok(())
    }

    /// End of input: flush, the final watermark (fires every event-time timer and window
    /// downstream), the coordinator told, then End.
    pub async fn finish(&mut self) -> Result<(), ConnectorError> {
        self.out.end_of_input().await.map_err(|e| self.exchange(e))?;
        self.finish_restored().await
    }

    /// A source restored as finished: downstream only needs to hear it has ended.
    pub async fn finish_restored(&mut self) -> Result<(), ConnectorError> {
        // The coordinator hears of the end before anyone downstream can.
        if let Some(c) = &self.checkpointing {
            c.finished();
        }
        self.out.end().await.map_err(|e| self.exchange(e))
    }
}

/// The position a non-rescalable source resumes from: its own, if the snapshot had one.
pub(crate) fn own_position(restored: Option<Vec<SourcePosition>>) -> Option<SourcePosition> {
    restored.and_then(|v| v.into_iter().next())
}
