//! Per-node counters shared by a node's subtasks, read by progress reporting and the
//! server's views.

use std::sync::atomic::{AtomicI64, AtomicU64};

/// Counters of one job node (summed over its subtasks).
#[derive(Debug)]
pub struct NodeMetrics {
    /// The node's id.
    pub id: String,
    /// Records received.
    pub records_in: AtomicU64,
    /// Records emitted (all outputs).
    pub records_out: AtomicU64,
    /// Records routed to a late-data side output by windows.
    pub late_records: AtomicU64,
    /// Latest watermark seen by any subtask.
    pub watermark: AtomicI64,
    /// Nanoseconds spent in guest calls (operators).
    pub guest_ns: AtomicU64,
    /// Nanoseconds spent waiting for a full downstream channel (backpressure).
    pub backpressure_ns: AtomicU64,
    /// Largest linear memory of any instance, in bytes (operators).
    pub memory_bytes: AtomicU64,
    /// Batches received.
    pub batches_in: AtomicU64,
    /// Undecodable records a source sent to its `dead-letter` side output.
    pub dead_letters: AtomicU64,
}

impl NodeMetrics {
    /// Zeroed counters for node `id`.
    pub fn new(id: &str) -> Self {
        NodeMetrics {
            id: id.to_owned(),
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            late_records: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            guest_ns: AtomicU64::new(0),
            backpressure_ns: AtomicU64::new(0),
            memory_bytes: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
        }
    }
}
