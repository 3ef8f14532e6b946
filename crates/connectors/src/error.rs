//! What goes wrong in a connector.

use rivulet_dataflow::{ExchangeError, NodeRole};

/// A source or sink failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The connector itself failed (an unreadable file, an unreachable broker…).
    #[error("{role} '{id}': {message}")]
    Failed {
        /// Source or sink.
        role: NodeRole,
        /// Its id in the spec.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// The task downstream of a source stopped (it failed, or the job is being torn down).
    #[error("{role} '{id}': downstream task stopped")]
    DownstreamGone {
        /// Source or sink.
        role: NodeRole,
        /// Its id.
        id: String,
    },
    /// A sink's input ended before end of input (its upstream failed).
    #[error("{role} '{id}': input closed before end of input")]
    InputClosed {
        /// Source or sink.
        role: NodeRole,
        /// Its id.
        id: String,
    },
}

impl ConnectorError {
    /// A failure of the connector `id`.
    pub fn failed(role: NodeRole, id: &str, message: impl Into<String>) -> Self {
        ConnectorError::Failed { role, id: id.to_owned(), message: message.into() }
    }

    /// An exchange failure of the connector `id`.
    pub fn exchange(role: NodeRole, id: &str, e: ExchangeError) -> Self {
        match e {
            ExchangeError::Gone => ConnectorError::DownstreamGone { role, id: id.to_owned() },
            other => ConnectorError::failed(role, id, other.to_string()),
        }
    }

    /// The id of the connector it is attributed to.
    pub fn connector(&self) -> &str {
        match self {
            ConnectorError::Failed { id, .. } | ConnectorError::DownstreamGone { id, .. } | ConnectorError::InputClosed { id, .. } => id,
        }
    }

    /// Whether this is a consequence of another task's failure rather than a cause.
    pub fn is_secondary(&self) -> bool {
        matches!(self, ConnectorError::DownstreamGone { .. } | ConnectorError::InputClosed { .. })
    }
}
