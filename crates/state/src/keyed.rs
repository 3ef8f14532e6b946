//! Typed keyed state over a [`StateBackend`], scoped to the current key.

use std::collections::HashMap;
use std::path::Path;

use crate::backend::{StateBackend, StateError};
use crate::layout;

/// The kind of a declared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateKind {
    /// One value per key.
    Value,
    /// A list per key.
    List,
    /// A map per key.
    Map,
}

impl std::fmt::Display for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
        })
    }
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

/// The current key with its key group, as the runtime selected it.
#[derive(Debug, Clone, Default)]
pub struct CurrentKey {
    /// The key's bytes, `None` outside keyed processing.
    pub key: Option<Vec<u8>>,
    /// Its key group.
    pub group: u16,
}

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

/// Typed keyed state over a [`StateBackend`], for one operator subtask.
pub struct KeyedStateStore {
    backend: Box<dyn StateBackend>,
    max_parallelism: u16,
    states: Vec<StateDescriptor>,
    by_name: HashMap<String, u16>,
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
        layout::prefix(key.group, state, key.key.as_deref().unwrap_or_default())
    }

    fn wrap(&self, state: u16, value: &[u8], now_ms: i64) -> Vec<u8> {
        let expiry = match self.states.get(usize::from(state)).and_then(|s| s.ttl_ms) {
            Some(ttl) => now_ms.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            None => layout::NO_EXPIRY,
        };
        layout::wrap_value(value, expiry)
    }

    fn unwrap_live(stored: &[u8], now_ms: i64) -> Result<Option<Vec<u8>>, StateError> {
        let (expiry, payload) = layout::split_value(stored).ok_or(StateError::Corrupt("value shorter than its expiry header"))?;
        Ok((expiry > now_ms).then(|| payload.to_vec()))
    }

    /// Read the current key's entry of `state` (value state, or a whole list).
    pub fn get(&self, state: u16, key: &CurrentKey, now_ms: i64) -> Result<Option<Vec<u8>>, StateError> {
        match self.backend.get(&self.prefix(state, key))? {
            Some(stored) => Self::unwrap_live(&stored, now_ms),
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

    /// Read one list.
    pub fn list_get(&self, state: u16, key: &CurrentKey, now_ms: i64) -> Result<Vec<Vec<u8>>, StateError> {
        match self.get(state, key, now_ms)? {
            Some(raw) => layout::decode_list(&raw).ok_or(StateError::Corrupt("truncated list element")),
            None => Ok(Vec::new()),
        }
    }

    /// Append one element to a list.
    pub fn list_add(&mut self, state: u16, key: &CurrentKey, value: &[u8], now_ms: i64) -> Result<(), StateError> {
        let mut raw = self.get(state, key, now_ms)?.unwrap_or_default();
        layout::push_list_element(&mut raw, value);
        self.put(state, key, &raw, now_ms)
    }

    /// Replace a list.
    pub fn list_update(&mut self, state: u16, key: &CurrentKey, values: &[Vec<u8>], now_ms: i64) -> Result<(), StateError> {
        if values.is_empty() {
            return self.clear(state, key);
        }
        let raw = layout::encode_list(values.iter().map(Vec::as_slice));
        self.put(state, key, &raw, now_ms)
    }

    fn map_key(&self, state: u16, key: &CurrentKey, user_key: &[u8]) -> Vec<u8> {
        let mut k = self.prefix(state, key);
        // The map's own entry marker keeps `get` of the bare prefix (value layout) apart.
        k.push(layout::MAP_MARKER);
        k.extend_from_slice(user_key);
        k
    }

    /// Read a map entry.
    pub fn map_get(&self, state: u16, key: &CurrentKey, user_key: &[u8], now_ms: i64) -> Result<Option<Vec<u8>>, StateError> {
        match self.backend.get(&self.map_key(state, key, user_key))? {
            Some(stored) => Self::unwrap_live(&stored, now_ms),
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
        prefix.push(layout::MAP_MARKER);
        let mut out = Vec::new();
        for (k, v) in self.backend.scan_prefix(&prefix)? {
            if let Some(v) = Self::unwrap_live(&v, now_ms)? {
                out.push((k[prefix.len()..].to_vec(), v));
            }
        }
        Ok(out)
    }

    /// Every raw entry, in key order (grouped by key group).
    pub fn scan_all(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        self.backend.scan_prefix(&[])
    }

    /// Every raw entry at this instant, in constant time, if the backend can freeze its
    /// state (memory); the snapshot is then encoded off the pipeline's path.
    pub fn frozen(&self) -> Option<crate::FrozenEntries> {
        self.backend.frozen()
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
