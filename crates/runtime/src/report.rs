//! What a finished run did.

use std::time::Duration;

use rivulet_checkpoint::CoordinatorOutcome;

use crate::error::FailureRecord;

/// Counters of one node at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCounts {
    /// Node id.
    pub id: String,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Late records sent aside by windows.
    pub late: u64,
}

/// What a finished job did.
#[derive(Debug, Clone, Default)]
pub struct JobReport {
    /// Per node counters, in graph order.
    pub nodes: Vec<NodeCounts>,
    /// Wall time.
    pub elapsed: Duration,
    /// Snapshots completed in this run.
    pub snapshots: Vec<CoordinatorOutcome>,
    /// Snapshots that failed in this run: (id, reason).
    pub snapshot_failures: Vec<(u64, String)>,
    /// Where the run started from.
    pub restored_from: Option<String>,
    /// Newer snapshots skipped on restore because they did not verify.
    pub restore_skipped: Vec<String>,
    /// The job stopped with this savepoint.
    pub stopped_with_savepoint: Option<String>,
    /// Savepoints taken while running.
    pub savepoints: Vec<String>,
    /// Failures the job restarted from.
    pub failures: Vec<FailureRecord>,
    /// The controller cancelled the run.
    pub cancelled: bool,
}
