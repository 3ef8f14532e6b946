//! The interval join, applied by the host in front of a guest's `process-join`.
//!
//! A record of the left input (input 0) at time `t` meets the records of the right input
//! (input 1) with the same key and a time in `[t + lower, t + upper]`. Both sides are
//! buffered in the operator's keyed state (reserved map states, one entry per record,
//! ordered by time), so the buffers are checkpointed, rescaled and swapped with the job.
//! Each arriving record is paired with the other side's buffered records at once: every
//! pair is found exactly once, by whichever of its two records arrives second.
//!
//! State stays bounded: a buffered record is dropped once the watermark makes it
//! unmatchable — a left record at `t` after the watermark passes `t + upper`, a right
//! record at `t` after it passes `t - lower` (as Flink's `IntervalJoinOperator`). A
//! record older than the watermark on arrival could miss partners already dropped: it
//! is late and goes to the `late` side output, unchanged.

use std::collections::BTreeSet;

use rivulet_checkpoint::snapshot::WindowTimer;
use rivulet_dataflow::{Batch, BatchBuilder};
use rivulet_job::IntervalJoinSpec;
use rivulet_sdk::encode_record;
use rivulet_state::{CurrentKey, KeyedStateStore, StateError, StateKind, key_group};

/// The reserved state names holding the buffered records of each side.
pub const BUFFER_STATES: [&str; 2] = ["__rivulet.join-left", "__rivulet.join-right"];

/// The kinds of host timer a snapshot stores for a buffered record's cleanup, by side
/// (window timers are 0 and 1).
pub const CLEANUP_KINDS: [u8; 2] = [2, 3];

/// A buffered record's cleanup: when, which side, key, time and sequence number.
type Cleanup = (i64, u8, Vec<u8>, i64, u64);

/// Pairs found: record `i` of `left` meets record `i` of `right`.
#[derive(Debug, Default)]
pub struct Pairs {
    /// Left records.
    pub left: Batch,
    /// Right records.
    pub right: Batch,
}

/// The interval join of one operator subtask.
pub struct IntervalJoin {
    lower: i64,
    upper: i64,
    states: Option<[u16; 2]>,
    cleanup: BTreeSet<Cleanup>,
    seq: u64,
}

