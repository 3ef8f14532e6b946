//! Broadcast inputs in front of a guest: which records reach `process-broadcast` and
//! `process`, and when.
//!
//! By default (`broadcast_order: event_time`) a keyed record is evaluated against the
//! broadcast state as of its own event time: the host holds records of every input until
//! the operator's watermark (the least over all inputs, so the broadcast input's too)
//! passes them, then hands them over in time order, broadcast records first at equal
//! times. A bounded input therefore gives the same results whatever order its records
//! arrive in — stronger than Flink, which evaluates each record against whatever
//! broadcast state is there when it arrives. Records at or before the watermark on
//! arrival are not held (they are late; nothing is ahead of them). Held keyed records
//! live in the operator's keyed state (a reserved map), held broadcast records with the
//! broadcast state, so both are checkpointed.
//!
//! `broadcast_order: arrival` is Flink's rule: everything goes to the guest at once.

use std::collections::{BTreeMap, BTreeSet};

use rivulet_checkpoint::snapshot::WindowTimer;
use rivulet_dataflow::{Batch, BatchBuilder};
use rivulet_job::BroadcastOrder;
use rivulet_sdk::Record;
use rivulet_state::{BroadcastState, CurrentKey, KeyedStateStore, StateError, StateKind, key_group};

/// The reserved keyed state holding held keyed records.
pub const HELD_STATE: &str = "__rivulet.held";

/// The reserved broadcast map holding held broadcast records.
pub const HELD_BROADCAST: &str = "__rivulet.held-broadcast";

/// The kind of host timer a snapshot stores for a held keyed record.
pub const HELD_KIND: u8 = 4;

/// What to hand to the guest next.
#[derive(Debug)]
pub enum Step {
    /// Records of a keyed (or plain) input, to `process`.
    Keyed {
        /// Input index.
        input: u32,
        /// The records.
        batch: Batch,
    },
    /// Records of a broadcast input, to `process-broadcast`.
    Broadcast {
        /// Input index.
        input: u32,
        /// The records.
        batch: Batch,
    },
}

/// The broadcast-input ordering of one operator subtask.
pub struct BroadcastInputs {
    order: BroadcastOrder,
    state: Option<u16>,
    /// Held keyed records: (time, sequence number, key, input).
    held: BTreeSet<(i64, u64, Vec<u8>, u8)>,
    /// Held broadcast records: (time, sequence number) → (input, encoded record).
    held_broadcast: BTreeMap<(i64, u64), (u8, Vec<u8>)>,
    seq: u64,
}

