//! Keyed state: the [`StateBackend`] trait, its two implementations, and
//! [`KeyedStateStore`], which lays out keys so each key group is a contiguous range.
//!
//! Key layout: `key_group (u16 BE) ‖ state id (u16 BE) ‖ key length (u32 BE) ‖ key ‖ user key`.
//! A key group's state is one prefix scan, which is what rescaling needs.
//! Values carry an 8-byte expiry (processing-time ms, `i64::MAX` for "never") for TTL.

mod memory;
mod rocks;

pub use memory::MemoryBackend;
pub use rocks::RocksDbBackend;

use std::collections::HashMap;
use std::path::Path;

/// Which backend a job keeps its state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum)]
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
            BackendKind::Rocksdb => Box::new(RocksDbBackend::open(dir)?),
        })
    }
}

/// A failure of the state backend. The host traps the guest on it: a guest never
/// swallows a failed state access.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
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
    /// Remove every entry whose key starts with `prefix`.
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        for (k, _) in self.scan_prefix(prefix)? {
            self.delete(&k)?;
        }
        Ok(())
    }
}

/// The key-group of a key: `fnv1a64(key) % max_parallelism`.
///
/// FNV-1a is fixed here (not `std`'s randomized hasher) so that partitioning is stable
/// across processes and versions, which savepoints and rescaling rely on.
pub fn key_group(key: &[u8], max_parallelism: u16) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Mix the high bits in: FNV's low bits alone are weak for short keys.
    h ^= h >> 32;
    (h % u64::from(max_parallelism.max(1))) as u16
}

/// The key groups a subtask owns: Flink's contiguous ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroupRange {
    /// First key group (inclusive).
    pub start: u16,
    /// Last key group (exclusive).
    pub end: u16,
}

impl KeyGroupRange {
    /// The range of `subtask` among `parallelism` subtasks for `max_parallelism` groups.
    pub fn for_subtask(subtask: u32, parallelism: u32, max_parallelism: u16) -> Self {
        let m = u32::from(max_parallelism);
        let start = (subtask * m).div_ceil(parallelism);
        let end = ((subtask + 1) * m).div_ceil(parallelism);
        KeyGroupRange { start: start as u16, end: end as u16 }
    }

    /// The subtask among `parallelism` that owns `group`.
    pub fn subtask_for(group: u16, parallelism: u32, max_parallelism: u16) -> u32 {
        u32::from(group) * parallelism / u32::from(max_parallelism.max(1))
    }

    /// Whether `group` is in the range.
    pub fn contains(&self, group: u16) -> bool {
        (self.start..self.end).contains(&group)
    }
}

/// The kind of a declared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// One value per key.
    Value,
    /// A list per key.
    List,
    /// A map per key.
    Map,
}

/// A declared state of an operator.
#[derive(Debug, Clone)]
pub struct StateDescriptor {
    /// The name the guest gave it.
    pub name: String,
    /// Value, list or map.
    pub kind: StateKind,
    /// Time-to-live in ms of processing time, if any.
    pub ttl_ms: Option<u64>,
}

/// Typed keyed state over a [`StateBackend`], for one operator subtask.
pub struct KeyedStateStore {
    backend: Box<dyn StateBackend>,
    max_parallelism: u16,
    states: Vec<StateDescriptor>,
    by_name: HashMap<String, u16>,
}

/// The current key with its key group, as the runtime selected it.
#[derive(Debug, Clone, Default)]
pub struct CurrentKey {
    /// The key's bytes, `None` outside keyed processing.
    pub key: Option<Vec<u8>>,
    /// Its key group.
    pub group: u16,
}

const NO_EXPIRY: i64 = i64::MAX;

/// Errors using a state descriptor wrongly (the guest's fault: traps with this message).
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// The name is declared with another kind.
    #[error("state '{name}' is already declared as {existing:?}, not {requested:?}")]
    KindMismatch {
        /// State name.
        name: String,
        /// Kind it has.
        existing: StateKind,
        /// Kind asked for.
        requested: StateKind,
    },
    /// Too many states.
    #[error("an operator may declare at most 65535 states")]
    TooMany,
}

