//! What flows on a channel between tasks.

use crate::batch::Batch;

/// Checkpoint (periodic, may be incremental, retained N) or savepoint (on demand,
/// canonical and self-contained, kept until deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Periodic checkpoint.
    Checkpoint,
    /// User-triggered savepoint.
    Savepoint,
}

/// How a savepoint writes operator state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotFormat {
    /// Every entry encoded into the state file by key group (the backend's files are
    /// not used): readable without RocksDB, the same bytes from either backend.
    #[default]
    Canonical,
    /// The backend's own files (a RocksDB checkpoint: hard links, copied as they are)
    /// beside a state file of timers: no entry is re-encoded, so it is written and
    /// restored at file speed. It restores at any parallelism and into either backend
    /// (other key groups are read out of the files). Backends without files (memory)
    /// write canonical state.
    Native,
}

/// The barrier: a checkpoint or savepoint marker flowing with the data. Everything a
/// channel carried before it belongs to the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Barrier {
    /// Snapshot id.
    pub id: u64,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Stop the job once the snapshot is taken (stop-with-savepoint).
    pub stop: bool,
    /// Savepoints: how operator state is written. Checkpoints follow the job's setting
    /// (incremental RocksDB files, or `--full-checkpoints`) and carry `Canonical`.
    pub format: SnapshotFormat,
}

/// One message on a channel. Records, watermarks, barriers and end-of-input travel in
/// one ordered stream per channel, so a watermark never overtakes the records before it.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Encoded records.
    Batch(Batch),
    /// No record with a smaller timestamp will follow on this channel.
    Watermark(i64),
    /// The channel's producer is idle: don't wait for its watermark.
    Idle,
    /// The channel's producer has finished.
    End,
    /// Checkpoint or savepoint barrier.
    Barrier(Barrier),
}

/// A message tagged with the input channel it arrived on.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Index of the input channel at the receiving task.
    pub channel: usize,
    /// The message.
    pub msg: Message,
}
