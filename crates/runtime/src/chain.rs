//! A chain of Wasm operators running as one task: input handling, watermarks, timers,
//! the host operators in front of each guest (windows, joins, broadcast inputs), and
//! routing of what the guests emit.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rivulet_checkpoint::manifest::SubtaskState;
use rivulet_checkpoint::{
    OperatorPart, SnapshotFormat, SnapshotKind, SnapshotPart, SubtaskMeta, TaskCheckpointing, TaskReport, UploadedFiles, capture, unique_suffix, upload,
};
use rivulet_dataflow::{Barrier, Batch, GateEvent, InputGate, InputWatermarks, Message, NodeMetrics, OutputEdge, WatermarkChange, blocking, now_ms};
use rivulet_plugin::{OperatorInstance, Output};
use rivulet_state::TimeDomain;

use crate::error::JobError;
use crate::host_ops::HostOperators;
use crate::window::WindowOperator;

/// One operator of a chain.
pub struct ChainedOperator {
    /// Operator uid.
    pub uid: String,
    /// The guest instance.
    pub instance: OperatorInstance,
    /// What the host does in front of the guest: windows, joins, broadcast inputs.
    pub host: HostOperators,
    /// Output edges leaving the chain from this operator.
    pub outputs: Vec<OutputEdge>,
    /// Counters.
    pub metrics: Arc<NodeMetrics>,
    /// Who it is in snapshots.
    pub meta: SubtaskMeta,
    /// Where RocksDB checkpoints are staged before upload.
    pub staging: PathBuf,
    /// RocksDB files already uploaded.
    pub uploaded: UploadedFiles,
    watermark: i64,
}

impl ChainedOperator {
    /// Wrap an opened instance.
    pub fn new(
        instance: OperatorInstance,
        host: HostOperators,
        outputs: Vec<OutputEdge>,
        metrics: Arc<NodeMetrics>,
        meta: SubtaskMeta,
        staging: PathBuf,
        uploaded: UploadedFiles,
        watermark: i64,
    ) -> Self {
        ChainedOperator { uid: meta.uid.clone(), instance, host, outputs, metrics, meta, staging, uploaded, watermark }
    }

    /// The watermark it was restored with (`i64::MIN` when fresh).
    pub fn restored_watermark(&self) -> i64 {
        self.watermark
    }

    /// Its part of a snapshot, holding `state`.
    fn part(&self, state: SubtaskState) -> OperatorPart {
        OperatorPart {
            uid: self.uid.clone(),
            plugin: self.meta.plugin.clone(),
            plugin_digest: self.meta.plugin_digest.clone(),
            parallelism: self.meta.parallelism,
            state_version: self.meta.state_version,
            state,
        }
    }
}

/// A task running a chain of operators for one subtask index.
pub struct ChainTask {
    /// The chain, head first; each operator's main output feeds the next.
    pub ops: Vec<ChainedOperator>,
    /// The task's input, with barrier alignment.
    pub input: InputGate,
    /// For each channel of the input, which input of the head operator it feeds.
    pub channel_inputs: Vec<u32>,
    /// Its input watermarks.
    pub inputs: InputWatermarks,
    /// Checkpointing, if the job checkpoints.
    pub checkpointing: Option<TaskCheckpointing>,
    /// The chain had finished in the restored snapshot: it only forwards End.
    pub restored_finished: bool,
    /// The last barrier processed.
    pub last_barrier: u64,
}

fn state_err(uid: &str) -> impl Fn(rivulet_state::StateError) -> JobError + '_ {
    move |source| JobError::State { operator: uid.to_owned(), error: source }
}

impl ChainTask {
    /// Run until every input has ended (or a failure).
    pub async fn run(mut self) -> Result<(), JobError> {
        loop {
            let next_proc = self.ops.iter_mut().filter_map(|o| o.instance.timers().next_processing()).min();
            let ev = match next_proc {
                Some(t) => {
                    let wait = Duration::from_millis(t.saturating_sub(now_ms()).max(0) as u64);
                    tokio::select! {
                        ev = self.input.next() => ev,
                        () = tokio::time::sleep(wait) => {
                            self.fire_processing_timers(now_ms()).await?;
                            continue;
                        }
                    }
                }
                None => self.input.next().await,
            };
            let env = match ev {
                None => {
                    let head = &self.ops[0];
                    return Err(JobError::InputClosed { task: format!("operator '{}'[{}]", head.uid, head.meta.subtask) });
                }
                Some(GateEvent::Aligned(b)) => {
                    self.on_barrier(b).await?;
                    if b.stop {
                        return Ok(());
                    }
                    continue;
                }
                Some(GateEvent::Message(env)) => env,
            };
            match env.msg {
                Message::Barrier(_) => {}
                Message::Batch(batch) => {
                    self.ops[0].metrics.records_in.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.ops[0].metrics.batches_in.fetch_add(1, Ordering::Relaxed);
                    let input = self.channel_inputs.get(env.channel).copied().unwrap_or(0);
                    self.process(0, batch, input).await?;
                }
                Message::Watermark(wm) => {
                    let change = self.inputs.watermark(env.channel, wm);
                    self.on_change(change).await?;
                }
                Message::Idle => {
                    let change = self.inputs.idle(env.channel);
                    self.on_change(change).await?;
                }
                Message::End => {
                    let change = self.inputs.end(env.channel);
                    self.on_change(change).await?;
                    if self.inputs.all_ended() {
                        return self.finish().await;
                    }
                }
            }
        }
    }

