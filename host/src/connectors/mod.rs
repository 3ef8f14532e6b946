//! Built-in sources and sinks.
//!
//! Sources read records, assign event time, and emit watermarks in-band at least every
//! 1,000 records and at end of input, so event-time results never depend on how fast
//! the input is read. Sinks write each record's value as one line.

mod file;
mod generator;
mod kafka;
mod kafka_sink;
pub mod objects;
mod postgres;
mod sink;

pub use file::FileSource;
pub use generator::Generator;
pub use kafka::{KafkaSource, KafkaTime};
pub use kafka_sink::{KafkaCommitTarget, KafkaDirectTarget, commit as commit_kafka};
pub use objects::{ObjectCommitTarget, ObjectSource, commit as commit_objects};
pub use postgres::PostgresTarget;
pub use sink::{LineSink, SinkTarget, prepare_sink_dir};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use crate::checkpoint::manifest::{SourceEntry, SourcePosition};
use crate::checkpoint::{Barrier, SnapshotPart, TaskCheckpointing, TaskReport};
use crate::error::JobError;
use crate::runtime::{ExchangeError, Message, NodeMetrics, OutputEdge};

/// A source subtask's part in checkpoints: where barriers come from and acks go.
pub struct SourceCheckpointing {
    /// Barriers the coordinator injects.
    pub barriers: mpsc::UnboundedReceiver<Barrier>,
    /// Reports to the coordinator.
    pub ctx: TaskCheckpointing,
    /// Subtask index.
    pub subtask: u32,
    /// Parallelism.
    pub parallelism: u32,
}

/// Most records between two watermarks (and per batch) a source emits.
pub const WATERMARK_EVERY: usize = 1000;

/// Where a source sends what it reads: batching, watermark generation, routing.
pub struct SourceOutput {
    id: String,
    outputs: Vec<OutputEdge>,
    batch: Vec<u8>,
    in_batch: usize,
    batch_size: usize,
    /// Bounded out-of-orderness in ms, when the source has event time.
    out_of_orderness: Option<i64>,
    max_ts: i64,
    last_wm: i64,
    metrics: Arc<NodeMetrics>,
    checkpointing: Option<SourceCheckpointing>,
    last_barrier: u64,
    /// What watermarks are derived from instead of the largest timestamp seen (a source
    /// with partitions sets the minimum over its partitions).
    wm_basis: Option<i64>,
}

impl SourceOutput {
    /// Output of source `id` with at most `batch_size` records per batch.
    pub fn new(id: &str, outputs: Vec<OutputEdge>, batch_size: usize, out_of_orderness: Option<i64>, metrics: Arc<NodeMetrics>) -> Self {
        SourceOutput {
            id: id.to_owned(),
            outputs,
            batch: Vec::new(),
            in_batch: 0,
            batch_size: batch_size.clamp(1, WATERMARK_EVERY),
            out_of_orderness,
            max_ts: i64::MIN,
            last_wm: i64::MIN,
            metrics,
            checkpointing: None,
            last_barrier: 0,
            wm_basis: None,
        }
    }

    /// Derive watermarks from `basis` (e.g. the least of per-partition maxima) rather
    /// than from the largest timestamp seen; `None` holds the watermark back.
    pub fn set_watermark_basis(&mut self, basis: Option<i64>) {
        self.wm_basis = Some(basis.unwrap_or(i64::MIN));
    }

    /// Whether the source generates watermarks (it has event time).
    pub fn out_of_orderness_set(&self) -> bool {
        self.out_of_orderness.is_some()
    }

    /// Send an undecodable record to the `dead-letter` side output (dropped there when
    /// nothing reads it, but always counted in the node's `dead_letters`).
    pub async fn dead_letter(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), JobError> {
        self.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
        self.push_side("dead-letter", key, value, timestamp).await
    }

    /// Send one record to the source's `tag` side output at once (rare records).
    pub async fn push_side(&mut self, tag: &str, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), JobError> {
        let mut batch = Vec::new();
        rivulet_sdk::encode_record(&mut batch, key, value, timestamp);
        for i in 0..self.outputs.len() {
            if self.outputs[i].tag.as_deref() == Some(tag)
                && let Err(e) = self.outputs[i].send_batch(&batch).await
            {
                return Err(self.err(e));
            }
        }
        Ok(())
    }

    /// Take part in checkpoints.
    pub fn with_checkpointing(mut self, c: Option<SourceCheckpointing>) -> Self {
        self.checkpointing = c;
        self
    }