fn ukey(ts: i64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&((ts as u64) ^ (1 << 63)).to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn from_ukey(k: &[u8]) -> Option<(i64, u64)> {
    let ts = (u64::from_be_bytes(k.get(..8)?.try_into().ok()?) ^ (1 << 63)) as i64;
    let seq = u64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
    Some((ts, seq))
}

impl BroadcastInputs {
    /// Ordering by `order`.
    pub fn new(order: BroadcastOrder) -> Self {
        BroadcastInputs { order, state: None, held: BTreeSet::new(), held_broadcast: BTreeMap::new(), seq: 0 }
    }

    fn state(&mut self, store: &mut KeyedStateStore) -> Result<u16, StateError> {
        if let Some(id) = self.state {
            return Ok(id);
        }
        let id = store.declare(HELD_STATE, StateKind::Map, None).map_err(|_| StateError::Corrupt("held-records state name clash"))?;
        self.state = Some(id);
        Ok(id)
    }

    /// A batch of keyed input `input` arrived: returns what goes to the guest now; the
    /// rest is held.
    pub fn keyed(&mut self, store: &mut KeyedStateStore, batch: Batch, input: u32, watermark: i64) -> Result<Batch, StateError> {
        if self.order == BroadcastOrder::Arrival {
            return Ok(batch);
        }
        let id = self.state(store)?;
        let (held, seq) = (&mut self.held, &mut self.seq);
        hold_later(&batch, watermark, |r| {
            let key = r.key.unwrap_or_default();
            let ck = CurrentKey { key: Some(key.to_vec()), group: key_group(key, store.max_parallelism()) };
            *seq += 1;
            let mut value = vec![input as u8];
            rivulet_sdk::encode_record(&mut value, r.key, r.value, r.timestamp);
            store.map_put(id, &ck, &ukey(r.timestamp, *seq), &value, 0)?;
            held.insert((r.timestamp, *seq, key.to_vec(), input as u8));
            Ok(())
        })
    }

    /// A batch of broadcast input `input` arrived: returns what goes to the guest now.
    pub fn broadcast(&mut self, batch: Batch, input: u32, watermark: i64) -> Result<Batch, StateError> {
        if self.order == BroadcastOrder::Arrival {
            return Ok(batch);
        }
        let (held, seq) = (&mut self.held_broadcast, &mut self.seq);
        hold_later(&batch, watermark, |r| {
            *seq += 1;
            let mut rec = Vec::new();
            rivulet_sdk::encode_record(&mut rec, r.key, r.value, r.timestamp);
            held.insert((r.timestamp, *seq), (input as u8, rec));
            Ok(())
        })
    }

    /// Everything held at or before `watermark`, in time order (broadcast records first
    /// at equal times), as runs of one input each.
    pub fn release(&mut self, store: &mut KeyedStateStore, watermark: i64) -> Result<Vec<Step>, StateError> {
        if self.held.is_empty() && self.held_broadcast.is_empty() {
            return Ok(Vec::new());
        }
        let id = self.state(store)?;
        // (time, 0 broadcast / 1 keyed, sequence, input, encoded record)
        let mut due: Vec<(i64, u8, u64, u8, Vec<u8>)> = Vec::new();
        while let Some(first) = self.held_broadcast.first_key_value() {
            if first.0.0 > watermark {
                break;
            }
            let Some(((ts, seq), (input, rec))) = self.held_broadcast.pop_first() else { break };
            due.push((ts, 0, seq, input, rec));
        }
        while let Some(first) = self.held.first() {
            if first.0 > watermark {
                break;
            }
            let Some((ts, seq, key, input)) = self.held.pop_first() else { break };
            let ck = CurrentKey { group: key_group(&key, store.max_parallelism()), key: Some(key) };
            let k = ukey(ts, seq);
            let Some(value) = store.map_get(id, &ck, &k, 0)? else {
                return Err(StateError::Corrupt("a held record is missing from its state"));
            };
            store.map_remove(id, &ck, &k)?;
            due.push((ts, 1, seq, input, value.get(1..).unwrap_or_default().to_vec()));
        }
        due.sort_by_key(|d| (d.0, d.1, d.2));
        let mut steps: Vec<Step> = Vec::new();
        let mut run = (BatchBuilder::new(), 0u8, 0u8);
        for (_, kind, _, input, rec) in due {
            if !run.0.is_empty() && (run.1, run.2) != (kind, input) {
                steps.push(step(run.1, run.2, run.0.take()));
            }
            run.1 = kind;
            run.2 = input;
            for r in Batch::new(rec, 1).records() {
                let r = r.map_err(|_| StateError::Corrupt("malformed held record"))?;
                run.0.push(r.key, r.value, r.timestamp);
            }
        }
        if !run.0.is_empty() {
            steps.push(step(run.1, run.2, run.0.take()));
        }
        Ok(steps)
    }

    /// Held keyed records as host timers for a snapshot (`start` the sequence number,
    /// `end` the input).
    pub fn snapshot_timers(&self) -> Vec<WindowTimer> {
        self.held
            .iter()
            .map(|(ts, seq, key, input)| WindowTimer { time: *ts, kind: HELD_KIND, key: key.clone(), start: *seq as i64, end: i64::from(*input) })
            .collect()
    }

    /// Held broadcast records into `into` (the broadcast state a snapshot stores).
    pub fn snapshot_broadcast(&self, into: &mut BroadcastState) {
        for ((ts, seq), (input, rec)) in &self.held_broadcast {
            let mut value = vec![*input];
            value.extend_from_slice(rec);
            into.insert(HELD_BROADCAST, ukey(*ts, *seq).to_vec(), value);
        }
    }

    /// The record counter, for a snapshot.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Take back what a snapshot held: held keyed records (timers of kind
    /// [`HELD_KIND`]) and held broadcast records (the reserved map, removed from
    /// `broadcast` so the guest never sees it).
    pub fn restore(&mut self, timers: &[WindowTimer], broadcast: &mut BroadcastState, seq: u64) {
        for t in timers.iter().filter(|t| t.kind == HELD_KIND) {
            self.held.insert((t.time, t.start as u64, t.key.clone(), t.end as u8));
        }
        if let Some(held) = broadcast.remove(HELD_BROADCAST) {
            for (k, v) in held {
                if let (Some(at), Some((input, rec))) = (from_ukey(&k), v.split_first()) {
                    self.held_broadcast.insert(at, (*input, rec.to_vec()));
                }
            }
        }
        self.seq = self.seq.max(seq);
    }

    /// How many records are held.
    pub fn held(&self) -> usize {
        self.held.len() + self.held_broadcast.len()
    }
}

/// The records of `batch` at or before `watermark` (late: nothing is ahead of them), as
/// a batch for the guest now; `hold` takes each later one.
fn hold_later(batch: &Batch, watermark: i64, mut hold: impl FnMut(Record<'_>) -> Result<(), StateError>) -> Result<Batch, StateError> {
    let mut now = BatchBuilder::new();
    for r in batch.records() {
        let r = r.map_err(|_| StateError::Corrupt("malformed batch"))?;
        if r.timestamp <= watermark {
            now.push(r.key, r.value, r.timestamp);
        } else {
            hold(r)?;
        }
    }
    Ok(now.take())
}

fn step(kind: u8, input: u8, batch: Batch) -> Step {
    if kind == 0 { Step::Broadcast { input: u32::from(input), batch } } else { Step::Keyed { input: u32::from(input), batch } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_state::MemoryBackend;

    fn batch(records: &[(&str, i64)]) -> Batch {
        let mut b = BatchBuilder::new();
        for (k, ts) in records {
            b.push(if k.is_empty() { None } else { Some(k.as_bytes()) }, ts.to_string().as_bytes(), *ts);
        }
        b.take()
    }

    fn describe(steps: &[Step]) -> Vec<(char, u32, Vec<i64>)> {
        steps
            .iter()
            .map(|s| match s {
                Step::Keyed { input, batch } => ('k', *input, batch.records().map(|r| r.expect("r").timestamp).collect()),
                Step::Broadcast { input, batch } => ('b', *input, batch.records().map(|r| r.expect("r").timestamp).collect()),
            })
            .collect()
    }

    #[test]
    fn held_records_come_out_in_time_order_broadcast_first_and_survive_a_snapshot() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut b = BroadcastInputs::new(BroadcastOrder::EventTime);
        assert!(b.keyed(&mut s, batch(&[("a", 20), ("b", 10), ("a", 5)]), 0, 5).expect("keyed").len() == 1, "at the watermark: now");
        assert!(b.broadcast(batch(&[("", 10), ("", 30)]), 1, 5).expect("broadcast").is_empty());
        // A snapshot and a restore in between.
        let timers = b.snapshot_timers();
        let mut bs = BroadcastState::default();
        b.snapshot_broadcast(&mut bs);
        let mut r = BroadcastInputs::new(BroadcastOrder::EventTime);
        r.restore(&timers, &mut bs, b.seq());
        assert!(bs.is_empty(), "the reserved map is taken out");
        assert_eq!(r.held(), 4);
        let steps = r.release(&mut s, 25).expect("release");
        assert_eq!(describe(&steps), vec![('b', 1, vec![10]), ('k', 0, vec![10, 20])]);
        let steps = r.release(&mut s, i64::MAX).expect("release");
        assert_eq!(describe(&steps), vec![('b', 1, vec![30])]);
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn arrival_order_holds_nothing() {
        let mut s = KeyedStateStore::new(Box::new(MemoryBackend::default()), 128);
        let mut b = BroadcastInputs::new(BroadcastOrder::Arrival);
        assert_eq!(b.keyed(&mut s, batch(&[("a", 20)]), 0, 5).expect("keyed").len(), 1);
        assert_eq!(b.broadcast(batch(&[("", 30)]), 1, 5).expect("broadcast").len(), 1);
        assert_eq!(b.held(), 0);
    }
}
