//! Event-time windows applied by the host in front of a guest's `process-window`.
//!
//! The host assigns records to windows (tumbling, sliding, session with merging),
//! keeps their contents in the operator's keyed state (a reserved map state), fires a
//! window when the watermark passes its end, re-fires it for records that arrive late
//! but within the allowed lateness, purges it once the lateness has passed, and routes
//! records that are too late for every window to a side output, unchanged. What a
//! window computes is entirely the guest's.

use std::collections::{BTreeSet, HashSet};

use rivulet_checkpoint::snapshot::WindowTimer;
use rivulet_dataflow::{Batch, BatchBuilder};
use rivulet_job::{WindowKind, WindowSpec};
use rivulet_sdk::encode_record;
use rivulet_state::{CurrentKey, KeyedStateStore, StateError, StateKind, key_group};

/// The reserved state name holding window contents (guests cannot declare `__rivulet.*`).
pub const CONTENTS_STATE: &str = "__rivulet.window-contents";

/// A window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl Span {
    fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Fire,
    Cleanup,
}

/// A window due for evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// The key.
    pub key: Vec<u8>,
    /// The window.
    pub span: Span,
    /// The window's records per input (by input index), each in arrival order.
    pub inputs: Vec<Batch>,
}

/// The window assigner, trigger and store of one operator subtask.
pub struct WindowOperator {
    kind: WindowKind,
    size: i64,
    slide: i64,
    gap: i64,
    lateness: i64,
    /// The side-output tag for late records.
    pub late_tag: String,
    inputs: usize,
    state_id: Option<u16>,
    timers: BTreeSet<(i64, TimerKind, Vec<u8>, Span)>,
    seq: u64,
}

