//! The runtime: runs a [`JobGraph`] — planned into tasks and channels ([`plan`]), its
//! sources, chains of Wasm operators and sinks started on tokio and connected through
//! the exchange, checkpointed by the coordinator, restored from snapshots, restarted
//! after failures — and gives a controller a handle on it ([`JobControl`]).
//!
//! - [`plan`]: the pure physical plan (chaining, channel wiring);
//! - `launch`: channels and tasks of one run; `operator_setup`: one operator subtask,
//!   restored and opened; `chain`: the task running a chain; `host_ops`: what the host
//!   does in front of a guest — [`window`]s, the [`interval_join`], the ordering of
//!   [`broadcast`] inputs;
//! - `supervise`: the loop that watches a run, triggers snapshots, answers savepoint
//!   requests; `run`: one run; `restart`: runs after failures;
//! - `restore`: where a run starts from, and the dry run of a restore;
//! - `hosts`: tasks run by workers elsewhere ([`TaskHosts`]) and a worker's share of a
//!   run ([`start_placed_tasks`]).
//!
//! [`JobGraph`]: rivulet_job::JobGraph

pub mod broadcast;
mod chain;
mod control;
mod error;
mod host_ops;
mod hosts;
pub mod interval_join;
mod launch;
mod operator_setup;
mod options;
pub mod plan;
mod progress;
mod report;
mod restart;
mod restore;
mod run;
mod supervise;
pub mod window;

pub use control::{JobControl, Live, SavepointError, SavepointReply, SavepointRequest};
pub use error::{FailureRecord, JobError, RemoteFailure};
pub use hosts::{PlacedRun, RemoteRun, StartFuture, StartedTasks, TaskHosts, receivers_by_host, start_placed_tasks};
pub use options::{CheckpointOverrides, RestoreFrom, RunOptions, checkpoint_config};
pub use report::{JobReport, NodeCounts};
pub use restart::run_job_with_restarts;
pub use restore::dry_run_restore;
pub use run::{committers, run_job};
