//! Rivulet's cluster: a coordinator and its workers. The coordinator ([`Cluster`]) keeps
//! the registry of workers that joined with the cluster token and runs a job's tasks on
//! them as a [`TaskHosts`](rivulet_runtime::TaskHosts): it places subtasks into slots,
//! ships plugins and the deployment, carries barriers to the sources and snapshot reports
//! back, and cancels a run's share everywhere when any worker fails or vanishes. A worker
//! ([`run_worker`]) registers, heartbeats with its counters, and runs the tasks it is
//! given over the network exchange. [`ProcessWorkers`] starts workers as child processes
//! of the coordinator's machine (the `process` scheduler); a [`WorkerProvisioner`] makes
//! workers per job elsewhere (the `kubernetes` scheduler's pods).

mod coordinator;
mod process;
pub mod protocol;
mod provision;
mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use coordinator::{Cluster, WorkerView};
pub use process::ProcessWorkers;
pub use provision::{ProvisionError, WorkerProvisioner};
pub use rivulet_network::{ClusterTls, ClusterToken, NetworkConfig, TlsError, Transport, WorkerId};
pub use worker::{WorkerConfig, WorkerError, run_worker};

/// How the coordinator treats its workers.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The secret workers prove they hold (and with which the workers' exchange
    /// connections authenticate each other).
    pub token: ClusterToken,
    /// How often workers heartbeat.
    pub heartbeat: Duration,
    /// A worker silent for this long is lost: its runs fail over.
    pub worker_timeout: Duration,
    /// How long a run waits for as many slots as it has subtasks before it runs on the
    /// workers there are (several subtasks per slot), or fails when there are none.
    pub slots_wait: Duration,
    /// How long workers may take to get ready for a run (plugins received, exchange
    /// port bound).
    pub prepare_timeout: Duration,
    /// The coordinator's leadership term (the lease's transitions; 0 without a lease):
    /// workers that served a higher one refuse this coordinator.
    pub epoch: u64,
    /// Makes workers per job (pods); `None`: the workers that join are all there is.
    pub provisioner: Option<Arc<dyn WorkerProvisioner>>,
    /// Plain TCP or TLS on workers' control connections (the same as theirs).
    pub transport: Transport,
}

impl ClusterConfig {
    /// Defaults: heartbeat every second, lost after 5 s, 10 s to find slots, 2 min to
    /// prepare.
    pub fn new(token: ClusterToken) -> Self {
        ClusterConfig {
            token,
            heartbeat: Duration::from_secs(1),
            worker_timeout: Duration::from_secs(5),
            slots_wait: Duration::from_secs(10),
            prepare_timeout: Duration::from_secs(120),
            epoch: 0,
            provisioner: None,
            transport: Transport::default(),
        }
    }
}

/// How long the control handshake and the registration may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
