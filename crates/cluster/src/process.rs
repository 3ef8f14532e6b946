//! The `process` scheduler's workers: child processes of the coordinator on its own
//! machine, each restarted when it exits (a `kill -9` included) and killed with the
//! coordinator's handle.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

/// Worker processes started and kept running by the coordinator.
#[derive(Debug)]
pub struct ProcessWorkers {
    pids: Arc<Mutex<Vec<Option<u32>>>>,
    supervisors: Vec<JoinHandle<()>>,
}

impl Drop for ProcessWorkers {
    fn drop(&mut self) {
        // Each supervisor owns its child with kill-on-drop: aborting it kills the child.
        for s in &self.supervisors {
            s.abort();
        }
    }
}

impl ProcessWorkers {
    /// Start `count` processes of `program`, the `i`th with `args(i)` and `envs`; each is
    /// started again (after `restart_delay`) whenever it exits.
    pub fn start(program: PathBuf, count: usize, args: impl Fn(usize) -> Vec<String>, envs: &[(String, String)], restart_delay: Duration) -> Self {
        let pids = Arc::new(Mutex::new(vec![None; count]));
        let supervisors = (0..count)
            .map(|i| {
                let mut cmd = tokio::process::Command::new(&program);
                cmd.args(args(i)).envs(envs.iter().map(|(k, v)| (k, v))).kill_on_drop(true).stdin(std::process::Stdio::null());
                let pids = pids.clone();
                tokio::spawn(async move {
                    loop {
                        match cmd.spawn() {
                            Ok(mut child) => {
                                let pid = child.id();
                                set(&pids, i, pid);
                                tracing::info!(worker = i, pid, "process scheduler: worker started");
                                let status = child.wait().await;
                                set(&pids, i, None);
                                tracing::warn!(worker = i, pid, ?status, "process scheduler: worker exited; starting it again");
                            }
                            Err(e) => tracing::warn!(worker = i, "process scheduler: cannot start a worker: {e}"),
                        }
                        tokio::time::sleep(restart_delay).await;
                    }
                })
            })
            .collect();
        ProcessWorkers { pids, supervisors }
    }

    /// The process id of each worker (`None` while it is being restarted).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.pids.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

fn set(pids: &Mutex<Vec<Option<u32>>>, i: usize, pid: Option<u32>) {
    if let Ok(mut p) = pids.lock()
        && let Some(slot) = p.get_mut(i)
    {
        *slot = pid;
    }
}
