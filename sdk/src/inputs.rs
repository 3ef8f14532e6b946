//! What an operator with several inputs sees: which input a record came from, the
//! records of a fired window per input, and broadcast state (built only for guests).

use std::cell::RefCell;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::rivulet::operator as wit;
use crate::Record;
use crate::guest::{decode, encode};

/// Which input a record came from: its index and its name in the job spec (`main` for
/// an operator whose spec lists its inputs without names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Index, in the spec's order of named inputs.
    pub index: u32,
    /// Name.
    pub name: String,
}

thread_local! {
    /// The operator's input names, asked of the host once.
    static INPUT_NAMES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

pub(crate) fn input(index: u32) -> Input {
    let name = INPUT_NAMES.with(|n| {
        let mut n = n.borrow_mut();
        let names = n.get_or_insert_with(wit::context::input_names);
        names.get(index as usize).cloned().unwrap_or_else(|| format!("input-{index}"))
    });
    Input { index, name }
}

/// The index of the input called `name`, if the operator has one.
pub fn input_index(name: &str) -> Option<u32> {
    INPUT_NAMES.with(|n| {
        let mut n = n.borrow_mut();
        let names = n.get_or_insert_with(wit::context::input_names);
        names.iter().position(|x| x == name).map(|i| i as u32)
    })
}

/// A map of `K` to `V` that every parallel instance holds the same copy of (Flink's
/// broadcast state), JSON-encoded. Written only in [`Operator::process_broadcast`]; a
/// write anywhere else traps. Checkpointed once and restored to every instance.
pub struct BroadcastMapState<K, V> {
    handle: wit::broadcast_state::BroadcastMap,
    _t: PhantomData<(K, V)>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> BroadcastMapState<K, V> {
    /// Declare the broadcast map `name`.
    pub fn new(name: &str) -> Self {
        BroadcastMapState { handle: wit::broadcast_state::BroadcastMap::new(name), _t: PhantomData }
    }
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        self.handle.get(&encode(key)).map(|b| decode(&b, "broadcast state value"))
    }
    /// Insert or replace `key` (only in `process_broadcast`).
    pub fn put(&self, key: &K, value: &V) {
        self.handle.put(&encode(key), &encode(value));
    }
    /// Remove `key` (only in `process_broadcast`).
    pub fn remove(&self, key: &K) {
        self.handle.remove(&encode(key));
    }
    /// Every entry, in the byte order of the encoded keys.
    pub fn entries(&self) -> Vec<(K, V)> {
        self.handle.entries().iter().map(|(k, v)| (decode(k, "broadcast state key"), decode(v, "broadcast state value"))).collect()
    }
    /// Remove every entry (only in `process_broadcast`).
    pub fn clear(&self) {
        self.handle.clear();
    }
}

/// The records of one fired window of the current key, per input (a co-group).
pub struct CoGroup<'a> {
    pub(crate) inputs: Vec<Vec<Record<'a>>>,
}

impl<'a> CoGroup<'a> {
    /// The window's records of input `index` (empty if it had none).
    pub fn input(&self, index: u32) -> &[Record<'a>] {
        self.inputs.get(index as usize).map(Vec::as_slice).unwrap_or_default()
    }
    /// The window's records of the input called `name` (empty if it had none).
    pub fn named(&self, name: &str) -> &[Record<'a>] {
        input_index(name).map(|i| self.input(i)).unwrap_or_default()
    }
    /// How many inputs.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }
    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}
