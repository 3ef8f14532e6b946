//! State entries decoded from the raw layout: what `migrate-state` and `savepoint
//! inspect` see, and how migrated entries are written back.

use std::collections::BTreeMap;

use crate::backend::StateError;
use crate::keyed::{CurrentKey, DeclareError, KeyedStateStore, StateKind};
use crate::layout;
use rivulet_dataflow::key_group;

/// One decoded state entry of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The state's name.
    pub state: String,
    /// The record key.
    pub key: Vec<u8>,
    /// The value.
    pub value: StateValue,
}

/// What an entry holds, by state kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateValue {
    /// A value state's value.
    Value(Vec<u8>),
    /// A list state's elements.
    List(Vec<Vec<u8>>),
    /// One map entry: user key and value.
    MapEntry(Vec<u8>, Vec<u8>),
}

/// Why migrated entries could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// A name reserved for the host.
    #[error("the reserved state name '{0}' (names starting with `__rivulet` belong to the host)")]
    Reserved(String),
    /// The name is declared with another kind.
    #[error(transparent)]
    Declare(#[from] DeclareError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] StateError),
}

impl StateEntry {
    /// Decode a raw entry, given the names and kinds of the state ids it may carry.
    /// `None` when the entry does not follow the layout or names an unknown state.
    pub fn decode(states: &BTreeMap<u16, (String, StateKind)>, raw_key: &[u8], raw_value: &[u8]) -> Option<StateEntry> {
        let k = layout::parse_key(raw_key)?;
        let (_, payload) = layout::split_value(raw_value)?;
        let (name, kind) = states.get(&k.state)?;
        let value = match kind {
            StateKind::Value => StateValue::Value(payload.to_vec()),
            StateKind::List => StateValue::List(layout::decode_list(payload)?),
            StateKind::Map => StateValue::MapEntry(k.user_key?.to_vec(), payload.to_vec()),
        };
        Some(StateEntry { state: name.clone(), key: k.key.to_vec(), value })
    }

    /// The kind of state the entry belongs to.
    pub fn kind(&self) -> StateKind {
        match self.value {
            StateValue::Value(_) => StateKind::Value,
            StateValue::List(_) => StateKind::List,
            StateValue::MapEntry(..) => StateKind::Map,
        }
    }

    /// A one-line human-readable form (`name[key] = value`).
    pub fn describe(&self) -> String {
        let key = String::from_utf8_lossy(&self.key);
        match &self.value {
            StateValue::Value(v) => format!("{}[{key}] = {}", self.state, String::from_utf8_lossy(v)),
            StateValue::List(items) => {
                let items: Vec<_> = items.iter().map(|i| String::from_utf8_lossy(i).into_owned()).collect();
                format!("{}[{key}] = [{}]", self.state, items.join(", "))
            }
            StateValue::MapEntry(k, v) => format!("{}[{key}][{}] = {}", self.state, String::from_utf8_lossy(k), String::from_utf8_lossy(v)),
        }
    }
}

impl KeyedStateStore {
    /// Write decoded entries (what a guest's `migrate-state` kept) into the store,
    /// declaring their states.
    pub fn write_entries(&mut self, entries: Vec<StateEntry>, now_ms: i64) -> Result<(), EntryError> {
        for e in entries {
            if e.state.starts_with("__rivulet") {
                return Err(EntryError::Reserved(e.state));
            }
            let id = self.declare(&e.state, e.kind(), None)?;
            let ck = CurrentKey { group: key_group(&e.key, self.max_parallelism()), key: Some(e.key) };
            match e.value {
                StateValue::Value(v) => self.put(id, &ck, &v, now_ms)?,
                StateValue::List(items) => self.list_update(id, &ck, &items, now_ms)?,
                StateValue::MapEntry(uk, v) => self.map_put(id, &ck, &uk, &v, now_ms)?,
            }
        }
        Ok(())
    }
}
