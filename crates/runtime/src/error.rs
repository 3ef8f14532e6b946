//! Why a job failed, and how a failure is recorded.

use rivulet_checkpoint::CheckpointError;
use rivulet_connectors::ConnectorError;
use rivulet_dataflow::ExchangeError;
use rivulet_job::SpecError;
use rivulet_plugin::{FailureKind, GuestFailure, PluginError};
use rivulet_state::StateError;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// An operator's guest failed.
    #[error(transparent)]
    Guest(#[from] GuestFailure),
    /// A state backend failed.
    #[error("operator '{operator}': {error}")]
    State {
        /// Operator uid.
        operator: String,
        /// Backend error.
        error: StateError,
    },
    /// A source or sink failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// A record could not be routed into an operator (it has no key to partition by).
    #[error("operator input '{operator}': {message}")]
    Routing {
        /// The operator whose output could not be routed.
        operator: String,
        /// Why.
        message: String,
    },
    /// The task downstream of an operator stopped: a consequence of its failure.
    #[error("operator '{operator}': downstream task stopped")]
    DownstreamGone {
        /// The operator that could not send.
        operator: String,
    },
    /// A task's input ended before end of input: a consequence of an upstream failure.
    #[error("{task}: input channel closed before end of input")]
    InputClosed {
        /// The task.
        task: String,
    },
    /// Checkpointing or restoring failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A task on a worker failed, or the worker running it failed or vanished.
    #[error("worker {worker}: {}", failure.reason)]
    Worker {
        /// The worker.
        worker: u32,
        /// What it reported (or what the coordinator saw).
        failure: RemoteFailure,
    },
    /// The cluster has no worker to run the job's tasks on (restartable: workers may
    /// register meanwhile).
    #[error("no worker with free slots registered within {waited_ms} ms (the job needs {needed} slots)")]
    NoSlots {
        /// Slots the job needs (its largest parallelism).
        needed: u32,
        /// How long the run waited.
        waited_ms: u64,
    },
    /// An internal error (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// A failure as it crosses from a worker to the coordinator: the message and what the
/// supervisor and the restart strategy decide by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteFailure {
    /// The failure's message.
    pub reason: String,
    /// Only the echo of another task's failure.
    pub secondary: bool,
    /// A restart can help.
    pub restartable: bool,
    /// Operator (or connector) it is attributed to.
    pub operator: Option<String>,
    /// Plugin label.
    pub plugin: Option<String>,
}

impl RemoteFailure {
    /// A worker that vanished (connection lost, heartbeats missed): restartable.
    pub fn lost(reason: impl Into<String>) -> Self {
        RemoteFailure { reason: reason.into(), secondary: false, restartable: true, operator: None, plugin: None }
    }
}

impl From<&JobError> for RemoteFailure {
    fn from(e: &JobError) -> Self {
        let (operator, plugin) = e.culprit();
        RemoteFailure { reason: e.to_string(), secondary: e.is_secondary(), restartable: e.is_restartable(), operator, plugin }
    }
}

impl JobError {
    /// The failure of operator `operator` to send or route.
    pub fn exchange(operator: &str, e: ExchangeError) -> Self {
        match e {
            ExchangeError::Gone => JobError::DownstreamGone { operator: operator.to_owned() },
            other => JobError::Routing { operator: operator.to_owned(), message: other.to_string() },
        }
    }

    /// Whether restarting the job from its last checkpoint can help (a failing task),
    /// as opposed to a job that can never start (bad spec, plugin, snapshot).
    pub fn is_restartable(&self) -> bool {
        match self {
            JobError::Spec(_) | JobError::Plugin(_) => false,
            JobError::Guest(g) => g.kind != FailureKind::Instantiate,
            JobError::Checkpoint(e) => matches!(e, CheckpointError::Storage { .. }),
            JobError::Worker { failure, .. } => failure.restartable,
            _ => true,
        }
    }

    /// Whether this failure is only the echo of another task's (a downstream task gone,
    /// an input closed): when several tasks fail, the first cause is reported.
    pub fn is_secondary(&self) -> bool {
        match self {
            JobError::DownstreamGone { .. } | JobError::InputClosed { .. } => true,
            JobError::Connector(c) => c.is_secondary(),
            JobError::Worker { failure, .. } => failure.secondary,
            _ => false,
        }
    }

    /// (operator, plugin) the failure is attributed to, when known.
    pub fn culprit(&self) -> (Option<String>, Option<String>) {
        match self {
            JobError::Guest(g) => (Some(g.operator.clone()), Some(g.plugin.clone())),
            JobError::State { operator, .. } | JobError::Routing { operator, .. } => (Some(operator.clone()), None),
            JobError::Connector(c) if !c.is_secondary() => (Some(c.connector().to_owned()), None),
            JobError::Worker { failure, .. } => (failure.operator.clone(), failure.plugin.clone()),
            _ => (None, None),
        }
    }
}

/// One failure of a job run, as recorded for the user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailureRecord {
    /// Attempt number (0 = first).
    pub attempt: u32,
    /// Operator (or connector) it is attributed to.
    pub operator: Option<String>,
    /// Plugin label.
    pub plugin: Option<String>,
    /// Why.
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
}
