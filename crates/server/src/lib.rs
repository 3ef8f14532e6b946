//! The server's core, without HTTP: the plugin registry ([`PluginRegistry`]), the jobs
//! and their lifecycle ([`JobManager`]: submission, background runs, savepoints, stop,
//! the hot swap with rollback), persisted so a restarted server resumes its jobs. The
//! REST API (`rivulet-api`) is a thin shell over it.
//!
//! Layout of `--data-dir`: `plugins/`, `jobs/<id>.json`, `checkpoints/<id>/` (unless a
//! job's spec names its own checkpoint location), `state/<id>/` (RocksDB working dirs).

mod access;
mod entry;
mod manager;
pub mod record;
mod registry;
mod runs;
mod savepoints;
pub mod store;
mod upgrade;
pub mod view;

pub use access::{AccessPolicy, BucketPattern, HostPattern};
pub use manager::{JobDefaults, JobManager, JobMetrics, Submission};
pub use record::{
    ExceptionInfo, HistoryEvent, HistoryKind, JobRecord, JobStatus, PluginRef, SavepointInfo, SavepointStatus, UpgradeOutcome, UpgradeResult,
};
pub use registry::{COMPILE_TIME_LIMIT, PluginMeta, PluginRegistry, check_ident};
pub use savepoints::StopMode;
pub use view::{CheckpointsView, EdgeStatus, FailedSnapshot, JobDetail, NodeLabel, NodeStatus, RetainedSnapshot, SnapshotStat};

/// A request the server refuses or cannot serve; the API maps each to a status code
/// and a JSON body `{"error": …}` without internals.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or a wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 403: the token's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0} not found")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// 422: well-formed but unusable (a component that is not an operator).
    #[error("{0}")]
    Unprocessable(String),
    /// 503: the server cannot take this now (it is busy); retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a failure on the server's side (details are logged, not returned).
    #[error("internal error: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests;
