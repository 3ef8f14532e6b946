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
    /// An internal error (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}