impl KeyedStateStore {
    /// Keyed state on `backend`, partitioned into `max_parallelism` key groups.
    pub fn new(backend: Box<dyn StateBackend>, max_parallelism: u16) -> Self {
        KeyedStateStore { backend, max_parallelism, states: Vec::new(), by_name: HashMap::new() }
    }

    /// The number of key groups.
    pub fn max_parallelism(&self) -> u16 {
        self.max_parallelism
    }

    /// Declare (or reopen) a state; returns its index for later calls.
    pub fn declare(&mut self, name: &str, kind: StateKind, ttl_ms: Option<u64>) -> Result<u16, DeclareError> {
        if let Some(&id) = self.by_name.get(name) {
            let existing = self.states[usize::from(id)].kind;
            if existing != kind {
                return Err(DeclareError::KindMismatch { name: name.to_owned(), existing, requested: kind });
            }
            self.states[usize::from(id)].ttl_ms = ttl_ms;
            return Ok(id);
        }
        let id = u16::try_from(self.states.len()).map_err(|_| DeclareError::TooMany)?;
        self.states.push(StateDescriptor { name: name.to_owned(), kind, ttl_ms });
        self.by_name.insert(name.to_owned(), id);
        Ok(id)
    }

    /// The declared states.
    pub fn descriptors(&self) -> &[StateDescriptor] {
        &self.states
    }

    fn prefix(&self, state: u16, key: &CurrentKey) -> Vec<u8> {
        let k = key.key.as_deref().unwrap_or_default();
        let mut p = Vec::with_capacity(8 + k.len());
        p.extend_from_slice(&key.group.to_be_bytes());
        p.extend_from_slice(&state.to_be_bytes());
        p.extend_from_slice(&(k.len() as u32).to_be_bytes());
        p.extend_from_slice(k);
        p
    }

    fn wrap(&self, state: u16, value: &[u8], now_ms: i64) -> Vec<u8> {
        let expiry = match self.states.get(usize::from(state)).and_then(|s| s.ttl_ms) {
            Some(ttl) => now_ms.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            None => NO_EXPIRY,
        };
        let mut v = Vec::with_capacity(8 + value.len());
        v.extend_from_slice(&expiry.to_be_bytes());
        v.extend_from_slice(value);
        v
    }

    fn unwrap_live(stored: Vec<u8>, now_ms: i64) -> Result<Option<Vec<u8>>, StateError> {
        if stored.len() < 8 {
            return Err(StateError::Corrupt("value shorter than its expiry header"));
        }
        let mut e = [0u8; 8];
        e.copy_from_slice(&stored[..8]);
        if i64::from_be_bytes(e) <= now_ms {
            return Ok(None);
        }
        let mut value = stored;
        value.drain(..8);
        Ok(Some(value))
    }

    /// Read the current key's entry of `state` (value state, or a whole list).
    pub fn get(&self, state: u16, key: &CurrentKey, now_ms: i64) -> Result<Option<Vec<u8>>, StateError> {
        match self.backend.get(&self.prefix(state, key))? {
            Some(stored) => Self::unwrap_live(stored, now_ms),
            None => Ok(None),
        }
    }

    /// Write the current key's entry of `state`.
    pub fn put(&mut self, state: u16, key: &CurrentKey, value: &[u8], now_ms: i64) -> Result<(), StateError> {
        let k = self.prefix(state, key);
        let v = self.wrap(state, value, now_ms);
        self.backend.put(&k, &v)
    }

    /// Remove the current key's entry of `state` (including every map entry).
    pub fn clear(&mut self, state: u16, key: &CurrentKey) -> Result<(), StateError> {
        let k = self.prefix(state, key);
        self.backend.delete_prefix(&k)
    }

