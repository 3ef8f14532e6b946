//! Rivulet on Kubernetes. The `kubernetes` scheduler's [`KubeWorkers`] creates a job's
//! worker pods (with kube-rs) when its run needs slots — each pod runs `rivulet worker`
//! with the job's id as its pool, owned by the coordinator's Deployment — and deletes
//! them when the job ends. [`Leadership`] holds the coordinator's Lease: a standby
//! coordinator waits for it, the holder's epoch (the lease's transitions) fences deposed
//! coordinators out, and losing it ends the holder's leadership.

mod error;
mod lease;
mod pods;

pub use error::KubeError;
pub use lease::Leadership;
pub use pods::{KubeWorkers, WorkerPods, job_label};

/// A client from the environment: `$KUBECONFIG` or `~/.kube/config`, else the pod's
/// service account (in a cluster). Its default namespace comes with it.
pub async fn client() -> Result<kube::Client, KubeError> {
    // rustls needs one process-wide crypto provider; another library may have set it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    kube::Client::try_default().await.map_err(|e| KubeError::Config(format!("{e:#}")))
}
