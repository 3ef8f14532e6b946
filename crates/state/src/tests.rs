//! Unit tests of the keyed layer, and a differential test of the two backends.

use super::*;
use proptest::prelude::*;

fn key(k: &str, maxp: u16) -> CurrentKey {
    CurrentKey { key: Some(k.as_bytes().to_vec()), group: key_group(k.as_bytes(), maxp) }
}

#[test]
fn value_state_is_scoped_to_the_current_key_and_expires() {
    let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
    let v = s.declare("v", StateKind::Value, None).expect("declare");
    let t = s.declare("t", StateKind::Value, Some(100)).expect("declare");
    let (a, b) = (key("a", 128), key("b", 128));
    s.put(v, &a, b"1", 0).expect("put");
    assert_eq!(s.get(v, &a, 0).expect("get"), Some(b"1".to_vec()));
    assert_eq!(s.get(v, &b, 0).expect("get"), None);
    s.put(t, &a, b"x", 1000).expect("put");
    assert_eq!(s.get(t, &a, 1099).expect("get"), Some(b"x".to_vec()));
    assert_eq!(s.get(t, &a, 1100).expect("get"), None);
    assert!(s.declare("v", StateKind::List, None).is_err());
}

#[test]
fn list_and_map_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    for backend in [BackendKind::Memory, BackendKind::Rocksdb] {
        let mut s = KeyedStateStore::new(backend.open(dir.path()).expect("open"), 128);
        let l = s.declare("l", StateKind::List, None).expect("declare");
        let m = s.declare("m", StateKind::Map, None).expect("declare");
        let a = key("a", 128);
        s.list_add(l, &a, b"x", 0).expect("add");
        s.list_add(l, &a, b"", 0).expect("add");
        assert_eq!(s.list_get(l, &a, 0).expect("get"), vec![b"x".to_vec(), vec![]]);
        s.map_put(m, &a, b"k2", b"2", 0).expect("put");
        s.map_put(m, &a, b"k1", b"1", 0).expect("put");
        assert_eq!(s.map_entries(m, &a, 0).expect("entries"), vec![(b"k1".to_vec(), b"1".to_vec()), (b"k2".to_vec(), b"2".to_vec())]);
        s.clear(m, &a).expect("clear");
        assert!(s.map_entries(m, &a, 0).expect("entries").is_empty());
        assert_eq!(s.list_get(l, &a, 0).expect("get").len(), 2, "{backend:?}: clearing a map leaves the list");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, Vec<u8>),
    Clear(u8, u8),
    ListAdd(u8, Vec<u8>),
    MapPut(u8, u8, Vec<u8>),
    MapRemove(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..6);
    prop_oneof![
        (0..4u8, 0..2u8, bytes.clone()).prop_map(|(k, s, v)| Op::Put(k, s, v)),
        (0..4u8, 0..4u8).prop_map(|(k, s)| Op::Clear(k, s)),
        (0..4u8, bytes.clone()).prop_map(|(k, v)| Op::ListAdd(k, v)),
        (0..4u8, 0..3u8, bytes).prop_map(|(k, u, v)| Op::MapPut(k, u, v)),
        (0..4u8, 0..3u8).prop_map(|(k, u)| Op::MapRemove(k, u)),
    ]
}

fn apply(s: &mut KeyedStateStore, ops: &[Op]) -> Vec<String> {
    let ids = [
        s.declare("v0", StateKind::Value, None).expect("declare"),
        s.declare("v1", StateKind::Value, None).expect("declare"),
        s.declare("l", StateKind::List, None).expect("declare"),
        s.declare("m", StateKind::Map, None).expect("declare"),
    ];
    let mut seen = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, st, v) => s.put(ids[usize::from(*st)], &key(&k.to_string(), 16), v, 0).expect("put"),
            Op::Clear(k, st) => s.clear(ids[usize::from(*st)], &key(&k.to_string(), 16)).expect("clear"),
            Op::ListAdd(k, v) => s.list_add(ids[2], &key(&k.to_string(), 16), v, 0).expect("add"),
            Op::MapPut(k, u, v) => s.map_put(ids[3], &key(&k.to_string(), 16), &[*u], v, 0).expect("map put"),
            Op::MapRemove(k, u) => s.map_remove(ids[3], &key(&k.to_string(), 16), &[*u]).expect("map remove"),
        }
        for k in 0..4u8 {
            let ck = key(&k.to_string(), 16);
            seen.push(format!(
                "{:?} {:?} {:?} {:?}",
                s.get(ids[0], &ck, 0).expect("get"),
                s.get(ids[1], &ck, 0).expect("get"),
                s.list_get(ids[2], &ck, 0).expect("list"),
                s.map_entries(ids[3], &ck, 0).expect("map")
            ));
        }
    }
    for g in 0..16 {
        seen.push(format!("{:?}", s.scan_key_group(g).expect("scan")));
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Memory and RocksDB give the same observations on any operation sequence.
    #[test]
    fn backends_agree(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut mem = KeyedStateStore::new(Box::new(MemoryBackend::default()), 16);
        let mut rocks = KeyedStateStore::new(Box::new(RocksDbBackend::open(dir.path()).expect("open")), 16);
        prop_assert_eq!(apply(&mut mem, &ops), apply(&mut rocks, &ops));
    }
}