    /// Read one list: elements are stored as `len:u32 BE ‖ bytes` back to back.
    pub fn list_get(&self, state: u16, key: &CurrentKey, now_ms: i64) -> Result<Vec<Vec<u8>>, StateError> {
        let Some(raw) = self.get(state, key, now_ms)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < raw.len() {
            let len_bytes = raw.get(pos..pos + 4).ok_or(StateError::Corrupt("truncated list element length"))?;
            let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
            pos += 4;
            let item = raw.get(pos..pos + len).ok_or(StateError::Corrupt("truncated list element"))?;
            out.push(item.to_vec());
            pos += len;
        }
        Ok(out)
    }

    /// Append one element to a list.
    pub fn list_add(&mut self, state: u16, key: &CurrentKey, value: &[u8], now_ms: i64) -> Result<(), StateError> {
        let mut raw = self.get(state, key, now_ms)?.unwrap_or_default();
        raw.extend_from_slice(&(value.len() as u32).to_be_bytes());
        raw.extend_from_slice(value);
        self.put(state, key, &raw, now_ms)
    }

    /// Replace a list.
    pub fn list_update(&mut self, state: u16, key: &CurrentKey, values: &[Vec<u8>], now_ms: i64) -> Result<(), StateError> {
        if values.is_empty() {
            return self.clear(state, key);
        }
        let mut raw = Vec::new();
        for v in values {
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v);
        }
        self.put(state, key, &raw, now_ms)
    }

    fn map_key(&self, state: u16, key: &CurrentKey, user_key: &[u8]) -> Vec<u8> {
        let mut k = self.prefix(state, key);
        // The map's own entry marker keeps `get` of the bare prefix (value layout) apart.
        k.push(0x01);
        k.extend_from_slice(user_key);
        k
    }

    /// Read a map entry.
    pub fn map_get(&self, state: u16, key: &CurrentKey, user_key: &[u8], now_ms: i64) -> Result<Option<Vec<u8>>, StateError> {
        match self.backend.get(&self.map_key(state, key, user_key))? {
            Some(stored) => Self::unwrap_live(stored, now_ms),
            None => Ok(None),
        }
    }

    /// Write a map entry.
    pub fn map_put(&mut self, state: u16, key: &CurrentKey, user_key: &[u8], value: &[u8], now_ms: i64) -> Result<(), StateError> {
        let k = self.map_key(state, key, user_key);
        let v = self.wrap(state, value, now_ms);
        self.backend.put(&k, &v)
    }

    /// Remove a map entry.
    pub fn map_remove(&mut self, state: u16, key: &CurrentKey, user_key: &[u8]) -> Result<(), StateError> {
        let k = self.map_key(state, key, user_key);
        self.backend.delete(&k)
    }

    /// All live entries of the current key's map, in user-key byte order.
    pub fn map_entries(&self, state: u16, key: &CurrentKey, now_ms: i64) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        let mut prefix = self.prefix(state, key);
        prefix.push(0x01);
        let mut out = Vec::new();
        for (k, v) in self.backend.scan_prefix(&prefix)? {
            if let Some(v) = Self::unwrap_live(v, now_ms)? {
                out.push((k[prefix.len()..].to_vec(), v));
            }
        }
        Ok(out)
    }

    /// Every raw entry, in key order (grouped by key group).
    pub fn scan_all(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        self.backend.scan_prefix(&[])
    }

    /// Write a raw entry (restore).
    pub fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.backend.put(key, value)
    }

    /// A native checkpoint of the backend into `dir`, if it has one.
    pub fn native_checkpoint(&self, dir: &Path) -> Result<bool, StateError> {
        self.backend.native_checkpoint(dir)
    }

    /// Every raw entry of one key group (for snapshots and rescaling).
    pub fn scan_key_group(&self, group: u16) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        self.backend.scan_prefix(&group.to_be_bytes())
    }
}

#[cfg(test)]
mod tests;
