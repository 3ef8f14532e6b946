//! The in-memory backend: one persistent ordered map (point reads and writes on the
//! per-record path, prefix scans for key groups, map state and clear) whose snapshot is
//! a constant-time copy that shares every node with the live map. Writes after a
//! snapshot copy only the nodes they touch (copy-on-write), so checkpoints never stop
//! the pipeline to copy the state.

use bytes::Bytes;
use imbl::OrdMap;

use crate::backend::{FrozenEntries, StateBackend, StateError};

/// State kept in memory.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    /// Keys and values as shared buffers, so a node copied after a snapshot copies
    /// reference counts, not bytes.
    entries: OrdMap<Bytes, Bytes>,
}

impl MemoryBackend {
    fn prefixed<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = (&'a Bytes, &'a Bytes)> + 'a {
        self.entries.range::<_, [u8]>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)).take_while(move |(k, _)| k.starts_with(prefix))
    }
}

impl StateBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.entries.get(key).map(|v| v.to_vec()))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let value = Bytes::copy_from_slice(value);
        match self.entries.get_mut(key) {
            Some(v) => *v = value,
            None => {
                self.entries.insert(Bytes::copy_from_slice(key), value);
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.entries.remove(key);
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        Ok(self.prefixed(prefix).map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        let doomed: Vec<Bytes> = self.prefixed(prefix).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.entries.remove(&k);
        }
        Ok(())
    }

    fn frozen(&self) -> Option<FrozenEntries> {
        Some(FrozenEntries(self.entries.clone()))
    }
}
