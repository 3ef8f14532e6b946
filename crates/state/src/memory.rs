//! The in-memory backend: a hash map for point reads and writes (the per-record path),
//! plus an ordered index of the keys for prefix scans (key groups, map state, clear).

use std::collections::{BTreeSet, HashMap};

use crate::backend::{StateBackend, StateError};

/// State kept in memory.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    values: HashMap<Vec<u8>, Vec<u8>>,
    order: BTreeSet<Vec<u8>>,
}

impl MemoryBackend {
    fn prefixed<'a>(&'a self, prefix: &'a [u8]) -> impl Iterator<Item = &'a Vec<u8>> + 'a {
        self.order.range(prefix.to_vec()..).take_while(move |k| k.starts_with(prefix))
    }
}

impl StateBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.values.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        match self.values.get_mut(key) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                self.values.insert(key.to_vec(), value.to_vec());
                self.order.insert(key.to_vec());
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        if self.values.remove(key).is_some() {
            self.order.remove(key);
        }
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        Ok(self.prefixed(prefix).filter_map(|k| self.values.get(k).map(|v| (k.clone(), v.clone()))).collect())
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        let doomed: Vec<Vec<u8>> = self.prefixed(prefix).cloned().collect();
        for k in doomed {
            self.values.remove(&k);
            self.order.remove(&k);
        }
        Ok(())
    }
}