fn ukey_prefix(span: Span) -> [u8; 16] {
    let mut k = [0u8; 16];
    // Flip the sign bit so byte order is numeric order.
    k[..8].copy_from_slice(&((span.start as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&((span.end as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn span_of(ukey: &[u8]) -> Option<Span> {
    let s = u64::from_be_bytes(ukey.get(..8)?.try_into().ok()?) ^ (1 << 63);
    let e = u64::from_be_bytes(ukey.get(8..16)?.try_into().ok()?) ^ (1 << 63);
    Some(Span { start: s as i64, end: e as i64 })
}

impl WindowOperator {
    /// A window operator for `spec` (validated by the job graph) over `inputs` inputs.
    pub fn new(spec: &WindowSpec, inputs: usize) -> Self {
        WindowOperator {
            kind: spec.kind,
            size: spec.size_ms.unwrap_or(1).max(1),
            slide: spec.slide_ms.or(spec.size_ms).unwrap_or(1).max(1),
            gap: spec.gap_ms.unwrap_or(1).max(1),
            lateness: spec.allowed_lateness_ms.max(0),
            late_tag: spec.late_output.clone().unwrap_or_else(|| "late".to_owned()),
            inputs: inputs.max(1),
            state_id: None,
            timers: BTreeSet::new(),
            seq: 0,
        }
    }

    fn state(&mut self, store: &mut KeyedStateStore) -> Result<u16, StateError> {
        if let Some(id) = self.state_id {
            return Ok(id);
        }
        let id = store.declare(CONTENTS_STATE, StateKind::Map, None).map_err(|_| StateError::Corrupt("window state name clash"))?;
        self.state_id = Some(id);
        Ok(id)
    }

    fn assign(&self, ts: i64) -> Vec<Span> {
        match self.kind {
            WindowKind::Tumbling => {
                let start = ts - ts.rem_euclid(self.size);
                vec![Span { start, end: start + self.size }]
            }
            WindowKind::Sliding => {
                let last = ts - ts.rem_euclid(self.slide);
                let mut out = Vec::new();
                let mut start = last;
                while start > ts - self.size {
                    out.push(Span { start, end: start + self.size });
                    start -= self.slide;
                }
                out
            }
            WindowKind::Session => vec![Span { start: ts, end: ts.saturating_add(self.gap) }],
        }
    }

    fn is_late(&self, span: Span, watermark: i64) -> bool {
        span.max_timestamp().saturating_add(self.lateness) <= watermark
    }

    fn current(key: &[u8], store: &KeyedStateStore) -> CurrentKey {
        CurrentKey { key: Some(key.to_vec()), group: key_group(key, store.max_parallelism()) }
    }

    /// Store a record of `input` in `span`: user key = span ‖ sequence number ‖ input
    /// (one byte; absent in snapshots taken before operators had several inputs).
    fn add(&mut self, store: &mut KeyedStateStore, ck: &CurrentKey, span: Span, input: u8, value: &[u8], ts: i64) -> Result<(), StateError> {
        let id = self.state(store)?;
        let mut ukey = ukey_prefix(span).to_vec();
        self.seq += 1;
        ukey.extend_from_slice(&self.seq.to_be_bytes());
        if input > 0 {
            ukey.push(input);
        }
        let mut rec = Vec::with_capacity(value.len() + 16);
        encode_record(&mut rec, ck.key.as_deref(), value, ts);
        store.map_put(id, ck, &ukey, &rec, 0)
    }

    /// Timers for a window that got a record at `watermark`: its firing (unless the
    /// watermark has passed it: then the caller fires it at once, like Flink's
    /// `EventTimeTrigger`, and no timer would fire it twice) and its cleanup.
    fn register(&mut self, key: &[u8], span: Span, watermark: i64) {
        if span.max_timestamp() > watermark {
            self.timers.insert((span.max_timestamp(), TimerKind::Fire, key.to_vec(), span));
        }
        if self.lateness > 0 {
            self.timers.insert((span.max_timestamp().saturating_add(self.lateness), TimerKind::Cleanup, key.to_vec(), span));
        }
    }

    fn unregister(&mut self, key: &[u8], span: Span) {
        self.timers.remove(&(span.max_timestamp(), TimerKind::Fire, key.to_vec(), span));
        self.timers.remove(&(span.max_timestamp().saturating_add(self.lateness), TimerKind::Cleanup, key.to_vec(), span));
    }

    /// The window timers and record counter, for a snapshot: (time, kind 0 fire / 1
    /// cleanup, key, window start, window end).
    pub fn snapshot_timers(&self) -> (Vec<WindowTimer>, u64) {
        let timers = self
            .timers
            .iter()
            .map(|(ts, kind, key, span)| WindowTimer {
                time: *ts,
                kind: if *kind == TimerKind::Fire { 0 } else { 1 },
                key: key.clone(),
                start: span.start,
                end: span.end,
            })
            .collect();
        (timers, self.seq)
    }

    /// Take back timers from a snapshot (only those of the subtask's key groups are given).
    pub fn restore_timer(&mut self, t: &WindowTimer) {
        let kind = if t.kind == 0 { TimerKind::Fire } else { TimerKind::Cleanup };
        self.timers.insert((t.time, kind, t.key.clone(), Span { start: t.start, end: t.end }));
    }

    /// Continue the record counter after a restore (never reuse a sequence number).
    pub fn restore_seq(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }

    /// Assign a batch of keyed records of input `input`. Returns the records too late for
    /// every window, and the windows to re-fire now (late records within the allowed
    /// lateness).
    pub fn process(&mut self, store: &mut KeyedStateStore, batch: &Batch, input: u8, watermark: i64) -> Result<(Batch, Vec<Firing>), StateError> {
        let mut late = BatchBuilder::new();
        let mut refire: Vec<(Vec<u8>, Span)> = Vec::new();
        for r in batch.records() {
            let r = r.map_err(|_| StateError::Corrupt("malformed batch"))?;
            let key = r.key.unwrap_or_default();
            let ck = Self::current(key, store);
            let mut assigned = false;
            if self.kind == WindowKind::Session {
                let new = self.assign(r.timestamp)[0];
                // As in Flink, lateness is judged on the session the record would merge into.
                if let Some(merged) = self.merge_sessions(store, &ck, new, watermark)? {
                    self.add(store, &ck, merged, input, r.value, r.timestamp)?;
                    if merged.max_timestamp() <= watermark {
                        refire.push((key.to_vec(), merged));
                    }
                    assigned = true;
                }
            } else {
                for span in self.assign(r.timestamp) {
                    if self.is_late(span, watermark) {
                        continue;
                    }
                    self.add(store, &ck, span, input, r.value, r.timestamp)?;
                    self.register(key, span, watermark);
                    if span.max_timestamp() <= watermark {
                        refire.push((key.to_vec(), span));
                    }
                    assigned = true;
                }
            }
            if !assigned {
                late.push(r.key, r.value, r.timestamp);
            }
        }
        let mut seen = HashSet::new();
        let mut firings = Vec::new();
        for (key, span) in refire {
            if seen.insert((key.clone(), span)) {
                firings.push(self.collect(store, &key, span)?);
            }
        }
        Ok((late.take(), firings))
    }

    /// Merge `new` with the key's overlapping sessions; moves their contents into the
    /// merged session and returns it (with timers registered). Returns `None`, changing
    /// nothing, when even the merged session is past the allowed lateness.
    fn merge_sessions(&mut self, store: &mut KeyedStateStore, ck: &CurrentKey, new: Span, watermark: i64) -> Result<Option<Span>, StateError> {
        let id = self.state(store)?;
        let entries = store.map_entries(id, ck, 0)?;
        let mut merged = new;
        let mut absorbed: Vec<Span> = Vec::new();
        let mut spans: Vec<Span> = entries.iter().filter_map(|(k, _)| span_of(k)).collect();
        spans.dedup();
        // Repeat until stable: merging can make a session reach another one.
        loop {
            let mut changed = false;
            for s in &spans {
                if !absorbed.contains(s) && s.start <= merged.end && merged.start <= s.end {
                    merged = Span { start: merged.start.min(s.start), end: merged.end.max(s.end) };
                    absorbed.push(*s);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        if self.is_late(merged, watermark) {
            return Ok(None);
        }
        let key = ck.key.clone().unwrap_or_default();
        for s in &absorbed {
            self.unregister(&key, *s);
            if *s == merged {
                continue;
            }
            for (k, v) in entries.iter().filter(|(k, _)| span_of(k) == Some(*s)) {
                let mut nk = ukey_prefix(merged).to_vec();
                nk.extend_from_slice(&k[16..]);
                store.map_put(id, ck, &nk, v, 0)?;
                store.map_remove(id, ck, k)?;
            }
        }
        self.register(&key, merged, watermark);
        Ok(Some(merged))
    }

    fn collect(&mut self, store: &mut KeyedStateStore, key: &[u8], span: Span) -> Result<Firing, StateError> {
        let id = self.state(store)?;
        let ck = Self::current(key, store);
        let prefix = ukey_prefix(span);
        let mut records = vec![(Vec::new(), 0); self.inputs];
        for (k, v) in store.map_entries(id, &ck, 0)? {
            if k.starts_with(&prefix) {
                let input = usize::from(k.get(24).copied().unwrap_or(0));
                let Some((bytes, n)) = records.get_mut(input) else {
                    return Err(StateError::Corrupt("a window record of an input the operator does not have"));
                };
                bytes.extend_from_slice(&v);
                *n += 1;
            }
        }
        Ok(Firing { key: key.to_vec(), span, inputs: records.into_iter().map(|(b, n)| Batch::new(b, n)).collect() })
    }

    fn purge(&mut self, store: &mut KeyedStateStore, key: &[u8], span: Span) -> Result<(), StateError> {
        let id = self.state(store)?;
        let ck = Self::current(key, store);
        let prefix = ukey_prefix(span);
        for (k, _) in store.map_entries(id, &ck, 0)? {
            if k.starts_with(&prefix) {
                store.map_remove(id, &ck, &k)?;
            }
        }
        Ok(())
    }

    /// The time of the next window timer.
    pub fn next_timer(&self) -> Option<i64> {
        self.timers.first().map(|t| t.0)
    }

    /// Handle the earliest timer at or before `watermark`: returns `Some(Some(firing))`
    /// for a window to evaluate, `Some(None)` for a cleanup, `None` when none is due.
    pub fn pop_due(&mut self, store: &mut KeyedStateStore, watermark: i64) -> Result<Option<Option<Firing>>, StateError> {
        let Some(first) = self.timers.first() else {
            return Ok(None);
        };
        if first.0 > watermark {
            return Ok(None);
        }
        let Some((_, kind, key, span)) = self.timers.pop_first() else {
            return Ok(None);
        };
        match kind {
            TimerKind::Fire => {
                let firing = self.collect(store, &key, span)?;
                if self.lateness == 0 {
                    self.purge(store, &key, span)?;
                }
                Ok(Some(Some(firing)))
            }
            TimerKind::Cleanup => {
                self.purge(store, &key, span)?;
                Ok(Some(None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_state::MemoryBackend;

    fn spec(kind: WindowKind, size: i64, slide: i64, lateness: i64) -> WindowSpec {
        WindowSpec { kind, size_ms: Some(size), slide_ms: Some(slide), gap_ms: Some(size), allowed_lateness_ms: lateness, late_output: None }
    }

    fn batch(records: &[(&str, i64)]) -> Batch {
        let mut b = BatchBuilder::new();
        for (k, ts) in records {
            b.push(Some(k.as_bytes()), ts.to_string().as_bytes(), *ts);
        }
        b.take()
    }

    fn fire_all(w: &mut WindowOperator, s: &mut KeyedStateStore, wm: i64) -> Vec<(String, i64, i64, usize)> {
        let mut out = Vec::new();
        while let Some(f) = w.pop_due(s, wm).expect("pop") {
            if let Some(f) = f {
                let n = f.inputs.iter().map(Batch::len).sum();
                out.push((String::from_utf8_lossy(&f.key).into_owned(), f.span.start, f.span.end, n));
            }
        }
        out
    }

    /// Every window due at `wm`: key, start, end and records per input.
    fn per_input(w: &mut WindowOperator, s: &mut KeyedStateStore, wm: i64) -> Vec<(String, i64, i64, Vec<usize>)> {
        let mut out = Vec::new();
        while let Some(f) = w.pop_due(s, wm).expect("pop") {
            if let Some(f) = f {
                out.push((String::from_utf8_lossy(&f.key).into_owned(), f.span.start, f.span.end, f.inputs.iter().map(Batch::len).collect()));
            }
        }
        out
    }

    #[test]
    fn sliding_windows_overlap() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut w = WindowOperator::new(&spec(WindowKind::Sliding, 10, 5, 0), 1);
        w.process(&mut s, &batch(&[("a", 7)]), 0, i64::MIN).expect("process");
        assert_eq!(fire_all(&mut w, &mut s, i64::MAX), vec![("a".into(), 0, 10, 1), ("a".into(), 5, 15, 1)]);
    }

    #[test]
    fn sessions_merge_and_late_records_go_aside() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut w = WindowOperator::new(&spec(WindowKind::Session, 10, 10, 0), 1);
        w.process(&mut s, &batch(&[("a", 0), ("a", 25), ("a", 8), ("b", 3)]), 0, i64::MIN).expect("process");
        // [0,10) and [8,18) merge into [0,18); [25,35) stays apart.
        assert_eq!(fire_all(&mut w, &mut s, 20), vec![("b".into(), 3, 13, 1), ("a".into(), 0, 18, 2)]);
        let (late, refire) = w.process(&mut s, &batch(&[("a", 1)]), 0, 20).expect("process");
        assert_eq!(late.len(), 1);
        assert!(refire.is_empty());
        // Late on its own ([15,25) ended by watermark 30) but it joins the live session
        // [25,35): judged on the merged session, it is kept.
        let (late, _) = w.process(&mut s, &batch(&[("a", 15)]), 0, 30).expect("process");
        assert!(late.is_empty());
        assert_eq!(fire_all(&mut w, &mut s, i64::MAX), vec![("a".into(), 15, 35, 2)]);
    }

    #[test]
    fn a_window_of_two_inputs_fires_with_each_inputs_records() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut w = WindowOperator::new(&spec(WindowKind::Tumbling, 10, 10, 0), 2);
        w.process(&mut s, &batch(&[("a", 1), ("a", 2)]), 0, i64::MIN).expect("left");
        w.process(&mut s, &batch(&[("a", 3), ("b", 4)]), 1, i64::MIN).expect("right");
        let mut fired: Vec<(String, Vec<usize>)> = per_input(&mut w, &mut s, 10).into_iter().map(|(k, _, _, n)| (k, n)).collect();
        fired.sort();
        assert_eq!(fired, vec![("a".into(), vec![2, 1]), ("b".into(), vec![0, 1])]);
    }

    #[test]
    fn sessions_of_two_inputs_merge_keeping_each_records_input() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut w = WindowOperator::new(&spec(WindowKind::Session, 10, 10, 0), 2);
        w.process(&mut s, &batch(&[("a", 0), ("a", 25)]), 0, i64::MIN).expect("left");
        // A right record at 8 bridges [0,10) and a session reaching [8,18); 30 joins [25,35).
        w.process(&mut s, &batch(&[("a", 8), ("a", 30)]), 1, i64::MIN).expect("right");
        let fired: Vec<(i64, i64, Vec<usize>)> = per_input(&mut w, &mut s, i64::MAX).into_iter().map(|(_, a, b, n)| (a, b, n)).collect();
        assert_eq!(fired, vec![(0, 18, vec![1, 1]), (25, 40, vec![1, 1])]);
    }

    #[test]
    fn allowed_lateness_refires_then_purges() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut w = WindowOperator::new(&spec(WindowKind::Tumbling, 10, 10, 5), 1);
        w.process(&mut s, &batch(&[("a", 1)]), 0, i64::MIN).expect("process");
        assert_eq!(fire_all(&mut w, &mut s, 10), vec![("a".into(), 0, 10, 1)]);
        let (late, refire) = w.process(&mut s, &batch(&[("a", 2)]), 0, 10).expect("process");
        assert!(late.is_empty());
        assert_eq!(refire.len(), 1);
        assert_eq!(refire[0].inputs[0].len(), 2);
        assert!(fire_all(&mut w, &mut s, 14).is_empty(), "a re-fired window does not fire again by timer");
        let (late, _) = w.process(&mut s, &batch(&[("a", 3)]), 0, 14).expect("process");
        assert_eq!(late.len(), 1, "past the allowed lateness");
    }
}
