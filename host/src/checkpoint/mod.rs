//! Checkpoints and savepoints: the protocol in one place.
//!
//! 1. The [`Coordinator`] injects a [`Barrier`] into every running source at the
//!    checkpoint interval (or when a savepoint is asked for).
//! 2. A source records its position, forwards the barrier and acks.
//! 3. A task with several inputs aligns: a channel that delivered the barrier is held
//!    back (its messages buffered) until every input has delivered it. Then the task
//!    captures its state synchronously (a copy of the memory backend, or a RocksDB
//!    checkpoint: hard links after a flush), forwards the barrier, and uploads in the
//!    background (`subtask::upload`); the pipeline waits only for the capture.
//! 4. A sink closes its in-progress part file (hidden, name starting with `.`) and
//!    reports it pending.
//! 5. When every task has acked (finished tasks count with their final snapshot), the
//!    coordinator writes the [`Manifest`] last — a checkpoint is complete only once its
//!    manifest exists — then commits the sinks' pending files (renames them visible),
//!    applies retention and deletes files no retained checkpoint references.
//! 6. On restore, the newest complete manifest whose files all verify (size and
//!    sha256) is used; a corrupt one is reported and the previous one tried.

mod coordinator;
pub mod failpoint;
pub mod manifest;
mod restore;
pub mod snapshot;
pub mod storage;
pub mod subtask;

pub use coordinator::{Coordinator, CoordinatorOutcome};
pub use manifest::{FileEntry, Manifest, SnapshotKind};
pub use restore::{
    OperatorRestore, RestorePoint, apply, commit_pending, complete_snapshots, find_restore_point, inspect, load_manifest, native_fast_path,
    open_snapshot, write_db_files, write_entries,
};
pub use storage::{CheckpointStorage, FaultPlan};

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use manifest::{SinkEntry, SourceEntry, SubtaskState};

/// A failure of checkpointing or restoring.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint location is unusable.
    #[error("checkpoint location '{location}': {reason}")]
    Location {
        /// As given.
        location: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing the object store failed.
    #[error("checkpoint storage: {path}: {message}")]
    Storage {
        /// Object.
        path: String,
        /// Error.
        message: String,
    },
    /// A snapshot file is missing, truncated or does not match its checksum.
    #[error("checkpoint corrupt: {path}: {reason}")]
    Corrupt {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A file in a format version this host does not read.
    #[error("{path}: format version {found} is not supported (this host reads version {supported})")]
    UnsupportedVersion {
        /// File.
        path: String,
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// The snapshot cannot be applied to this job.
    #[error("cannot restore: {0}")]
    Mismatch(String),
    /// No snapshot to restore from where one was required.
    #[error("no complete checkpoint or savepoint found at {0}")]
    NotFound(String),
    /// Local files (RocksDB checkpoints) could not be handled.
    #[error("checkpoint: {0}")]
    Local(String),
}

/// How a job checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The job's root in the checkpoint location (`<dir>/<job name>`).
    pub storage: CheckpointStorage,
    /// Interval between periodic checkpoints; `None`: only savepoints.
    pub interval: Option<Duration>,
    /// A checkpoint not complete after this long is aborted.
    pub timeout: Duration,
    /// Complete checkpoints kept.
    pub retain: usize,
    /// Consecutive failed checkpoints tolerated before the job fails.
    pub tolerable_failures: u32,
    /// RocksDB checkpoints upload only new SST files.
    pub incremental: bool,
}

impl CheckpointConfig {
    /// Defaults for a root: no interval, 10 min timeout, keep 3, tolerate 3, incremental.
    pub fn new(storage: CheckpointStorage) -> Self {
        CheckpointConfig { storage, interval: None, timeout: Duration::from_secs(600), retain: 3, tolerable_failures: 3, incremental: true }
    }
}

/// The barrier: a checkpoint or savepoint marker flowing with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// Snapshot id.
    pub id: u64,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Stop the job once the snapshot is taken (stop-with-savepoint).
    pub stop: bool,
}

/// The directory of a snapshot, relative to the job root.
pub fn snapshot_dir(kind: SnapshotKind, id: u64) -> String {
    match kind {
        SnapshotKind::Checkpoint => format!("chk-{id:010}"),
        SnapshotKind::Savepoint => format!("savepoints/sp-{id:010}"),
    }
}

/// What one task contributes to a snapshot.
#[derive(Debug, Clone)]
pub enum SnapshotPart {
    /// An operator subtask's state.
    Operator {
        /// Uid.
        uid: String,
        /// Plugin label.
        plugin: String,
        /// Plugin digest.
        plugin_digest: String,
        /// Parallelism.
        parallelism: u32,
        /// State version.
        state_version: u32,
        /// The state.
        state: SubtaskState,
    },
    /// A source subtask's position.
    Source(SourceEntry),
    /// A sink subtask's pending files.
    Sink(SinkEntry),
}

impl SnapshotPart {
    /// Which task this is: (kind, id, subtask).
    pub fn task(&self) -> TaskKey {
        match self {
            SnapshotPart::Operator { uid, state, .. } => TaskKey { kind: 1, id: uid.clone(), subtask: state.subtask },
            SnapshotPart::Source(s) => TaskKey { kind: 0, id: s.id.clone(), subtask: s.subtask },
            SnapshotPart::Sink(s) => TaskKey { kind: 2, id: s.id.clone(), subtask: s.subtask },
        }
    }
}

/// Identifies a task (operator subtasks of a chain are separate parts).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskKey {
    /// 0 source, 1 operator, 2 sink.
    pub kind: u8,
    /// Node id or uid.
    pub id: String,
    /// Subtask.
    pub subtask: u32,
}

/// A task's message to the coordinator.
#[derive(Debug)]
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

/// Which snapshots have completed (tasks reuse uploaded RocksDB files only from these).
#[derive(Debug, Default)]
pub struct Ledger {
    completed: Mutex<BTreeSet<u64>>,
}

impl Ledger {
    /// Mark `id` complete.
    pub fn complete(&self, id: u64) {
        if let Ok(mut c) = self.completed.lock() {
            c.insert(id);
        }
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
