//! What can go wrong talking to Kubernetes.

/// A Kubernetes failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No usable configuration (no kubeconfig, not in a pod).
    #[error("Kubernetes configuration: {0}")]
    Config(String),
    /// The API server refused or failed a request.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// What the API server said.
        #[source]
        source: kube::Error,
    },
    /// The owner named for worker pods is not something pods can belong to.
    #[error("owner {0:?}: expected KIND/NAME with KIND deployment, statefulset or pod")]
    Owner(String),
    /// The lease could not be taken or kept.
    #[error("lease {name}: {reason}")]
    Lease {
        /// The lease.
        name: String,
        /// Why.
        reason: String,
    },
}

impl KubeError {
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
        let what = what.into();
        move |source| KubeError::Api { what, source }
    }
}
