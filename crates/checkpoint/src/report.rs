//! What tasks tell the coordinator, and what a task holds to take part in snapshots.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rivulet_dataflow::{Barrier, NodeRole};
use tokio::sync::mpsc;

use crate::manifest::{SinkEntry, SourceEntry, SourcePosition, SubtaskState};
use crate::storage::CheckpointStorage;

/// Identifies a task's part (operator subtasks of a chain are separate parts).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskKey {
    /// Source, operator or sink.
    pub role: NodeRole,
    /// Node id or uid.
    pub id: String,
    /// Subtask.
    pub subtask: u32,
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.id, self.subtask)
    }
}

/// An operator subtask's part of a snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OperatorPart {
    /// Uid.
    pub uid: String,
    /// Plugin label.
    pub plugin: String,
    /// Plugin digest.
    pub plugin_digest: String,
    /// Parallelism.
    pub parallelism: u32,
    /// State version.
    pub state_version: u32,
    /// The state.
    pub state: SubtaskState,
}

/// What one task contributes to a snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum SnapshotPart {
    /// An operator subtask's state.
    Operator(OperatorPart),
    /// A source subtask's position.
    Source(SourceEntry),
    /// A sink subtask's transaction.
    Sink(SinkEntry),
}

impl SnapshotPart {
    /// Which task this is.
    pub fn task(&self) -> TaskKey {
        match self {
            SnapshotPart::Operator(o) => TaskKey { role: NodeRole::Operator, id: o.uid.clone(), subtask: o.state.subtask },
            SnapshotPart::Source(s) => TaskKey { role: NodeRole::Source, id: s.id.clone(), subtask: s.subtask },
            SnapshotPart::Sink(s) => TaskKey { role: NodeRole::Sink, id: s.id.clone(), subtask: s.subtask },
        }
    }

    /// Whether the part says its task had finished.
    pub fn is_finished(&self) -> bool {
        match self {
            SnapshotPart::Operator(o) => o.state.finished,
            SnapshotPart::Source(s) => s.position.is_finished(),
            SnapshotPart::Sink(s) => s.finished,
        }
    }
}

/// A task's message to the coordinator.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum TaskReport {
    /// The task's part of snapshot `id` is uploaded.
    Ack {
        /// Snapshot id.
        id: u64,
        /// The part.
        part: SnapshotPart,
    },
    /// The task finished its input; this part stands for it in every later snapshot
    /// whose barrier it never saw (ids above `after`, the last barrier it processed).
    Finished {
        /// The final part.
        part: SnapshotPart,
        /// The last barrier id the task processed (0: none).
        after: u64,
    },
    /// The task could not take its part of snapshot `id`.
    Decline {
        /// Snapshot id.
        id: u64,
        /// Task.
        task: String,
        /// Why.
        reason: String,
    },
}

/// Which snapshots have completed (tasks reuse uploaded RocksDB files, and sinks forget
/// committed transactions, only from these).
#[derive(Debug, Default)]
pub struct Ledger {
    completed: Mutex<BTreeSet<u64>>,
    /// The highest completed id (0: none), for those who follow the ledger elsewhere.
    highest: tokio::sync::watch::Sender<u64>,
}

impl Ledger {
    /// Mark `id` complete.
    pub fn complete(&self, id: u64) {
        if let Ok(mut c) = self.completed.lock() {
            c.insert(id);
        }
        self.highest.send_if_modified(|h| {
            let raise = id > *h;
            *h = (*h).max(id);
            raise
        });
    }

    /// Follow the highest completed id as it rises (0 until one completes): how workers
    /// elsewhere learn what the coordinator completed.
    pub fn follow(&self) -> tokio::sync::watch::Receiver<u64> {
        self.highest.subscribe()
    }
    /// The highest completed id.
    pub fn max_complete(&self) -> Option<u64> {
        self.completed.lock().ok().and_then(|c| c.last().copied())
    }
    /// Whether `id` completed.
    pub fn is_complete(&self, id: u64) -> bool {
        self.completed.lock().map(|c| c.contains(&id)).unwrap_or(false)
    }
}

/// What every task that takes part in snapshots holds.
#[derive(Debug, Clone)]
pub struct TaskCheckpointing {
    /// The job root.
    pub storage: CheckpointStorage,
    /// Reports to the coordinator.
    pub reports: mpsc::UnboundedSender<TaskReport>,
    /// Completed snapshots.
    pub ledger: Arc<Ledger>,
    /// Incremental RocksDB checkpoints.
    pub incremental: bool,
}

impl TaskCheckpointing {
    /// Send a report (a coordinator that is gone has nothing left to complete).
    pub fn report(&self, report: TaskReport) {
        let _ = self.reports.send(report);
    }
}

/// A source subtask's part in snapshots: where barriers come from and where its
/// positions go.
#[derive(Debug)]
pub struct SourceCheckpointing {
    barriers: mpsc::UnboundedReceiver<Barrier>,
    ctx: TaskCheckpointing,
    id: String,
    subtask: u32,
    parallelism: u32,
    last_barrier: u64,
}

impl SourceCheckpointing {
    /// Source `id` subtask `subtask` of `parallelism`, receiving `barriers`.
    pub fn new(barriers: mpsc::UnboundedReceiver<Barrier>, ctx: TaskCheckpointing, id: &str, subtask: u32, parallelism: u32) -> Self {
        SourceCheckpointing { barriers, ctx, id: id.to_owned(), subtask, parallelism, last_barrier: 0 }
    }

    /// A barrier the coordinator asked for, if any (checked between records).
    pub fn poll_barrier(&mut self) -> Option<Barrier> {
        self.barriers.try_recv().ok()
    }

    /// Wait for a barrier (sources that sleep); never resolves once the coordinator is gone.
    pub async fn next_barrier(&mut self) -> Barrier {
        match self.barriers.recv().await {
            Some(b) => b,
            None => std::future::pending().await,
        }
    }

    fn part(&self, position: SourcePosition) -> SnapshotPart {
        SnapshotPart::Source(SourceEntry { id: self.id.clone(), subtask: self.subtask, parallelism: self.parallelism, position })
    }

    /// The barrier went downstream after everything before `position`.
    pub fn ack(&mut self, barrier: Barrier, position: SourcePosition) {
        self.last_barrier = barrier.id;
        self.ctx.report(TaskReport::Ack { id: barrier.id, part: self.part(position) });
    }

    /// The source has finished (sent before its End goes downstream, so the coordinator
    /// hears of it before anyone downstream can).
    pub fn finished(&self) {
        self.ctx.report(TaskReport::Finished { part: self.part(SourcePosition::finished()), after: self.last_barrier });
    }
}
