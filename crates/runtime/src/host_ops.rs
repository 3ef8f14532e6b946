//! The host's operators in front of one guest — event-time windows (one input or a
//! co-group of several), the interval join and the ordering of broadcast inputs — and
//! how a batch of one input goes through them into the guest's calls.

use std::sync::atomic::Ordering;

use rivulet_checkpoint::{HostParts, RestoredState};
use rivulet_dataflow::{Batch, NodeMetrics};
use rivulet_job::OperatorSpec;
use rivulet_plugin::{OperatorInstance, Output};
use rivulet_state::StateError;

use crate::broadcast::{BroadcastInputs, Step};
use crate::error::JobError;
use crate::interval_join::IntervalJoin;
use crate::window::WindowOperator;

/// The side output late records of an interval join go to.
pub const JOIN_LATE_TAG: &str = "late";

/// What the host does in front of one operator subtask's guest.
#[derive(Default)]
pub struct HostOperators {
    /// Event-time windows (`window` in the spec).
    pub window: Option<WindowOperator>,
    /// The interval join (`interval_join`).
    pub join: Option<IntervalJoin>,
    /// The ordering of broadcast inputs (operators with a broadcast input).
    pub broadcast: Option<BroadcastInputs>,
    /// Which inputs are broadcast inputs, by input index.
    pub broadcast_inputs: Vec<bool>,
}

impl HostOperators {
    /// The host operators `spec` asks for.
    pub fn new(spec: &OperatorSpec) -> Self {
        let inputs = spec.inputs.resolved(spec.key_by.as_ref());
        let has_broadcast = inputs.iter().any(|i| i.broadcast);
        HostOperators {
            window: spec.window.as_ref().map(|w| WindowOperator::new(w, inputs.len())),
            join: spec.interval_join.as_ref().map(IntervalJoin::new),
            broadcast: has_broadcast.then(|| BroadcastInputs::new(spec.broadcast_order.unwrap_or_default())),
            broadcast_inputs: inputs.iter().map(|i| i.broadcast).collect(),
        }
    }

    /// Take back what a snapshot held for them.
    pub fn restore(&mut self, restored: &mut RestoredState) {
        if let Some(w) = self.window.as_mut() {
            restored.window_timers.iter().filter(|t| t.kind <= 1).for_each(|t| w.restore_timer(t));
            w.restore_seq(restored.window_seq);
        }
        if let Some(j) = self.join.as_mut() {
            restored.window_timers.iter().for_each(|t| j.restore_timer(t));
            j.restore_seq(restored.window_seq);
        }
        if let Some(b) = self.broadcast.as_mut() {
            b.restore(&restored.window_timers, &mut restored.broadcast, restored.window_seq);
        }
    }

    /// Their part of a snapshot; `broadcast` is (a copy of) the guest's broadcast state
    /// when this subtask stores it (subtask 0 of an operator with broadcast inputs).
    pub fn snapshot(&self, broadcast: Option<rivulet_state::BroadcastState>) -> HostParts {
        let mut parts = HostParts::default();
        if let Some(w) = &self.window {
            let (timers, seq) = w.snapshot_timers();
            parts.timers.extend(timers);
            parts.seq = parts.seq.max(seq);
        }
        if let Some(j) = &self.join {
            parts.timers.extend(j.snapshot_timers());
            parts.seq = parts.seq.max(j.seq());
        }
        if let Some(b) = &self.broadcast {
            parts.timers.extend(b.snapshot_timers());
            parts.seq = parts.seq.max(b.seq());
            if let Some(mut stored) = broadcast {
                b.snapshot_broadcast(&mut stored);
                parts.broadcast = Some(stored);
            }
        }
        parts
    }

    /// Whether input `input` is a broadcast input.
    fn is_broadcast(&self, input: u32) -> bool {
        self.broadcast_inputs.get(input as usize).copied().unwrap_or(false)
    }

    /// Feed a batch of input `input` through the host operators into the guest.
    pub async fn process(
        &mut self,
        uid: &str,
        instance: &mut OperatorInstance,
        metrics: &NodeMetrics,
        batch: Batch,
        input: u32,
        watermark: i64,
    ) -> Result<Output, JobError> {
        let state_err = |error: StateError| JobError::State { operator: uid.to_owned(), error };
        let mut output = Output::default();
        if let Some(window) = self.window.as_mut() {
            let (late, firings) = window.process(instance.state(), &batch, input as u8, watermark).map_err(state_err)?;
            if !late.is_empty() {
                metrics.late_records.fetch_add(late.len() as u64, Ordering::Relaxed);
                output.side.push((window.late_tag.clone(), late));
            }
            for f in firings {
                let o = instance.process_window(f.key, f.span.start, f.span.end, &f.inputs).await?;
                merge(&mut output, o);
            }
            return Ok(output);
        }
        if let Some(join) = self.join.as_mut() {
            let (pairs, late) = join.process(instance.state(), &batch, input as u8, watermark).map_err(state_err)?;
            if !late.is_empty() {
                metrics.late_records.fetch_add(late.len() as u64, Ordering::Relaxed);
                output.side.push((JOIN_LATE_TAG.to_owned(), late));
            }
            if !pairs.left.is_empty() {
                merge(&mut output, instance.process_join(&pairs.left, &pairs.right).await?);
            }
            return Ok(output);
        }
        let is_broadcast = self.is_broadcast(input);
        let Some(ordering) = self.broadcast.as_mut() else {
            return Ok(instance.process(input, &batch).await?);
        };
        if is_broadcast {
            let now = ordering.broadcast(batch, input, watermark).map_err(state_err)?;
            if !now.is_empty() {
                return Ok(instance.process_broadcast(input, &now).await?);
            }
        } else {
            let now = ordering.keyed(instance.state(), batch, input, watermark).map_err(state_err)?;
            if !now.is_empty() {
                return Ok(instance.process(input, &now).await?);
            }
        }
        Ok(output)
    }

    /// The watermark reached `watermark`: hand over held records now due (in time
    /// order) and drop join buffers no record can match any more. Runs before the
    /// guest's timers at that watermark fire.
    pub async fn advance(&mut self, uid: &str, instance: &mut OperatorInstance, watermark: i64) -> Result<Output, JobError> {
        let state_err = |error: StateError| JobError::State { operator: uid.to_owned(), error };
        let mut output = Output::default();
        if let Some(join) = self.join.as_mut() {
            join.expire(instance.state(), watermark).map_err(state_err)?;
        }
        if let Some(ordering) = self.broadcast.as_mut() {
            for step in ordering.release(instance.state(), watermark).map_err(state_err)? {
                let o = match step {
                    Step::Broadcast { input, batch } => instance.process_broadcast(input, &batch).await?,
                    Step::Keyed { input, batch } => instance.process(input, &batch).await?,
                };
                merge(&mut output, o);
            }
        }
        Ok(output)
    }
}

/// Add what `from` emitted to `into`.
pub(crate) fn merge(into: &mut Output, from: Output) {
    into.main = concat(&into.main, &from.main);
    for (tag, b) in from.side {
        match into.side.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, buf)) => *buf = concat(buf, &b),
            None => into.side.push((tag, b)),
        }
    }
}

/// Two batches as one.
fn concat(a: &Batch, b: &Batch) -> Batch {
    if a.is_empty() {
        return b.clone();
    }
    if b.is_empty() {
        return a.clone();
    }
    let mut bytes = Vec::with_capacity(a.as_slice().len() + b.as_slice().len());
    bytes.extend_from_slice(a.as_slice());
    bytes.extend_from_slice(b.as_slice());
    Batch::new(bytes, a.len() + b.len())
}