    /// Every input delivered barrier `b`: capture each operator's state (the only part
    /// the pipeline waits for), forward the barrier, upload in the background.
    async fn on_barrier(&mut self, b: Barrier) -> Result<(), JobError> {
        self.last_barrier = b.id;
        if let Some(ctx) = &self.checkpointing {
            for op in &mut self.ops {
                // RocksDB files as they are: incremental checkpoints, native savepoints.
                let native = match b.kind {
                    SnapshotKind::Checkpoint => ctx.incremental,
                    SnapshotKind::Savepoint => b.format == SnapshotFormat::Native,
                };
                let native = native.then(|| op.staging.join(format!("chk-{}-{}", b.id, unique_suffix())));
                // Broadcast state is the same on every subtask: subtask 0 stores it.
                let broadcast = (op.meta.subtask == 0 && op.host.broadcast.is_some()).then(|| op.instance.broadcast().clone());
                let host = op.host.snapshot(broadcast);
                let watermark = op.watermark;
                let (store, timers) = op.instance.state_and_timers();
                let task = format!("{}[{}]", op.uid, op.meta.subtask);
                let meta = &op.meta;
                match blocking(|| capture(meta, store, timers, host, watermark, native.as_deref())) {
                    Ok(captured) => {
                        let ctx = ctx.clone();
                        let meta = op.meta.clone();
                        let uploaded = op.uploaded.clone();
                        let part = op.part(SubtaskState { subtask: 0, key_groups: (0, 0), finished: false, state: None, db: Vec::new() });
                        tokio::spawn(async move {
                            ctx.report(match upload(&ctx, b, &meta, captured, &uploaded).await {
                                Ok(state) => TaskReport::Ack { id: b.id, part: SnapshotPart::Operator(OperatorPart { state, ..part }) },
                                Err(e) => TaskReport::Decline { id: b.id, task, reason: e.to_string() },
                            });
                        });
                    }
                    Err(e) => ctx.report(TaskReport::Decline { id: b.id, task, reason: format!("capturing state: {e}") }),
                }
            }
        }
        for op in &mut self.ops {
            let uid = op.uid.clone();
            for out in &mut op.outputs {
                out.broadcast(&Message::Barrier(b)).await.map_err(|e| JobError::exchange(&uid, e))?;
            }
        }
        Ok(())
    }

    async fn on_change(&mut self, change: WatermarkChange) -> Result<(), JobError> {
        if self.restored_finished {
            // Restored as finished: never opened, fired everything before; it only
            // passes End on (which releases downstream watermarks).
            return Ok(());
        }
        match change {
            WatermarkChange::None => Ok(()),
            WatermarkChange::Advanced(wm) => self.advance(wm).await,
            WatermarkChange::Idle => {
                let last = self.ops.len() - 1;
                for out in &mut self.ops[last].outputs {
                    out.broadcast(&Message::Idle).await.map_err(|e| JobError::exchange("chain", e))?;
                }
                Ok(())
            }
        }
    }

    /// Feed `batch` of input `input` to operator `k` and everything its output reaches in
    /// the chain.
    async fn process(&mut self, k: usize, batch: Batch, input: u32) -> Result<(), JobError> {
        let op = &mut self.ops[k];
        let started = std::time::Instant::now();
        let output = op.host.process(&op.uid, &mut op.instance, &op.metrics, batch, input, op.watermark).await?;
        op.metrics.guest_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        op.metrics.memory_bytes.fetch_max(op.instance.memory_bytes() as u64, Ordering::Relaxed);
        self.emit(k, output).await
    }

