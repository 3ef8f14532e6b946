//! A job spec that cannot run, and why.

/// A job spec that cannot run, and why.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read job spec {path}: {error}")]
    Read {
        /// Path.
        path: String,
        /// I/O error.
        error: std::io::Error,
    },
    /// The YAML does not parse into a spec.
    #[error("job spec {path}: {message}")]
    Parse {
        /// Path.
        path: String,
        /// Parser message (with the field and line).
        message: String,
    },
    /// A `${name}` placeholder has no value.
    #[error("job spec uses ${{{name}}} but no value was given (pass --param {name}=VALUE)")]
    MissingParam {
        /// Placeholder name.
        name: String,
    },
    /// A part of the spec is wrong.
    #[error("job spec: {at}: {message}")]
    Invalid {
        /// Where: e.g. `operators[1] (uid 'count').inputs`.
        at: String,
        /// Why.
        message: String,
    },
}

impl SpecError {
    /// An invalid part of the spec.
    pub fn invalid(at: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError::Invalid { at: at.into(), message: message.into() }
    }
}
