//! Sinks: the connector interface, and the task that feeds a sink and speaks the
//! checkpoint protocol for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rivulet_checkpoint::{Committer, SinkEntry, SinkTransaction, SnapshotPart, TaskCheckpointing, TaskReport};
use rivulet_dataflow::{Barrier, Batch, GateEvent, InputGate, InputWatermarks, Message, NodeMetrics, NodeRole, blocking};

use crate::BoxFuture;
use crate::error::ConnectorError;

/// A sink of a job, built from its spec.
pub trait SinkConnector: Send + Sync {
    /// Get the output ready for a run. A fresh run (`restored: None`) starts it afresh (a
    /// job owns its output); a restored one keeps what the snapshot's `restored` entries
    /// of this sink cover and drops what a newer, discarded run left.
    fn prepare<'a>(&'a self, restored: Option<&'a [SinkEntry]>) -> BoxFuture<'a, Result<(), ConnectorError>>;

    /// The commit step of its two-phase commit, if it has one.
    fn committer(&self) -> Option<Arc<dyn Committer>>;

    /// A writer for subtask `subtask`, continuing after `restored` (its entry in the snapshot).
    fn open(&self, subtask: u32, restored: Option<&SinkEntry>) -> Result<Box<dyn Sink>, ConnectorError>;
}

/// Writes records, and at each barrier stages them for the snapshot.
pub trait Sink: Send {
    /// Write one batch of records.
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError>;

    /// Every input delivered `barrier`: make what was written durable or staged, and say
    /// what the snapshot records (what the committer makes visible once it completes).
    /// `committed` is the newest completed snapshot (staged output up to it is visible).
    fn prepare_commit(&mut self, barrier: Barrier, committed: Option<u64>) -> Result<SinkTransaction, ConnectorError>;

    /// Every input ended: stage the rest; the returned transaction is committed with the
    /// final checkpoint (or at once when the job does not checkpoint).
    fn finish(&mut self, committed: Option<u64>) -> Result<SinkTransaction, ConnectorError>;
}

/// A sink subtask: its input, its sink, and its part in snapshots.
pub struct SinkTask {
    /// Sink id.
    pub id: String,
    /// Subtask index.
    pub subtask: u32,
    /// The writer.
    pub sink: Box<dyn Sink>,
    /// Its commit step (used directly only when the job does not checkpoint).
    pub committer: Option<Arc<dyn Committer>>,
    /// Input, with barrier alignment.
    pub input: InputGate,
    /// Input watermarks (and which channels have ended).
    pub inputs: InputWatermarks,
    /// Counters.
    pub metrics: Arc<NodeMetrics>,
    /// Checkpointing, if the job checkpoints.
    pub checkpointing: Option<TaskCheckpointing>,
}

impl SinkTask {
    fn entry(&self, finished: bool, transaction: SinkTransaction) -> SnapshotPart {
        SnapshotPart::Sink(SinkEntry { id: self.id.clone(), subtask: self.subtask, finished, transaction })
    }

    /// Write until every input has ended (or a stop barrier), staging at barriers.
    pub async fn run(mut self) -> Result<(), ConnectorError> {
        let mut last_barrier = 0;
        while let Some(ev) = self.input.next().await {
            let env = match ev {
                GateEvent::Aligned(b) => {
                    last_barrier = b.id;
                    if let Some(ctx) = &self.checkpointing {
                        let committed = ctx.ledger.max_complete();
                        let sink = &mut self.sink;
                        let txn = blocking(|| sink.prepare_commit(b, committed))?;
                        ctx.report(TaskReport::Ack { id: b.id, part: self.entry(false, txn) });
                    }
                    if b.stop {
                        return Ok(());
                    }
                    continue;
                }
                GateEvent::Message(env) => env,
            };
            match env.msg {
                Message::Batch(batch) => {
                    self.sink.write(&batch)?;
                    self.metrics.records_in.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Message::Watermark(wm) => {
                    self.inputs.watermark(env.channel, wm);
                    self.metrics.watermark.store(self.inputs.current(), Ordering::Relaxed);
                }
                Message::Idle => {
                    self.inputs.idle(env.channel);
                }
                Message::Barrier(_) => {}
                Message::End => {
                    self.inputs.end(env.channel);
                    if self.inputs.all_ended() {
                        return self.finish(last_barrier);
                    }
                }
            }
        }
        Err(ConnectorError::InputClosed { role: NodeRole::Sink, id: self.id.clone() })
    }

    fn finish(&mut self, last_barrier: u64) -> Result<(), ConnectorError> {
        let committed = self.checkpointing.as_ref().and_then(|c| c.ledger.max_complete());
        let sink = &mut self.sink;
        let txn = blocking(|| sink.finish(committed))?;
        match &self.checkpointing {
            // The final checkpoint commits (so a crash now cannot duplicate output).
            Some(ctx) => ctx.report(TaskReport::Finished { part: self.entry(true, txn), after: last_barrier }),
            None => {
                if let Some(c) = &self.committer {
                    blocking(|| c.commit(&txn)).map_err(|e| ConnectorError::failed(NodeRole::Sink, &self.id, e.to_string()))?;
                }
            }
        }
        Ok(())
    }
}
