//! How to run a job: [`RunOptions`], where it starts from, and its checkpoint settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rivulet_checkpoint::{CheckpointConfig, CheckpointStorage};
use rivulet_job::CheckpointSpec;
use rivulet_plugin::Limits;
use rivulet_state::BackendKind;

use crate::control::JobControl;
use crate::hosts::TaskHosts;

/// Where a run starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RestoreFrom {
    /// Fresh.
    #[default]
    Nothing,
    /// The newest complete checkpoint or savepoint under the checkpoint location (fresh
    /// when there is none).
    Latest,
    /// A given checkpoint or savepoint directory.
    Path(String),
}

/// How to run a job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// State backend for every operator.
    pub state_backend: BackendKind,
    /// Where RocksDB keeps its files and sinks their spools (a fresh directory per run below it).
    pub data_dir: PathBuf,
    /// Print progress on stderr every couple of seconds.
    pub progress: bool,
    /// Default limits for guests (operators may override in the spec).
    pub limits: Limits,
    /// Checkpointing (`None`: none; sinks commit at end of input).
    pub checkpoint: Option<CheckpointConfig>,
    /// Where to start from.
    pub restore: RestoreFrom,
    /// Drop state of operators (and pending output of sinks) the job no longer has
    /// instead of failing.
    pub allow_non_restored_state: bool,
    /// Restarts so far (guests see it as `attempt-number`).
    pub attempt: u32,
    /// Stop with a savepoint once the sources have emitted this many records.
    pub stop_with_savepoint_after_records: Option<u64>,
    /// A savepoint is taken whenever this file appears (it is then removed).
    pub savepoint_trigger_file: Option<PathBuf>,
    /// Take a savepoint on SIGUSR1.
    pub savepoint_on_signal: bool,
    /// A controller's handle (savepoints, stop, cancel, live counters).
    pub control: Option<Arc<JobControl>>,
    /// A failure before the run's first completed snapshot is returned at once instead
    /// of restarting (a hot swap on probation rolls back instead).
    pub probation: bool,
    /// Where the tasks run: `None` in this process; otherwise on these hosts (workers).
    pub hosts: Option<Arc<dyn TaskHosts>>,
    /// The job's id where a server names its jobs (hosts keep workers per job); `None`:
    /// the job graph's name.
    pub job_id: Option<String>,
}

impl RunOptions {
    /// Defaults: memory backend, no checkpoints, fresh start.
    pub fn new(state_backend: BackendKind, data_dir: PathBuf) -> Self {
        RunOptions {
            state_backend,
            data_dir,
            progress: false,
            limits: Limits::default(),
            checkpoint: None,
            restore: RestoreFrom::Nothing,
            allow_non_restored_state: false,
            attempt: 0,
            stop_with_savepoint_after_records: None,
            savepoint_trigger_file: None,
            savepoint_on_signal: false,
            control: None,
            probation: false,
            hosts: None,
            job_id: None,
        }
    }
}

/// Checkpoint settings given outside the spec (command-line flags); each wins over the
/// spec's `checkpoint:` section.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOverrides {
    /// Interval between checkpoints.
    pub interval: Option<Duration>,
    /// Abort a checkpoint not complete after this long.
    pub timeout: Option<Duration>,
    /// Complete checkpoints kept.
    pub retain: Option<usize>,
    /// Consecutive failures tolerated.
    pub tolerable_failures: Option<u32>,
    /// Upload whole RocksDB state every time instead of new SST files only.
    pub full: bool,
}

/// A job's checkpoint settings at `storage`: the overrides, else the spec's section, else
/// `default_interval` for the interval and the protocol's defaults for the rest.
pub fn checkpoint_config(
    storage: CheckpointStorage,
    spec: Option<&CheckpointSpec>,
    overrides: &CheckpointOverrides,
    default_interval: Option<Duration>,
) -> CheckpointConfig {
    let spec = spec.cloned().unwrap_or_default();
    let mut c = CheckpointConfig::new(storage);
    c.interval = overrides.interval.or(spec.interval_ms.map(Duration::from_millis)).or(default_interval);
    if let Some(t) = overrides.timeout.or(spec.timeout_ms.map(Duration::from_millis)) {
        c.timeout = t;
    }
    if let Some(r) = overrides.retain.or(spec.retain) {
        c.retain = r.max(1);
    }
    if let Some(t) = overrides.tolerable_failures.or(spec.tolerable_failures) {
        c.tolerable_failures = t;
    }
    c.incremental = !overrides.full && spec.incremental.unwrap_or(true);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_spec_which_wins_over_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = CheckpointStorage::open(dir.path().to_str().expect("utf8")).expect("storage");
        let spec = CheckpointSpec { interval_ms: Some(500), retain: Some(0), incremental: Some(true), ..CheckpointSpec::default() };
        let c = checkpoint_config(storage.clone(), Some(&spec), &CheckpointOverrides::default(), Some(Duration::from_secs(1)));
        assert_eq!(c.interval, Some(Duration::from_millis(500)));
        assert_eq!(c.retain, 1, "at least one checkpoint is kept");
        assert!(c.incremental);
        let flags = CheckpointOverrides { interval: Some(Duration::from_millis(50)), full: true, ..CheckpointOverrides::default() };
        let c = checkpoint_config(storage.clone(), Some(&spec), &flags, None);
        assert_eq!(c.interval, Some(Duration::from_millis(50)));
        assert!(!c.incremental);
        let c = checkpoint_config(storage, None, &CheckpointOverrides::default(), Some(Duration::from_secs(1)));
        assert_eq!((c.interval, c.retain, c.tolerable_failures), (Some(Duration::from_secs(1)), 3, 3));
    }
}
