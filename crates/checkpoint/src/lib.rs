//! Checkpoints and savepoints: the protocol in one place. It knows no source, sink,
//! guest or window type: a source's position and a sink's transaction are opaque
//! JSON to it, and each transactional sink registers a [`Committer`] by its id.
//!
//! 1. The [`Coordinator`] injects a [`Barrier`] into every running source at the
//!    checkpoint interval (or when a savepoint is asked for).
//! 2. A source records its position, forwards the barrier and acks ([`SourceCheckpointing`]).
//! 3. A task with several inputs aligns (`rivulet_dataflow::InputGate`): a channel that
//!    delivered the barrier is held back until every input has delivered it. Then the
//!    task captures its state synchronously ([`capture`]: a copy of the memory backend,
//!    or a RocksDB checkpoint of hard links after a flush), forwards the barrier, and
//!    uploads in the background ([`upload`]); the pipeline waits only for the capture.
//! 4. A sink stages what it wrote (a closed part file, a flush) and acks with its
//!    transaction: what must become visible once the snapshot completes.
//! 5. When every task has acked (finished tasks count with their final part), the
//!    coordinator writes the [`Manifest`] last — a snapshot is complete only once its
//!    manifest exists — then asks each sink's [`Committer`] to commit, applies retention
//!    and deletes files no retained checkpoint references.
//! 6. On restore, the newest complete manifest whose files all verify (size and sha256)
//!    is used ([`find_restore_point`]); a corrupt one is reported and the previous one
//!    tried. Its bytes are decoded per new subtask by key group ([`restore_into`]); the
//!    runtime puts them into its operators.

mod capture;
mod commit;
mod coordinator;
pub mod failpoint;
mod inspect;
mod locate;
mod location;
pub mod manifest;
mod report;
mod restore;
pub mod snapshot;
mod storage;

pub use capture::{Captured, HostParts, SubtaskMeta, UploadedFiles, capture, upload};
pub use commit::{Committer, CommitterOf, Committers};
pub use coordinator::{Coordinator, CoordinatorOutcome};
pub use inspect::inspect;
pub use location::{Location, LocationError};
pub use locate::{RestorePoint, complete_snapshots, find_restore_point, load_manifest, open_snapshot};
pub use manifest::{FileEntry, Manifest, SinkEntry, SinkTransaction, SourceEntry, SourcePosition};
pub use report::{Ledger, OperatorPart, SnapshotPart, SourceCheckpointing, TaskCheckpointing, TaskKey, TaskReport};
pub use restore::{OperatorRestore, RestoredState, native_fast_path, restore_into, write_db_files};
pub use rivulet_dataflow::{Barrier, SnapshotFormat, SnapshotKind};
#[cfg(feature = "fault-injection")]
pub use storage::FaultPlan;
pub use storage::{CheckpointStorage, sha256_hex, unique_suffix};

use std::time::Duration;

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
    /// Reading or writing the object store (or a sink's commit target) failed.
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
    /// Local files (RocksDB checkpoints, spool files) could not be handled.
    #[error("checkpoint: {0}")]
    Local(String),
    /// A manifest was already written where this coordinator meant to write one:
    /// another coordinator completed that snapshot, so this one is fenced out.
    #[error("checkpoint storage: {0}: already written by another coordinator (this one is fenced out)")]
    AlreadyWritten(String),
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

/// The directory of a snapshot, relative to the job root.
pub fn snapshot_dir(kind: SnapshotKind, id: u64) -> String {
    match kind {
        SnapshotKind::Checkpoint => format!("chk-{id:010}"),
        SnapshotKind::Savepoint => format!("savepoints/sp-{id:010}"),
    }
}