    /// Continue watermark generation from a restored position.
    pub fn restore_max_ts(&mut self, max_ts: i64) {
        self.max_ts = max_ts;
        if let Some(bound) = self.out_of_orderness
            && max_ts != i64::MIN
        {
            self.last_wm = max_ts.saturating_sub(bound).saturating_sub(1);
        }
    }

    /// The largest event time seen (for the source's position).
    pub fn max_ts(&self) -> i64 {
        self.max_ts
    }

    /// A barrier the coordinator asked for, if any (checked between records).
    pub fn poll_barrier(&mut self) -> Option<Barrier> {
        self.checkpointing.as_mut().and_then(|c| c.barriers.try_recv().ok())
    }

    /// Wait for a barrier (for sources that sleep); never resolves without checkpointing.
    pub async fn next_barrier(&mut self) -> Option<Barrier> {
        match self.checkpointing.as_mut() {
            Some(c) => match c.barriers.recv().await {
                Some(b) => Some(b),
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    fn report(&self, position: SourcePosition, id: Option<u64>) {
        if let Some(c) = &self.checkpointing {
            let part = SnapshotPart::Source(SourceEntry { id: self.id.clone(), subtask: c.subtask, parallelism: c.parallelism, position });
            let _ = c.ctx.reports.send(match id {
                Some(id) => TaskReport::Ack { id, part },
                None => TaskReport::Finished { part, after: self.last_barrier },
            });
        }
    }

    /// Emit `barrier` after everything pushed so far, recording `position`.
    pub async fn barrier(&mut self, barrier: Barrier, position: SourcePosition) -> Result<(), JobError> {
        self.flush().await?;
        self.send_control(Message::Barrier(barrier)).await?;
        self.last_barrier = barrier.id;
        self.report(position, Some(barrier.id));
        Ok(())
    }

    fn err(&self, e: ExchangeError) -> JobError {
        match e {
            ExchangeError::Gone => JobError::Internal(format!("source '{}': downstream task stopped", self.id)),
            ExchangeError::Key(m) => JobError::Connector { node: "source", id: self.id.clone(), message: m },
        }
    }

    /// Add one record; sends a batch (and a watermark) when the batch is full.
    pub async fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), JobError> {
        rivulet_sdk::encode_record(&mut self.batch, key, value, timestamp);
        self.in_batch += 1;
        self.max_ts = self.max_ts.max(timestamp);
        if self.in_batch >= self.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Send the pending batch and the watermark it allows.
    pub async fn flush(&mut self) -> Result<(), JobError> {
        if self.in_batch > 0 {
            let batch = std::mem::take(&mut self.batch);
            self.metrics.records_out.fetch_add(self.in_batch as u64, Ordering::Relaxed);
            self.in_batch = 0;
            let waited = std::time::Instant::now();
            for i in 0..self.outputs.len() {
                if self.outputs[i].tag.is_some() {
                    continue;
                }
                if let Err(e) = self.outputs[i].send_batch(&batch).await {
                    return Err(self.err(e));
                }
            }
            self.metrics.backpressure_ns.fetch_add(waited.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        let basis = self.wm_basis.unwrap_or(self.max_ts);
        if let Some(bound) = self.out_of_orderness
            && basis != i64::MIN
        {
            let wm = basis.saturating_sub(bound).saturating_sub(1);
            if wm > self.last_wm {
                self.send_control(Message::Watermark(wm)).await?;
                self.last_wm = wm;
                self.metrics.watermark.store(wm, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Tell downstream this source is idle.
    pub async fn idle(&mut self) -> Result<(), JobError> {
        self.flush().await?;
        self.send_control(Message::Idle).await
    }

    async fn send_control(&mut self, msg: Message) -> Result<(), JobError> {
        for i in 0..self.outputs.len() {
            if let Err(e) = self.outputs[i].broadcast(&msg).await {
                return Err(self.err(e));
            }
        }
        Ok(())
    }

    /// End of input: flush, the final watermark (fires every event-time timer and
    /// window downstream), then End.
    pub async fn finish(&mut self) -> Result<(), JobError> {
        self.flush().await?;
        self.send_control(Message::Watermark(i64::MAX)).await?;
        self.metrics.watermark.store(i64::MAX, Ordering::Relaxed);
        // The coordinator hears of the end before anyone downstream can.
        self.report(SourcePosition::Finished, None);
        self.send_control(Message::End).await
    }

    /// A source restored as finished: downstream only needs to hear it has ended.
    pub async fn finish_restored(&mut self) -> Result<(), JobError> {
        self.report(SourcePosition::Finished, None);
        self.send_control(Message::End).await
    }
}
