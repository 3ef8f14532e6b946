//! Savepoints asked for through the API, and stopping a job (with a savepoint, or at once).

use std::sync::Arc;

use rivulet_dataflow::{SnapshotFormat, now_ms};
use rivulet_runtime::{JobControl, SavepointError, SavepointReply};
use tokio::sync::watch;

use crate::ServerError;
use crate::manager::{JobManager, new_id};
use crate::record::{HistoryEvent, HistoryKind, JobRecord, JobStatus, SavepointInfo, SavepointStatus};

/// Ask the run behind `control` to stop with a savepoint in `format` and wait at most
/// `timeout` for it; past that the savepoint is given up (a stuck guest must not hold
/// the caller), and the run restarts from its latest checkpoint.
pub(crate) async fn stop_savepoint(control: &JobControl, format: SnapshotFormat, timeout: std::time::Duration) -> SavepointReply {
    match tokio::time::timeout(timeout, control.request_savepoint(true, format)).await {
        Ok(outcome) => outcome.unwrap_or(Err(SavepointError::JobEnded)),
        Err(_) => {
            let e = SavepointError::TimedOut { after_ms: timeout.as_millis() as u64 };
            control.abort_savepoint(e.to_string());
            Err(e)
        }
    }
}

/// How to stop a job.
#[derive(Debug, Clone, Copy)]
pub enum StopMode {
    /// At once, without a savepoint (uncommitted output is discarded).
    Cancel,
    /// Drained into a savepoint that commits the sinks, waiting at most `timeout`;
    /// `cancel_on_failure` cancels the job when the savepoint fails or times out.
    Savepoint {
        /// How long to wait for the savepoint.
        timeout: std::time::Duration,
        /// Cancel the job if the savepoint fails.
        cancel_on_failure: bool,
    },
}

/// What acting on a running job needs: its run's handle, the run's end, the job's
/// operation lock.
pub(crate) type Running = (Arc<JobControl>, watch::Receiver<bool>, Arc<tokio::sync::Mutex<()>>);

impl JobManager {
    /// The handle of job `id`'s running attempt.
    pub(crate) fn running(&self, id: &str) -> Result<Running, ServerError> {
        self.with_job(id, |e| {
            if e.record.status != JobStatus::Running {
                return Err(ServerError::Conflict(format!("job {id} is {}, not running", e.record.status)));
            }
            let r = e.running().ok_or_else(|| ServerError::Conflict(format!("job {id} has no running attempt")))?;
            Ok((r.control.clone(), r.ended.clone(), e.op.clone()))
        })
    }

    /// The refusal of a second stop, upgrade or rescale of job `id`.
    pub(crate) fn busy(id: &str) -> ServerError {
        ServerError::Conflict(format!("another stop, upgrade or rescale of job {id} is in progress"))
    }

    /// Ask for a savepoint; returns its trigger id at once.
    pub fn trigger_savepoint(self: &Arc<Self>, id: &str) -> Result<SavepointInfo, ServerError> {
        let (control, _, _) = self.running(id)?;
        let info = self.record_savepoint_request(id, false)?;
        let rx = control.request_savepoint(false, SnapshotFormat::Canonical);
        let manager = self.clone();
        let (job, trigger) = (id.to_owned(), info.trigger.clone());
        tokio::spawn(async move {
            let outcome = rx.await.unwrap_or(Err(SavepointError::JobEnded));
            manager.settle_savepoint(&job, &trigger, outcome);
        });
        Ok(info)
    }

    /// Note a savepoint request in the job's record (in progress).
    fn record_savepoint_request(&self, id: &str, stop: bool) -> Result<SavepointInfo, ServerError> {
        let info = SavepointInfo {
            trigger: new_id(),
            job: id.to_owned(),
            status: SavepointStatus::InProgress,
            location: None,
            error: None,
            requested_ms: now_ms(),
            stop,
        };
        self.with_job(id, |e| {
            e.record.savepoints.push(info.clone());
            self.persist(&e.record)
        })?;
        Ok(info)
    }

    /// Record what became of a savepoint request.
    fn settle_savepoint(&self, job: &str, trigger: &str, outcome: SavepointReply) {
        let _ = self.with_job(job, |e| {
            let versions = e.record.versions();
            if let Some(sp) = e.record.savepoints.iter_mut().find(|s| s.trigger == trigger) {
                match outcome {
                    Ok(loc) => {
                        sp.status = SavepointStatus::Completed;
                        sp.location = Some(loc.clone());
                        e.record.push(HistoryEvent { savepoint: Some(loc), ..HistoryEvent::new(HistoryKind::Savepoint, versions) });
                    }
                    Err(reason) => {
                        sp.status = SavepointStatus::Failed;
                        sp.error = Some(reason.to_string());
                    }
                }
            }
            self.persist(&e.record)
        });
    }

    /// A savepoint by trigger id.
    pub fn savepoint(&self, id: &str, trigger: &str) -> Result<SavepointInfo, ServerError> {
        self.with_job(id, |e| {
            e.record
                .savepoints
                .iter()
                .find(|s| s.trigger == trigger)
                .map(|s| s.redacted(&e.secrets))
                .ok_or_else(|| ServerError::NotFound(format!("savepoint trigger {trigger}")))
        })
    }

    /// Every savepoint of every job.
    pub fn all_savepoints(&self) -> Vec<SavepointInfo> {
        self.lock().values().flat_map(|e| e.record.savepoints.iter().map(|s| s.redacted(&e.secrets)).collect::<Vec<_>>()).collect()
    }

    /// Stop a job: with a savepoint (drained and committed first) or at once. A
    /// savepoint that does not complete in time (a stuck guest) is given up: the answer
    /// is a 409 then, and the job runs on from its latest checkpoint, or is cancelled
    /// when the mode says so.
    pub async fn stop(self: &Arc<Self>, id: &str, how: StopMode) -> Result<JobRecord, ServerError> {
        let (control, mut ended, op) = self.running(id)?;
        let _op = op.try_lock_owned().map_err(|_| Self::busy(id))?;
        match how {
            StopMode::Savepoint { timeout, cancel_on_failure } => {
                let trigger = self.record_savepoint_request(id, true)?.trigger;
                let outcome = stop_savepoint(&control, SnapshotFormat::Canonical, timeout).await;
                let failed = outcome.as_ref().err().cloned();
                self.settle_savepoint(id, &trigger, outcome);
                if let Some(reason) = failed {
                    let then = if cancel_on_failure {
                        control.cancel();
                        let _ = ended.wait_for(|e| *e).await;
                        "the job was cancelled"
                    } else {
                        "the job runs on from its latest checkpoint"
                    };
                    return Err(ServerError::Conflict(format!("stop with savepoint failed: {reason}; {then}")));
                }
            }
            StopMode::Cancel => control.cancel(),
        }
        let _ = ended.wait_for(|e| *e).await;
        self.record(id)
    }
}