    /// Route what operator `k` emitted: side outputs to their edges, the main output to
    /// the next operator of the chain or to the chain's output edges.
    async fn emit(&mut self, mut k: usize, mut output: Output) -> Result<(), JobError> {
        let chain_len = self.ops.len();
        loop {
            let op = &mut self.ops[k];
            op.metrics.records_out.fetch_add(output.len() as u64, Ordering::Relaxed);
            let waited = std::time::Instant::now();
            for (tag, batch) in &output.side {
                for out in op.outputs.iter_mut().filter(|o| o.tag.as_deref() == Some(tag.as_str())) {
                    out.send_batch(batch).await.map_err(|e| JobError::exchange(&op.uid, e))?;
                }
            }
            op.metrics.backpressure_ns.fetch_add(waited.elapsed().as_nanos() as u64, Ordering::Relaxed);
            if output.main.is_empty() {
                return Ok(());
            }
            if k + 1 < chain_len {
                let main = std::mem::take(&mut output.main);
                let next = &mut self.ops[k + 1];
                next.metrics.records_in.fetch_add(main.len() as u64, Ordering::Relaxed);
                k += 1;
                // Operators with host operators in front need keyed (or several) inputs,
                // so they always head a chain.
                let started = std::time::Instant::now();
                output = self.ops[k].instance.process(0, &main).await?;
                let op = &self.ops[k];
                op.metrics.guest_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                op.metrics.memory_bytes.fetch_max(op.instance.memory_bytes() as u64, Ordering::Relaxed);
                continue;
            }
            let waited = std::time::Instant::now();
            for out in op.outputs.iter_mut().filter(|o| o.tag.is_none()) {
                out.send_batch(&output.main).await.map_err(|e| JobError::exchange(&op.uid, e))?;
            }
            op.metrics.backpressure_ns.fetch_add(waited.elapsed().as_nanos() as u64, Ordering::Relaxed);
            return Ok(());
        }
    }

    /// Advance every operator of the chain to `wm`, firing due timers and windows in
    /// timestamp order, then forward the watermark.
    async fn advance(&mut self, wm: i64) -> Result<(), JobError> {
        for k in 0..self.ops.len() {
            {
                let op = &mut self.ops[k];
                op.watermark = wm;
                op.instance.set_watermark(wm);
                op.metrics.watermark.store(wm, Ordering::Relaxed);
            }
            let op = &mut self.ops[k];
            let released = op.host.advance(&op.uid, &mut op.instance, wm).await?;
            self.emit(k, released).await?;
            loop {
                let op = &mut self.ops[k];
                let guest_next = op.instance.timers().peek_event().filter(|t| *t <= wm);
                let window_next = op.host.window.as_ref().and_then(WindowOperator::next_timer).filter(|t| *t <= wm);
                let output = match (guest_next, window_next) {
                    (None, None) => break,
                    (Some(g), w) if w.is_none_or(|w| g <= w) => {
                        let Some((ts, key)) = op.instance.timers().pop_event_due(wm) else {
                            break;
                        };
                        op.instance.on_timer(key, ts, TimeDomain::EventTime).await?
                    }
                    _ => {
                        let Some(window) = op.host.window.as_mut() else {
                            break;
                        };
                        match window.pop_due(op.instance.state(), wm).map_err(state_err(&op.uid))? {
                            Some(Some(f)) => op.instance.process_window(f.key, f.span.start, f.span.end, &f.inputs).await?,
                            Some(None) => continue,
                            None => break,
                        }
                    }
                };
                self.emit(k, output).await?;
            }
            let output = self.ops[k].instance.on_watermark(wm).await?;
            self.emit(k, output).await?;
            let op = &mut self.ops[k];
            let uid = op.uid.clone();
            for out in &mut op.outputs {
                out.broadcast(&Message::Watermark(wm)).await.map_err(|e| JobError::exchange(&uid, e))?;
            }
        }
        Ok(())
    }

    async fn fire_processing_timers(&mut self, now: i64) -> Result<(), JobError> {
        for k in 0..self.ops.len() {
            while let Some((ts, key)) = self.ops[k].instance.timers().pop_processing_due(now) {
                let output = self.ops[k].instance.on_timer(key, ts, TimeDomain::ProcessingTime).await?;
                self.emit(k, output).await?;
            }
        }
        Ok(())
    }

    /// End of input: the final watermark has fired event time; fire the remaining
    /// processing-time timers (as Flink does in batch mode), close, forward End.
    async fn finish(&mut self) -> Result<(), JobError> {
        if !self.restored_finished {
            self.fire_processing_timers(i64::MAX).await?;
        }
        for k in 0..self.ops.len() {
            if !self.restored_finished {
                let output = self.ops[k].instance.close().await?;
                self.emit(k, output).await?;
            }
            let op = &mut self.ops[k];
            if let Some(ctx) = &self.checkpointing {
                // Before End goes out: the coordinator hears of it before anyone downstream.
                let range = op.meta.range;
                let state =
                    SubtaskState { subtask: op.meta.subtask, key_groups: (range.start, range.end), finished: true, state: None, db: Vec::new() };
                ctx.report(TaskReport::Finished { part: SnapshotPart::Operator(op.part(state)), after: self.last_barrier });
            }
            let uid = op.uid.clone();
            for out in &mut op.outputs {
                out.broadcast(&Message::End).await.map_err(|e| JobError::exchange(&uid, e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
