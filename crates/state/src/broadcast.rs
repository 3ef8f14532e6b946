//! Broadcast state: named maps every parallel instance of an operator holds the same
//! copy of, changed only while a broadcast record is handled. Kept in memory (like
//! Flink's broadcast state, it is meant for rules and dimensions, not for big data),
//! snapshotted once per operator and restored whole to every instance.

use std::collections::BTreeMap;

/// The broadcast maps of one operator instance, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastState {
    maps: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl BroadcastState {
    /// The map called `name` (empty if never written).
    pub fn map(&self, name: &str) -> Option<&BTreeMap<Vec<u8>, Vec<u8>>> {
        self.maps.get(name)
    }

    /// The map called `name`, created when absent.
    pub fn map_mut(&mut self, name: &str) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
        self.maps.entry(name.to_owned()).or_default()
    }

    /// Every (map name, key, value), in name and key order: what a snapshot stores.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[u8], &[u8])> {
        self.maps.iter().flat_map(|(name, m)| m.iter().map(move |(k, v)| (name.as_str(), k.as_slice(), v.as_slice())))
    }

    /// Put one entry back (restore).
    pub fn insert(&mut self, name: &str, key: Vec<u8>, value: Vec<u8>) {
        self.map_mut(name).insert(key, value);
    }

    /// Take the map called `name` out.
    pub fn remove(&mut self, name: &str) -> Option<BTreeMap<Vec<u8>, Vec<u8>>> {
        self.maps.remove(name)
    }

    /// Whether no map holds an entry.
    pub fn is_empty(&self) -> bool {
        self.maps.values().all(BTreeMap::is_empty)
    }

    /// Number of entries over all maps.
    pub fn len(&self) -> usize {
        self.maps.values().map(BTreeMap::len).sum()
    }
}
