//! Keyed state handles: one value, a list or a map per key, stored by the host and
//! JSON-encoded (built only for guests).

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::rivulet::operator as wit;
use crate::guest::{decode, encode, sync_current_record};
use crate::state_cache::{CachedMap, CachedValue};

/// Optional time-to-live for state entries (processing time since the last write).
#[derive(Debug, Clone, Copy)]
pub struct Ttl(pub std::time::Duration);

fn ttl_ms(ttl: Option<Ttl>) -> Option<u64> {
    ttl.map(|t| t.0.as_millis().min(u64::MAX as u128) as u64)
}

/// One value of type `T` per key, stored by the host (JSON-encoded), cached in the guest
/// unless it has a TTL (see the crate's state cache: reads hit the host once per key,
/// writes go back once per key at the end of each call).
pub struct ValueState<T> {
    handle: ValueHandle,
    _t: PhantomData<T>,
}

enum ValueHandle {
    Cached(CachedValue),
    Direct(wit::keyed_state::ValueState),
}

impl<T: Serialize + DeserializeOwned> ValueState<T> {
    /// Declare the value state `name`.
    pub fn new(name: &str) -> Self {
        Self::with_ttl(name, None)
    }
    /// Declare the value state `name` with an optional TTL.
    pub fn with_ttl(name: &str, ttl: Option<Ttl>) -> Self {
        let raw = wit::keyed_state::ValueState::new(name, ttl_ms(ttl));
        let handle = if ttl.is_some() { ValueHandle::Direct(raw) } else { ValueHandle::Cached(CachedValue::new(raw)) };
        ValueState { handle, _t: PhantomData }
    }
    /// The current key's value.
    pub fn get(&self) -> Option<T> {
        let bytes = match &self.handle {
            ValueHandle::Cached(c) => c.get(),
            ValueHandle::Direct(h) => {
                sync_current_record();
                h.get()
            }
        };
        bytes.map(|b| decode(&b, "value state"))
    }
    /// Set the current key's value.
    pub fn set(&self, value: &T) {
        match &self.handle {
            ValueHandle::Cached(c) => c.set(Some(encode(value))),
            ValueHandle::Direct(h) => {
                sync_current_record();
                h.set(&encode(value));
            }
        }
    }
    /// Clear the current key's value.
    pub fn clear(&self) {
        match &self.handle {
            ValueHandle::Cached(c) => c.set(None),
            ValueHandle::Direct(h) => {
                sync_current_record();
                h.clear();
            }
        }
    }
}

/// A list of `T` per key, stored by the host (JSON-encoded elements).
pub struct ListState<T> {
    handle: wit::keyed_state::ListState,
    _t: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> ListState<T> {
    /// Declare the list state `name`.
    pub fn new(name: &str) -> Self {
        Self::with_ttl(name, None)
    }
    /// Declare the list state `name` with an optional TTL.
    pub fn with_ttl(name: &str, ttl: Option<Ttl>) -> Self {
        ListState { handle: wit::keyed_state::ListState::new(name, ttl_ms(ttl)), _t: PhantomData }
    }
    /// The current key's elements, in insertion order.
    pub fn get(&self) -> Vec<T> {
        sync_current_record();
        self.handle.get().iter().map(|b| decode(b, "list state element")).collect()
    }
    /// Append an element to the current key's list.
    pub fn add(&self, value: &T) {
        sync_current_record();
        self.handle.add(&encode(value));
    }
    /// Replace the current key's list.
    pub fn update(&self, values: &[T]) {
        let encoded: Vec<Vec<u8>> = values.iter().map(|v| encode(v)).collect();
        sync_current_record();
        self.handle.update(&encoded);
    }
    /// Clear the current key's list.
    pub fn clear(&self) {
        sync_current_record();
        self.handle.clear();
    }
}

/// A map from `K` to `V` per key, stored by the host (JSON-encoded keys and values);
/// single entries are cached in the guest unless it has a TTL (as [`ValueState`]).
pub struct MapState<K, V> {
    handle: MapHandle,
    _t: PhantomData<(K, V)>,
}

enum MapHandle {
    Cached(CachedMap),
    Direct(wit::keyed_state::MapState),
}

impl MapHandle {
    /// The host handle for an operation on the whole map (`forget`: it changes the map).
    fn whole(&self, forget: bool) -> &wit::keyed_state::MapState {
        match self {
            MapHandle::Cached(c) => c.whole(forget),
            MapHandle::Direct(h) => {
                sync_current_record();
                h
            }
        }
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> MapState<K, V> {
    /// Declare the map state `name`.
    pub fn new(name: &str) -> Self {
        Self::with_ttl(name, None)
    }
    /// Declare the map state `name` with an optional TTL.
    pub fn with_ttl(name: &str, ttl: Option<Ttl>) -> Self {
        let raw = wit::keyed_state::MapState::new(name, ttl_ms(ttl));
        let handle = if ttl.is_some() { MapHandle::Direct(raw) } else { MapHandle::Cached(CachedMap::new(raw)) };
        MapState { handle, _t: PhantomData }
    }
    /// The value under `key` in the current key's map.
    pub fn get(&self, key: &K) -> Option<V> {
        let bytes = match &self.handle {
            MapHandle::Cached(c) => with_encoded(key, |k| c.get(k)),
            MapHandle::Direct(h) => {
                sync_current_record();
                h.get(&encode(key))
            }
        };
        bytes.map(|b| decode(&b, "map state value"))
    }
    /// Insert or replace `key`.
    pub fn put(&self, key: &K, value: &V) {
        match &self.handle {
            MapHandle::Cached(c) => with_encoded(key, |k| c.set(k, Some(encode(value)))),
            MapHandle::Direct(h) => {
                sync_current_record();
                h.put(&encode(key), &encode(value));
            }
        }
    }
    /// Remove `key`.
    pub fn remove(&self, key: &K) {
        match &self.handle {
            MapHandle::Cached(c) => with_encoded(key, |k| c.set(k, None)),
            MapHandle::Direct(h) => {
                sync_current_record();
                h.remove(&encode(key));
            }
        }
    }
    /// Whether the map holds `key`.
    pub fn contains(&self, key: &K) -> bool {
        match &self.handle {
            MapHandle::Cached(c) => with_encoded(key, |k| c.get(k)).is_some(),
            MapHandle::Direct(h) => {
                sync_current_record();
                h.contains(&encode(key))
            }
        }
    }
    /// All keys of the current key's map.
    pub fn keys(&self) -> Vec<K> {
        self.handle.whole(false).keys().iter().map(|b| decode(b, "map state key")).collect()
    }
    /// All entries of the current key's map.
    pub fn entries(&self) -> Vec<(K, V)> {
        self.handle.whole(false).entries().iter().map(|(k, v)| (decode(k, "map state key"), decode(v, "map state value"))).collect()
    }
    /// Clear the current key's map.
    pub fn clear(&self) {
        self.handle.whole(true).clear();
    }
}

thread_local! {
    /// Reused for encoding map keys looked up in the cache.
    static KEY_SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Run `f` with `key` encoded as the SDK stores it, in a reused buffer.
fn with_encoded<K: Serialize + ?Sized, R>(key: &K, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = KEY_SCRATCH.with(std::cell::Cell::take);
    buf.clear();
    // As in `encode`: plain data types always serialize.
    serde_json::to_writer(&mut buf, key).unwrap_or_else(|e| panic!("rivulet-sdk: cannot encode a map key: {e}"));
    let result = f(&buf);
    KEY_SCRATCH.with(|s| s.set(buf));
    result
}
