//! The storage a keyed store runs on.

use std::path::Path;

use crate::memory::MemoryBackend;
#[cfg(feature = "rocksdb")]
use crate::rocks::RocksDbBackend;

/// Which backend a job keeps its state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A sorted map in memory.
    Memory,
    /// An embedded RocksDB under the job's data directory.
    Rocksdb,
}

impl BackendKind {
    /// Open a backend of this kind; `dir` is used only by RocksDB.
    pub fn open(self, dir: &Path) -> Result<Box<dyn StateBackend>, StateError> {
        Ok(match self {
            BackendKind::Memory => Box::new(MemoryBackend::default()),
            #[cfg(feature = "rocksdb")]
            BackendKind::Rocksdb => Box::new(RocksDbBackend::open(dir)?),
            #[cfg(not(feature = "rocksdb"))]
            BackendKind::Rocksdb => {
                let _ = dir;
                return Err(StateError::Unavailable("this build has no RocksDB backend"));
            }
        })
    }
}

/// A failure of the state backend. The host traps the guest on it: a guest never
/// swallows a failed state access.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB reported an error.
    #[cfg(feature = "rocksdb")]
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The backend was left out of this build.
    #[cfg(not(feature = "rocksdb"))]
    #[error("{0}")]
    Unavailable(&'static str),
    /// The backend's directory could not be prepared.
    #[error("state directory {path}: {error}")]
    Dir {
        /// The directory.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A stored value does not have the layout the host wrote.
    #[error("corrupt state entry: {0}")]
    Corrupt(&'static str),
}

/// Ordered key-value storage for one operator subtask.
pub trait StateBackend: Send {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Insert or replace `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    /// Remove `key` (absent keys are fine).
    fn delete(&mut self, key: &[u8]) -> Result<(), StateError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError>;
    /// Write a consistent native checkpoint of the whole database into `dir` (a new
    /// directory). Returns `false` when the backend has no native format (memory).
    fn native_checkpoint(&self, dir: &Path) -> Result<bool, StateError> {
        let _ = dir;
        Ok(false)
    }
    /// A snapshot of every entry that later writes do not change, taken in constant time
    /// (a copy-on-write backend); `None` when the backend has none (RocksDB, whose
    /// checkpoints are native or a scan).
    fn frozen(&self) -> Option<FrozenEntries> {
        None
    }
    /// Remove every entry whose key starts with `prefix`.
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        for (k, _) in self.scan_prefix(prefix)? {
            self.delete(&k)?;
        }
        Ok(())
    }
}

/// Every entry of a backend at one instant, shared with the live state (which copies what
/// it changes afterwards): what the memory backend hands a checkpoint, to be encoded off
/// the pipeline's path.
#[derive(Debug, Clone)]
pub struct FrozenEntries(pub(crate) imbl::OrdMap<bytes::Bytes, bytes::Bytes>);

impl FrozenEntries {
    /// The entries in key order (raw backend keys, so each key group is a run).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
