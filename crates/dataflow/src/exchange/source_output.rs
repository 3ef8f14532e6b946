//! Where a source sends what it reads: batching, watermark generation and routing.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{ExchangeError, OutputEdge};
use crate::batch::BatchBuilder;
use crate::message::{Barrier, Message};
use crate::metrics::NodeMetrics;

/// Most records between two watermarks (and per batch) a source emits.
pub const WATERMARK_EVERY: usize = 1000;

/// A source subtask's output port.
///
/// Records are batched (at most `batch_size`); after each batch the watermark the data
/// allows (bounded out-of-orderness over the largest timestamp seen, or over a basis the
/// source sets) follows in-band, so event-time results never depend on read speed.
pub struct SourceOutput {
    outputs: Vec<OutputEdge>,
    batch: BatchBuilder,
    batch_size: usize,
    /// Bounded out-of-orderness in ms, when the source has event time.
    out_of_orderness: Option<i64>,
    max_ts: i64,
    last_wm: i64,
    metrics: Arc<NodeMetrics>,
    /// What watermarks are derived from instead of the largest timestamp seen (a source
    /// with partitions sets the minimum over its partitions).
    wm_basis: Option<i64>,
}

impl SourceOutput {
    /// An output over `outputs` with at most `batch_size` records per batch.
    pub fn new(outputs: Vec<OutputEdge>, batch_size: usize, out_of_orderness: Option<i64>, metrics: Arc<NodeMetrics>) -> Self {
        SourceOutput {
            outputs,
            batch: BatchBuilder::new(),
            batch_size: batch_size.clamp(1, WATERMARK_EVERY),
            out_of_orderness,
            max_ts: i64::MIN,
            last_wm: i64::MIN,
            metrics,
            wm_basis: None,
        }
    }

    /// Derive watermarks from `basis` (e.g. the least of per-partition maxima) rather
    /// than from the largest timestamp seen; `None` holds the watermark back.
    pub fn set_watermark_basis(&mut self, basis: Option<i64>) {
        self.wm_basis = Some(basis.unwrap_or(i64::MIN));
    }

    /// Whether the source generates watermarks (it has event time).
    pub fn has_event_time(&self) -> bool {
        self.out_of_orderness.is_some()
    }

    /// Continue watermark generation from a restored position.
    pub fn restore_max_ts(&mut self, max_ts: i64) {
        self.max_ts = max_ts;
        if let Some(bound) = self.out_of_orderness
            && max_ts != i64::MIN
        {
            self.last_wm = max_ts.saturating_sub(bound).saturating_sub(1);
        }
    }

    /// The largest event time seen (for the source's position).
    pub fn max_ts(&self) -> i64 {
        self.max_ts
    }

    /// Add one record; sends a batch (and a watermark) when the batch is full.
    pub async fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), ExchangeError> {
        self.batch.push(key, value, timestamp);
        self.max_ts = self.max_ts.max(timestamp);
        if self.batch.len() >= self.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Send one record to the `tag` side output at once (rare records such as dead
    /// letters; dropped when nothing reads the tag).
    pub async fn push_side(&mut self, tag: &str, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), ExchangeError> {
        let mut b = BatchBuilder::new();
        b.push(key, value, timestamp);
        let batch = b.take();
        for out in self.outputs.iter_mut().filter(|o| o.tag.as_deref() == Some(tag)) {
            out.send_batch(&batch).await?;
        }
        Ok(())
    }

    /// Send an undecodable record to the `dead-letter` side output, counted in the node's
    /// `dead_letters`.
    pub async fn dead_letter(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: i64) -> Result<(), ExchangeError> {
        self.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
        self.push_side("dead-letter", key, value, timestamp).await
    }

    /// Send the pending batch and the watermark it allows.
    pub async fn flush(&mut self) -> Result<(), ExchangeError> {
        if !self.batch.is_empty() {
            let batch = self.batch.take();
            self.metrics.records_out.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let waited = std::time::Instant::now();
            for out in self.outputs.iter_mut().filter(|o| o.tag.is_none()) {
                out.send_batch(&batch).await?;
            }
            self.metrics.backpressure_ns.fetch_add(waited.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        let basis = self.wm_basis.unwrap_or(self.max_ts);
        if let Some(bound) = self.out_of_orderness
            && basis != i64::MIN
        {
            let wm = basis.saturating_sub(bound).saturating_sub(1);
            if wm > self.last_wm {
                self.broadcast(Message::Watermark(wm)).await?;
                self.last_wm = wm;
                self.metrics.watermark.store(wm, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Tell downstream this source is idle.
    pub async fn idle(&mut self) -> Result<(), ExchangeError> {
        self.flush().await?;
        self.broadcast(Message::Idle).await
    }

    /// Emit `barrier` after everything pushed so far.
    pub async fn barrier(&mut self, barrier: Barrier) -> Result<(), ExchangeError> {
        self.flush().await?;
        self.broadcast(Message::Barrier(barrier)).await
    }

    /// The input is exhausted: flush, then the final watermark (it fires every
    /// event-time timer and window downstream). [`SourceOutput::end`] follows.
    pub async fn end_of_input(&mut self) -> Result<(), ExchangeError> {
        self.flush().await?;
        self.broadcast(Message::Watermark(i64::MAX)).await?;
        self.metrics.watermark.store(i64::MAX, Ordering::Relaxed);
        Ok(())
    }

    /// Tell downstream this source has ended.
    pub async fn end(&mut self) -> Result<(), ExchangeError> {
        self.broadcast(Message::End).await
    }

    async fn broadcast(&mut self, msg: Message) -> Result<(), ExchangeError> {
        for out in &mut self.outputs {
            out.broadcast(&msg).await?;
        }
        Ok(())
    }
}