/// A buffered record's user key: its time (sign bit flipped, so byte order is time
/// order) then its sequence number.
fn ukey(ts: i64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn time_of(ukey: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(ukey.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64)
}

impl IntervalJoin {
    /// An interval join for `spec` (validated by the job graph: `lower <= upper`).
    pub fn new(spec: &IntervalJoinSpec) -> Self {
        IntervalJoin { lower: spec.lower_ms, upper: spec.upper_ms, states: None, cleanup: BTreeSet::new(), seq: 0 }
    }

    fn states(&mut self, store: &mut KeyedStateStore) -> Result<[u16; 2], StateError> {
        if let Some(ids) = self.states {
            return Ok(ids);
        }
        let clash = |_| StateError::Corrupt("join buffer state name clash");
        let ids = [
            store.declare(BUFFER_STATES[0], StateKind::Map, None).map_err(clash)?,
            store.declare(BUFFER_STATES[1], StateKind::Map, None).map_err(clash)?,
        ];
        self.states = Some(ids);
        Ok(ids)
    }

    /// The time after which a record of `side` at `ts` can meet no future record.
    fn last_match(&self, side: u8, ts: i64) -> i64 {
        if side == 0 { ts.saturating_add(self.upper) } else { ts.saturating_sub(self.lower) }
    }

    /// Buffer a batch of `side` (0 left, 1 right) and pair each record with the other
    /// side's buffered records in range. Returns the pairs and the late records.
    pub fn process(&mut self, store: &mut KeyedStateStore, batch: &Batch, side: u8, watermark: i64) -> Result<(Pairs, Batch), StateError> {
        let ids = self.states(store)?;
        let (mut left, mut right, mut late) = (BatchBuilder::new(), BatchBuilder::new(), BatchBuilder::new());
        for r in batch.records() {
            let r = r.map_err(|_| StateError::Corrupt("malformed batch"))?;
            if watermark != i64::MIN && r.timestamp < watermark {
                late.push(r.key, r.value, r.timestamp);
                continue;
            }
            let key = r.key.unwrap_or_default();
            let ck = CurrentKey { key: Some(key.to_vec()), group: key_group(key, store.max_parallelism()) };
            // The other side's partners: right in [t + lower, t + upper] for a left
            // record, left in [t - upper, t - lower] for a right one.
            let (other, from, to) = if side == 0 {
                (ids[1], r.timestamp.saturating_add(self.lower), r.timestamp.saturating_add(self.upper))
            } else {
                (ids[0], r.timestamp.saturating_sub(self.upper), r.timestamp.saturating_sub(self.lower))
            };
            for (k, v) in store.map_entries(other, &ck, 0)? {
                let Some(t) = time_of(&k) else { continue };
                if t < from || t > to {
                    continue;
                }
                let (l, rr) = if side == 0 { (&mut left, &mut right) } else { (&mut right, &mut left) };
                l.push(r.key, r.value, r.timestamp);
                for partner in Batch::new(v, 1).records() {
                    let p = partner.map_err(|_| StateError::Corrupt("malformed buffered join record"))?;
                    rr.push(p.key, p.value, p.timestamp);
                }
            }
            self.seq += 1;
            let mut rec = Vec::with_capacity(r.value.len() + key.len() + 16);
            encode_record(&mut rec, r.key, r.value, r.timestamp);
            store.map_put(ids[usize::from(side)], &ck, &ukey(r.timestamp, self.seq), &rec, 0)?;
            self.cleanup.insert((self.last_match(side, r.timestamp).saturating_add(1), side, key.to_vec(), r.timestamp, self.seq));
        }
        Ok((Pairs { left: left.take(), right: right.take() }, late.take()))
    }

    /// Drop the buffered records the watermark made unmatchable; returns how many.
    pub fn expire(&mut self, store: &mut KeyedStateStore, watermark: i64) -> Result<usize, StateError> {
        let ids = self.states(store)?;
        let mut dropped = 0;
        while let Some(first) = self.cleanup.first() {
            if first.0 > watermark {
                break;
            }
            let Some((_, side, key, ts, seq)) = self.cleanup.pop_first() else { break };
            let ck = CurrentKey { group: key_group(&key, store.max_parallelism()), key: Some(key) };
            store.map_remove(ids[usize::from(side)], &ck, &ukey(ts, seq))?;
            dropped += 1;
        }
        Ok(dropped)
    }

    /// How many records are buffered (both sides).
    pub fn buffered(&self) -> usize {
        self.cleanup.len()
    }

    /// The cleanups as host timers for a snapshot (kind by side, `start` the record's
    /// time, `end` its sequence number).
    pub fn snapshot_timers(&self) -> Vec<WindowTimer> {
        self.cleanup
            .iter()
            .map(|(time, side, key, ts, seq)| WindowTimer {
                time: *time,
                kind: CLEANUP_KINDS[usize::from(*side)],
                key: key.clone(),
                start: *ts,
                end: *seq as i64,
            })
            .collect()
    }

    /// The record counter, for a snapshot.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Take back a cleanup from a snapshot (other kinds of host timer are ignored).
    pub fn restore_timer(&mut self, t: &WindowTimer) {
        if let Some(side) = CLEANUP_KINDS.iter().position(|k| *k == t.kind) {
            self.cleanup.insert((t.time, side as u8, t.key.clone(), t.start, t.end as u64));
        }
    }

    /// Continue the record counter after a restore.
    pub fn restore_seq(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_state::MemoryBackend;

    fn batch(records: &[(&str, i64)]) -> Batch {
        let mut b = BatchBuilder::new();
        for (k, ts) in records {
            b.push(Some(k.as_bytes()), ts.to_string().as_bytes(), *ts);
        }
        b.take()
    }

    fn times(b: &Batch) -> Vec<i64> {
        b.records().map(|r| r.expect("record").timestamp).collect()
    }

    #[test]
    fn pairs_are_found_once_whichever_side_arrives_first_and_buffers_drain() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut j = IntervalJoin::new(&IntervalJoinSpec { lower_ms: 0, upper_ms: 10 });
        // Right before left, left before right, a right out of range and another key.
        let (p, _) = j.process(&mut s, &batch(&[("a", 105), ("a", 120), ("b", 100)]), 1, i64::MIN).expect("right");
        assert!(p.left.is_empty());
        let (p, _) = j.process(&mut s, &batch(&[("a", 100)]), 0, i64::MIN).expect("left");
        assert_eq!((times(&p.left), times(&p.right)), (vec![100], vec![105]));
        let (p, _) = j.process(&mut s, &batch(&[("a", 110)]), 1, i64::MIN).expect("right");
        assert_eq!((times(&p.left), times(&p.right)), (vec![100], vec![110]));
        assert_eq!(j.buffered(), 5);
        // Watermark 111: the left record at 100 (last match 110) and the right records up
        // to 110 (last match their own time with lower = 0) are unmatchable.
        assert_eq!(j.expire(&mut s, 111).expect("expire"), 4);
        let (p, late) = j.process(&mut s, &batch(&[("a", 105)]), 0, 111).expect("late left");
        assert!(p.left.is_empty());
        assert_eq!(times(&late), vec![105]);
        assert_eq!(j.expire(&mut s, i64::MAX).expect("expire"), 1);
        assert_eq!(j.buffered(), 0);
    }

    #[test]
    fn cleanups_survive_a_snapshot() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut j = IntervalJoin::new(&IntervalJoinSpec { lower_ms: -5, upper_ms: 5 });
        j.process(&mut s, &batch(&[("a", 10)]), 0, i64::MIN).expect("left");
        j.process(&mut s, &batch(&[("a", 12)]), 1, i64::MIN).expect("right");
        let timers = j.snapshot_timers();
        let mut restored = IntervalJoin::new(&IntervalJoinSpec { lower_ms: -5, upper_ms: 5 });
        timers.iter().for_each(|t| restored.restore_timer(t));
        restored.restore_seq(j.seq());
        assert_eq!(restored.buffered(), 2);
        // Left at 10 is kept until the watermark passes 15, right at 12 until it passes 17.
        assert_eq!(restored.expire(&mut s, 16).expect("expire"), 1);
        assert_eq!(restored.expire(&mut s, 18).expect("expire"), 1);
    }
}
