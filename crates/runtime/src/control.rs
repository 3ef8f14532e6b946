//! A handle on a running job for whoever runs it in the background (the server): ask
//! for savepoints, stop or cancel it, read its live counters, its completed snapshots
//! and the failures it restarted from.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rivulet_checkpoint::CoordinatorOutcome;
use rivulet_dataflow::NodeMetrics;
use rivulet_plugin::GuestLog;
use tokio::sync::oneshot;

use crate::error::FailureRecord;

/// Why a savepoint asked for did not come to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavepointError {
    /// The job has no checkpoint location to put it in.
    #[error("the job has no checkpoint location, so it cannot take savepoints")]
    NoLocation,
    /// The job is not running (any more).
    #[error("the job is no longer running")]
    NotRunning,
    /// The job ended before the savepoint was taken.
    #[error("the job ended before the savepoint could be taken")]
    NotTaken,
    /// The job ended before the savepoint completed.
    #[error("the job ended before the savepoint completed")]
    JobEnded,
    /// It did not complete within the time its requester waited; it was given up.
    #[error("the savepoint did not complete within {after_ms} ms and was given up")]
    TimedOut {
        /// How long the requester waited.
        after_ms: u64,
    },
    /// The snapshot was aborted.
    #[error("savepoint {id} failed: {reason}")]
    Failed {
        /// Snapshot id.
        id: u64,
        /// Why.
        reason: String,
    },
}

/// What a savepoint request ends in: the savepoint's location, or why there is none.
pub type SavepointReply = Result<String, SavepointError>;

/// A savepoint asked for while the job runs.
#[derive(Debug)]
pub struct SavepointRequest {
    /// Stop the job once the savepoint is complete (its sinks commit first).
    pub stop: bool,
    /// How operator state is written.
    pub format: rivulet_dataflow::SnapshotFormat,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<SavepointReply>,
}

/// What the job shares with its controller.
#[derive(Debug, Default)]
pub struct JobControl {
    requests: Mutex<VecDeque<SavepointRequest>>,
    cancel: AtomicBool,
    closed: AtomicBool,
    /// Why the snapshot in progress must be given up (a controller stopped waiting).
    abort: Mutex<Option<String>>,
    live: Mutex<Live>,
    /// What the job's guests logged.
    pub guest_log: Arc<GuestLog>,
}

/// The live view of a run.
#[derive(Debug, Default, Clone)]
pub struct Live {
    /// Per node counters of the current attempt (empty before it starts), in graph order.
    pub metrics: Vec<Arc<NodeMetrics>>,
    /// Snapshots completed since the job was started by this controller.
    pub snapshots: Vec<CoordinatorOutcome>,
    /// Snapshots that failed: (id, reason).
    pub snapshot_failures: Vec<(u64, String)>,
    /// Failures the job restarted from (or died of).
    pub failures: Vec<FailureRecord>,
    /// Attempt number of the current run.
    pub attempt: u32,
    /// Where the current attempt was restored from.
    pub restored_from: Option<String>,
    /// Per node, the worker running each subtask (empty when the tasks run in this
    /// process).
    pub placement: Vec<Vec<u32>>,
}

impl JobControl {
    /// A fresh handle.
    pub fn new() -> Arc<Self> {
        Arc::new(JobControl::default())
    }

    /// A fresh handle whose guests log into `log` (kept across a job's runs).
    pub fn with_guest_log(log: Arc<GuestLog>) -> Arc<Self> {
        Arc::new(JobControl { guest_log: log, ..JobControl::default() })
    }

    /// Ask for a savepoint in `format`; the receiver yields its location once complete
    /// (or why not: a request to a job that has ended is answered at once).
    pub fn request_savepoint(&self, stop: bool, format: rivulet_dataflow::SnapshotFormat) -> oneshot::Receiver<SavepointReply> {
        let (reply, rx) = oneshot::channel();
        let mut queue = self.lock_requests();
        if self.closed.load(Ordering::SeqCst) {
            let _ = reply.send(Err(SavepointError::NotRunning));
        } else {
            queue.push_back(SavepointRequest { stop, format, reply });
        }
        rx
    }

    /// The job has ended for good: answer every queued request and refuse new ones.
    pub fn close(&self) {
        let mut queue = self.lock_requests();
        self.closed.store(true, Ordering::SeqCst);
        for r in queue.drain(..) {
            let _ = r.reply.send(Err(SavepointError::NotTaken));
        }
    }

    /// Stop the job at once, without a savepoint (the uncommitted output is discarded).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Give up the savepoint in progress (one its requester no longer waits for) with
    /// `reason`. Like any failed savepoint, it fails the run, which restarts from its
    /// latest checkpoint under its restart strategy. A request not yet started is
    /// dropped when its requester stops waiting.
    pub fn abort_savepoint(&self, reason: String) {
        *self.abort.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    pub(crate) fn take_abort(&self) -> Option<String> {
        self.abort.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Whether [`JobControl::cancel`] was called.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// A copy of the live view.
    pub fn live(&self) -> Live {
        self.lock_live().clone()
    }

    pub(crate) fn next_request(&self) -> Option<SavepointRequest> {
        self.lock_requests().pop_front()
    }

    pub(crate) fn push_front(&self, r: SavepointRequest) {
        self.lock_requests().push_front(r);
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Live)) {
        f(&mut self.lock_live());
    }

    /// Record where each node's subtasks run (task hosts elsewhere call it as a run
    /// starts): per node, the worker of each subtask.
    pub fn set_placement(&self, placement: Vec<Vec<u32>>) {
        self.lock_live().placement = placement;
    }

    fn lock_requests(&self) -> MutexGuard<'_, VecDeque<SavepointRequest>> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}
