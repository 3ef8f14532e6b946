//! Where a run's tasks run. By default in this process; with [`TaskHosts`] in
//! [`RunOptions::hosts`](crate::RunOptions) on workers elsewhere: the run keeps its
//! coordinator, supervisor and restarts here, and the hosts start the plan's tasks, carry
//! barriers to their sources, bring their snapshot reports back and stand for each of
//! them in the supervisor's task set (a worker that fails or vanishes fails its tasks).
//! A worker starts its share with [`start_placed_tasks`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use rivulet_checkpoint::{Ledger, TaskReport};
use rivulet_dataflow::{Barrier, Exchange, NodeMetrics};
use rivulet_job::JobGraph;
use rivulet_plugin::PluginEngine;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::JobError;
use crate::launch::Launch;
use crate::options::{RestoreFrom, RunOptions};
use crate::plan::PhysicalPlan;
use crate::restore::restore_point;
use crate::run::{Connectors, load_plugins, task_checkpointing};

/// One run's tasks, as hosts elsewhere are asked to start them.
pub struct RemoteRun<'a> {
    /// The job's id (a server's job id, else the graph's name): hosts that keep workers
    /// per job keep them under it.
    pub job: &'a str,
    /// The job.
    pub graph: &'a JobGraph,
    /// Its tasks and channels.
    pub plan: &'a PhysicalPlan,
    /// The run's options (state backend, limits, checkpoint storage, attempt number).
    pub opts: &'a RunOptions,
    /// The snapshot the run starts from (its location), if any.
    pub restore: Option<String>,
    /// Where the tasks' snapshot reports go, if the job checkpoints.
    pub reports: Option<mpsc::UnboundedSender<TaskReport>>,
    /// Completed snapshots, as the coordinator records them (hosts pass them on).
    pub ledger: Arc<Ledger>,
    /// Each node's counters, summed over the hosts.
    pub metrics: &'a [Arc<NodeMetrics>],
}

/// Tasks started by hosts.
pub struct StartedTasks {
    /// One entry per host's share (or per task): ends when its tasks end, with the first
    /// failure; aborting it cancels them.
    pub tasks: JoinSet<Result<(), JobError>>,
    /// Where the coordinator injects barriers (each reaches the sources behind it).
    pub barriers: Vec<mpsc::UnboundedSender<Barrier>>,
}

/// What a boxed start returns.
pub type StartFuture<'a> = Pin<Box<dyn Future<Output = Result<StartedTasks, JobError>> + Send + 'a>>;

/// Hosts that run a job's tasks outside this process (a cluster's workers).
pub trait TaskHosts: Send + Sync + fmt::Debug {
    /// Start every task of `run` on the hosts.
    fn start<'a>(&'a self, run: RemoteRun<'a>) -> StartFuture<'a>;

    /// The job `job` ended (finished, failed, cancelled or stopped; not between the two
    /// runs of a swap or a rescale): hosts made for it may go. Nothing by default.
    fn job_ended<'a>(&'a self, job: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let _ = job;
        Box::pin(std::future::ready(()))
    }

    /// Only the jobs in `active` may still run (a coordinator that just started, after
    /// resuming its jobs): hosts made for any other job may go. Nothing by default.
    fn retain_jobs<'a>(&'a self, active: &'a [String]) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let _ = active;
        Box::pin(std::future::ready(()))
    }
}

/// What a worker needs to start its share of a run.
pub struct PlacedRun<'a> {
    /// The job.
    pub graph: &'a JobGraph,
    /// The engine.
    pub engine: &'a Arc<PluginEngine>,
    /// State backend, data directory, limits, checkpoint storage (for uploads) and the
    /// snapshot the run starts from ([`RestoreFrom::Path`]).
    pub opts: &'a RunOptions,
    /// Channels: same-worker in memory, the rest over the network.
    pub exchange: &'a dyn Exchange,
    /// Which of the plan's tasks are this worker's (indices into
    /// [`PhysicalPlan::tasks`] of the graph's plan).
    pub tasks: &'a [usize],
    /// Where the tasks' snapshot reports go (to the coordinator).
    pub reports: Option<mpsc::UnboundedSender<TaskReport>>,
    /// Completed snapshots, as the coordinator announces them.
    pub ledger: Arc<Ledger>,
    /// Each node's counters, for this worker's tasks.
    pub metrics: &'a [Arc<NodeMetrics>],
    /// The working directory of this share (removed by the caller afterwards).
    pub run_dir: PathBuf,
}

/// Start a worker's share of a run: plugins loaded, the snapshot opened (never chosen:
/// the coordinator names it), the placed tasks started. Returns the tasks (one entry
/// each) and one barrier sender per placed source subtask.
pub async fn start_placed_tasks(run: PlacedRun<'_>) -> Result<StartedTasks, JobError> {
    if matches!(run.opts.restore, RestoreFrom::Latest) {
        return Err(JobError::Internal("a worker restores the snapshot the coordinator names, never 'latest'".into()));
    }
    let plugins = load_plugins(run.graph, run.engine).await?;
    let connectors = Connectors::build(run.graph, run.opts);
    let point = restore_point(run.graph, run.opts, &connectors.committers).await?;
    let checkpointing = task_checkpointing(run.opts, run.reports, &run.ledger);
    let plan = PhysicalPlan::new(run.graph);
    let launched = Launch {
        graph: run.graph,
        plan: &plan,
        exchange: run.exchange,
        engine: run.engine,
        opts: run.opts,
        point: point.as_ref(),
        plugins: &plugins,
        sources: &connectors.sources,
        sinks: &connectors.sinks,
        metrics: run.metrics,
        run_dir: &run.run_dir,
        checkpointing,
        placed: Some(run.tasks),
    }
    .start()
    .await?;
    Ok(StartedTasks { tasks: launched.tasks, barriers: launched.barriers })
}

/// The placement of a plan's receiving subtasks, from each task's host: what an exchange
/// across workers needs to route channels.
pub fn receivers_by_host<H: Copy>(plan: &PhysicalPlan, hosts: &[H]) -> HashMap<rivulet_dataflow::SubtaskId, H> {
    plan.tasks.iter().zip(hosts).filter_map(|(t, h)| t.receiver().map(|r| (r, *h))).collect()
}
