//! Errors that cross module boundaries.

use std::fmt;

/// What went wrong inside a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The component could not be instantiated.
    Instantiate,
    /// The guest trapped (panic, unreachable, bad state access…).
    Trap,
    /// A call ran past the per-call time limit.
    Timeout,
    /// The guest tried to grow its memory past the limit.
    MemoryLimit,
    /// The guest returned an error.
    GuestError,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Instantiate => "instantiation failed",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory limit",
            FailureKind::GuestError => "operator error",
        })
    }
}

/// A failure of one operator instance, naming the operator and its plugin.
#[derive(Debug, Clone, thiserror::Error)]
#[error("operator '{operator}' (plugin {plugin}) failed [{kind}]: {message}")]
pub struct GuestFailure {
    /// The operator's uid.
    pub operator: String,
    /// The plugin's label (name and digest).
    pub plugin: String,
    /// Classification.
    pub kind: FailureKind,
    /// Human-readable reason.
    pub message: String,
}

impl GuestFailure {
    /// A failure of `operator` running `plugin`.
    pub fn new(operator: &str, plugin: &str, kind: FailureKind, message: String) -> Self {
        GuestFailure { operator: operator.to_owned(), plugin: plugin.to_owned(), kind, message }
    }
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job spec is invalid.
    #[error(transparent)]
    Spec(#[from] crate::job::SpecError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    /// An operator's guest failed.
    #[error(transparent)]
    Guest(#[from] GuestFailure),
    /// A state backend failed.
    #[error("operator '{operator}': {error}")]
    State {
        /// Operator uid.
        operator: String,
        /// Backend error.
        error: crate::state::StateError,
    },
    /// A source or sink failed.
    #[error("{node} '{id}': {message}")]
    Connector {
        /// "source" or "sink".
        node: &'static str,
        /// Its id in the spec.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// Checkpointing or restoring failed.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// An internal error (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl JobError {
    /// Whether restarting the job from its last checkpoint can help (a failing task),
    /// as opposed to a job that can never start (bad spec, plugin, snapshot).
    pub fn is_restartable(&self) -> bool {
        match self {
            JobError::Spec(_) | JobError::Plugin(_) => false,
            JobError::Guest(g) => g.kind != FailureKind::Instantiate,
            JobError::Checkpoint(e) => {
                matches!(e, crate::checkpoint::CheckpointError::Storage { .. })
            }
            _ => true,
        }
    }

    /// (operator, plugin) the failure is attributed to, when known.
    pub fn culprit(&self) -> (Option<String>, Option<String>) {
        match self {
            JobError::Guest(g) => (Some(g.operator.clone()), Some(g.plugin.clone())),
            JobError::State { operator, .. } => (Some(operator.clone()), None),
            JobError::Connector { id, .. } => (Some(id.clone()), None),
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
