//! The canonical state file of one operator subtask: self-describing, organised by key
//! group so any subtask of any parallelism can take the groups it owns.
//!
//! ```text
//! file    := "RVSTATE\0" version:u32 header-len:u32 header:JSON groups-count:u32 group*
//! group   := key-group:u16 n:u64 entry*  t:u32 timer*  w:u32 window-timer*
//! entry   := klen:u32 key vlen:u32 value          (raw backend key and value)
//! timer   := domain:u8 (0 event, 1 processing) ts:i64 klen:u32 key
//! window-timer := ts:i64 kind:u8 start:i64 end:i64 klen:u32 key
//! broadcast := n:u32 (nlen:u32 name klen:u32 key vlen:u32 value)*   (version 2 only)
//! ```
//! Version 2 adds the operator's broadcast state after the key groups (written by
//! subtask 0 of an operator with broadcast inputs); files without one are written as
//! version 1, byte for byte as before. Host timers (`window-timer`) are of kinds 0/1
//! (window fire/cleanup), 2/3 (interval-join buffer cleanup, left/right) and 4 (a keyed
//! record held for a broadcast input).
//! Integers little-endian. Raw keys and values follow `rivulet_state::layout`, with the
//! header mapping state ids to names and kinds. See `docs/checkpoints.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use rivulet_state::{StateKind, TimeDomain};

use crate::CheckpointError;

const MAGIC: &[u8; 8] = b"RVSTATE\0";
/// The newest format version written (and the oldest still read).
const FORMAT_VERSION: u32 = 2;
const FIRST_FORMAT_VERSION: u32 = 1;

/// A declared state as stored in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDecl {
    /// Id used in raw keys.
    pub id: u16,
    /// Name the guest (or host, `__rivulet.*`) declared.
    pub name: String,
    /// `value`, `list` or `map`.
    pub kind: StateKind,
    /// TTL in ms, if any.
    pub ttl_ms: Option<u64>,
}

/// What a state file says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateHeader {
    /// Operator uid.
    pub uid: String,
    /// Subtask index and parallelism when written.
    pub subtask: u32,
    /// Parallelism when written.
    pub parallelism: u32,
    /// Key groups of the job.
    pub max_parallelism: u16,
    /// Key groups `[start, end)` of this subtask.
    pub key_groups: (u16, u16),
    /// Plugin digest.
    pub plugin_digest: String,
    /// The operator's state version.
    pub state_version: u32,
    /// Declared states.
    pub states: Vec<StateDecl>,
    /// The operator's watermark.
    pub watermark: i64,
    /// The window operator's record sequence counter.
    pub window_seq: u64,
    /// Entries are not in this file but in the RocksDB files listed by the manifest.
    pub entries_in_db: bool,
}

/// A guest timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerEntry {
    /// Event or processing time.
    pub domain: TimeDomain,
    /// When it fires.
    pub time: i64,
    /// Its key.
    pub key: Vec<u8>,
}

/// A timer of the host's window operator: when, what it does, for which key and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowTimer {
    /// When it fires.
    pub time: i64,
    /// 0: evaluate the window; 1: clean it up.
    pub kind: u8,
    /// The key.
    pub key: Vec<u8>,
    /// The window's start.
    pub start: i64,
    /// The window's end.
    pub end: i64,
}

/// The contents of one key group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupState {
    /// Raw backend entries.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Guest timers.
    pub timers: Vec<TimerEntry>,
    /// Window timers.
    pub window_timers: Vec<WindowTimer>,
}

/// A decoded state file.
#[derive(Debug, Clone)]
pub struct OperatorState {
    /// Header.
    pub header: StateHeader,
    /// Key group → contents.
    pub groups: BTreeMap<u16, GroupState>,
    /// The operator's broadcast state (map name, key, value), if this file holds it.
    pub broadcast: Vec<(String, Vec<u8>, Vec<u8>)>,
}

