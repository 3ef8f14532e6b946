//! The manifest: the one file that makes a checkpoint or savepoint complete. It is
//! written last; it lists every file of the snapshot with size and sha256, the state
//! of every operator subtask, the position of every source and the files every sink
//! has pending. Documented in `docs/checkpoints.md`.

use serde::{Deserialize, Serialize};

/// The manifest's `format` value.
pub const FORMAT: &str = "rivulet-snapshot";
/// The manifest format version this host writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name inside a checkpoint or savepoint directory.
pub const MANIFEST: &str = "_manifest.json";

/// A file of a snapshot, relative to the job's checkpoint root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the job's root (`chk-…/…`, `shared/…`, `savepoints/…`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256, hex.
    pub sha256: String,
}

/// Checkpoint (periodic, may be incremental, retained N) or savepoint (on demand,
/// canonical and self-contained, kept until deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Periodic checkpoint.
    Checkpoint,
    /// User-triggered savepoint.
    Savepoint,
}

/// A complete checkpoint or savepoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Id, increasing within a job's root.
    pub id: u64,
    /// The job's name.
    pub job: String,
    /// Wall-clock time the snapshot completed, ms since the epoch.
    pub created_ms: i64,
    /// Every task had finished its input: restoring commits the sinks and ends the job.
    pub finished: bool,
    /// Key groups of the job.
    pub max_parallelism: u16,
    /// Operator state.
    pub operators: Vec<OperatorEntry>,
    /// Source positions.
    pub sources: Vec<SourceEntry>,
    /// Sink transactions to commit.
    pub sinks: Vec<SinkEntry>,
}

impl Manifest {
    /// Every state file the manifest references.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.operators.iter().flat_map(|o| o.subtasks.iter()).flat_map(|s| s.state.iter().chain(s.db.iter().map(|d| &d.file)))
    }
}

/// One operator's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    /// The operator's uid (how state is matched on restore).
    pub uid: String,
    /// The plugin it ran, as `name (sha256:…)`.
    pub plugin: String,
    /// The plugin's digest.
    pub plugin_digest: String,
    /// Parallelism when the snapshot was taken.
    pub parallelism: u32,
    /// The operator's `state-version()`.
    pub state_version: u32,
    /// Per subtask.
    pub subtasks: Vec<SubtaskState>,
}

/// One operator subtask's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubtaskState {
    /// Subtask index.
    pub subtask: u32,
    /// Key groups `[start, end)` it owned.
    pub key_groups: (u16, u16),
    /// The subtask had finished (closed): on restore it is not run again.
    pub finished: bool,
    /// The canonical state file (entries by key group, timers, declared states); for
    /// RocksDB checkpoints it holds everything but the entries, which are in `db`.
    pub state: Option<FileEntry>,
    /// RocksDB files (incremental checkpoints): SST files under `shared/`, the rest private.
    #[serde(default)]
    pub db: Vec<DbFile>,
}

/// A RocksDB file of a subtask's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbFile {
    /// Its name in the database directory.
    pub name: String,
    /// Where it is stored.
    pub file: FileEntry,
}

/// Where a source subtask was.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// Source id.
    pub id: String,
    /// Subtask.
    pub subtask: u32,
    /// Parallelism.
    pub parallelism: u32,
    /// Position.
    pub position: SourcePosition,
}

/// A source's position: what it has emitted before the barrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourcePosition {
    /// The source had finished.
    Finished,
    /// A file source: byte offset of the next line and records emitted.
    File {
        /// Byte offset of the next unread line (text, JSON lines).
        offset: u64,
        /// Records (CSV rows) emitted.
        records: u64,
        /// Largest event time seen (watermark generation).
        max_ts: i64,
    },
    /// A Kafka source subtask: the next offset of each partition it reads.
    Kafka {
        /// The topic.
        topic: String,
        /// Partition → next offset to read.
        offsets: std::collections::BTreeMap<i32, i64>,
        /// Largest event time seen.
        max_ts: i64,
    },
    /// An object source: the object it was reading and the records emitted from it.
    Objects {
        /// Object name.
        object: String,
        /// Records of it emitted.
        records: u64,
        /// Largest event time seen.
        max_ts: i64,
    },
    /// A generator: the next id it would produce.
    Generator {
        /// Next id.
        next_id: u64,
        /// Records produced.
        produced: u64,
        /// Largest event time seen.
        max_ts: i64,
    },
}

/// A sink subtask's pending output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkEntry {
    /// Sink id.
    pub id: String,
    /// Subtask.
    pub subtask: u32,
    /// The sink's directory.
    pub dir: String,
    /// Files written before the barrier, to make visible when the snapshot completes.
    pub pending: Vec<PendingFile>,
    /// Next part-file sequence number.
    pub next_seq: u64,
    /// The sink had finished.
    pub finished: bool,
    /// A Kafka sink: its part files are committed by producing them in a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<crate::connectors::KafkaCommitTarget>,
    /// An object-storage sink: its part files are committed by uploading them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<crate::connectors::ObjectCommitTarget>,
}

/// A part file awaiting commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingFile {
    /// Hidden name (starts with `.`) while pending.
    pub hidden: String,
    /// Name once committed.
    pub visible: String,
}
