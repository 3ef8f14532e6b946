//! Workers made on demand: a resource manager (Kubernetes) that starts workers for a
//! job when its run needs slots and removes them when the job ends. Such workers join
//! with the job's id as their pool and run only that job's tasks.

use std::fmt;

use futures::future::BoxFuture;

/// Why workers could not be provided.
#[derive(Debug, thiserror::Error)]
#[error("providing workers for job {job}: {reason}")]
pub struct ProvisionError {
    /// The job.
    pub job: String,
    /// What the resource manager said.
    pub reason: String,
}

/// Starts and removes a job's workers.
pub trait WorkerProvisioner: Send + Sync + fmt::Debug {
    /// Make sure workers with slots for `subtasks` subtasks exist for `job` (creating
    /// the missing ones, removing ones beyond what it needs); they join the cluster by
    /// themselves with `job` as their pool.
    fn provide<'a>(&'a self, job: &'a str, subtasks: u32) -> BoxFuture<'a, Result<(), ProvisionError>>;

    /// `job` ended: remove its workers.
    fn release<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<(), ProvisionError>>;

    /// Remove the workers of every job not in `active` (left behind by a coordinator
    /// that died before it could remove them).
    fn retain<'a>(&'a self, active: &'a [String]) -> BoxFuture<'a, Result<(), ProvisionError>>;
}