impl OperatorState {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let mut out = Vec::with_capacity(64 + header.len());
        out.extend_from_slice(MAGIC);
        let version = if self.broadcast.is_empty() { FIRST_FORMAT_VERSION } else { FORMAT_VERSION };
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for (g, st) in &self.groups {
            out.extend_from_slice(&g.to_le_bytes());
            out.extend_from_slice(&(st.entries.len() as u64).to_le_bytes());
            for (k, v) in &st.entries {
                put_bytes(&mut out, k);
                put_bytes(&mut out, v);
            }
            out.extend_from_slice(&(st.timers.len() as u32).to_le_bytes());
            for t in &st.timers {
                out.push(if t.domain == TimeDomain::EventTime { 0 } else { 1 });
                out.extend_from_slice(&t.time.to_le_bytes());
                put_bytes(&mut out, &t.key);
            }
            out.extend_from_slice(&(st.window_timers.len() as u32).to_le_bytes());
            for w in &st.window_timers {
                out.extend_from_slice(&w.time.to_le_bytes());
                out.push(w.kind);
                out.extend_from_slice(&w.start.to_le_bytes());
                out.extend_from_slice(&w.end.to_le_bytes());
                put_bytes(&mut out, &w.key);
            }
        }
        if !self.broadcast.is_empty() {
            out.extend_from_slice(&(self.broadcast.len() as u32).to_le_bytes());
            for (name, k, v) in &self.broadcast {
                put_bytes(&mut out, name.as_bytes());
                put_bytes(&mut out, k);
                put_bytes(&mut out, v);
            }
        }
        out
    }

    /// Decode, naming `path` in errors.
    pub fn decode(bytes: &[u8], path: &str) -> Result<OperatorState, CheckpointError> {
        let corrupt = |reason: &str| CheckpointError::Corrupt { path: path.to_owned(), reason: reason.to_owned() };
        let mut r = Reader { b: bytes, pos: 0 };
        if r.take(8).map_err(|_| corrupt("too short for a state file"))? != MAGIC {
            return Err(corrupt("not a Rivulet state file (bad magic)"));
        }
        let version = r.u32().map_err(|_| corrupt("truncated header"))?;
        if !(FIRST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(CheckpointError::UnsupportedVersion { path: path.to_owned(), found: version, supported: FORMAT_VERSION });
        }
        let hlen = r.u32().map_err(|_| corrupt("truncated header"))? as usize;
        let header: StateHeader =
            serde_json::from_slice(r.take(hlen).map_err(|_| corrupt("truncated header"))?).map_err(|e| corrupt(&format!("bad header: {e}")))?;
        let n = r.u32().map_err(|_| corrupt("truncated"))?;
        let mut groups = BTreeMap::new();
        let t = |_| corrupt("truncated key-group section");
        for _ in 0..n {
            let g = u16::from_le_bytes(r.take(2).map_err(t)?.try_into().map_err(|_| corrupt("x"))?);
            let mut st = GroupState::default();
            let ne = r.u64().map_err(t)?;
            for _ in 0..ne {
                let k = r.bytes().map_err(t)?;
                let v = r.bytes().map_err(t)?;
                st.entries.push((k, v));
            }
            let nt = r.u32().map_err(t)?;
            for _ in 0..nt {
                let d = r.take(1).map_err(t)?[0];
                let ts = r.i64().map_err(t)?;
                let key = r.bytes().map_err(t)?;
                let domain = if d == 0 { TimeDomain::EventTime } else { TimeDomain::ProcessingTime };
                st.timers.push(TimerEntry { domain, time: ts, key });
            }
            let nw = r.u32().map_err(t)?;
            for _ in 0..nw {
                let ts = r.i64().map_err(t)?;
                let kind = r.take(1).map_err(t)?[0];
                let start = r.i64().map_err(t)?;
                let end = r.i64().map_err(t)?;
                let key = r.bytes().map_err(t)?;
                st.window_timers.push(WindowTimer { time: ts, kind, key, start, end });
            }
            groups.insert(g, st);
        }
        let mut broadcast = Vec::new();
        if version >= 2 {
            let t = |_| corrupt("truncated broadcast-state section");
            let n = r.u32().map_err(t)?;
            for _ in 0..n {
                let name = String::from_utf8(r.bytes().map_err(t)?).map_err(|_| corrupt("a broadcast state name is not UTF-8"))?;
                let k = r.bytes().map_err(t)?;
                let v = r.bytes().map_err(t)?;
                broadcast.push((name, k, v));
            }
        }
        if r.pos != bytes.len() {
            return Err(corrupt("trailing bytes after the last key group"));
        }
        Ok(OperatorState { header, groups, broadcast })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        let end = self.pos.checked_add(n).ok_or(())?;
        let s = self.b.get(self.pos..end).ok_or(())?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ()> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| ())?))
    }
    fn u64(&mut self) -> Result<u64, ()> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| ())?))
    }
    fn i64(&mut self) -> Result<i64, ()> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().map_err(|_| ())?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, ()> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let mut groups = BTreeMap::new();
        groups.insert(
            3,
            GroupState {
                entries: vec![(vec![0, 3, 0, 0, 0, 0, 0, 1, b'a'], vec![1, 2, 3])],
                timers: vec![TimerEntry { domain: TimeDomain::EventTime, time: 42, key: b"a".to_vec() }],
                window_timers: vec![WindowTimer { time: 99, kind: 0, key: b"a".to_vec(), start: 0, end: 100 }],
            },
        );
        let st = OperatorState {
            header: StateHeader {
                uid: "u".into(),
                subtask: 0,
                parallelism: 1,
                max_parallelism: 128,
                key_groups: (0, 128),
                plugin_digest: "sha256:x".into(),
                state_version: 1,
                states: vec![StateDecl { id: 0, name: "count".into(), kind: StateKind::Value, ttl_ms: None }],
                watermark: 7,
                window_seq: 5,
                entries_in_db: false,
            },
            groups,
            broadcast: Vec::new(),
        };
        let bytes = st.encode();
        assert_eq!(bytes[8..12], 1u32.to_le_bytes(), "without broadcast state: version 1, as before");
        let back = OperatorState::decode(&bytes, "p").expect("decodes");
        assert_eq!(back.groups, st.groups);
        assert_eq!(back.header.watermark, 7);
        assert!(OperatorState::decode(&bytes[..bytes.len() - 1], "p").is_err());
        assert!(OperatorState::decode(b"garbage!", "p").is_err());
        let with_rules = OperatorState { broadcast: vec![("rules".into(), b"r1".to_vec(), b"{}".to_vec())], ..st };
        let bytes = with_rules.encode();
        assert_eq!(bytes[8..12], 2u32.to_le_bytes());
        let back = OperatorState::decode(&bytes, "p").expect("decodes");
        assert_eq!(back.broadcast, with_rules.broadcast);
        assert_eq!(back.groups, with_rules.groups);
        assert!(OperatorState::decode(&bytes[..bytes.len() - 2], "p").is_err());
    }
}
