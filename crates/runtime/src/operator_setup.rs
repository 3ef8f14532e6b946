//! Creating one operator subtask: its guest instance, its keyed state (restored from a
//! snapshot, migrated through `migrate-state` when the state version changed), its
//! timers and window operator, opened and ready for its chain.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rivulet_checkpoint::{RestorePoint, SubtaskMeta, UploadedFiles, native_fast_path, restore_into, unique_suffix, write_db_files};
use rivulet_dataflow::{KeyGroupRange, NodeMetrics, OutputEdge, now_ms};
use rivulet_job::{JobGraph, OperatorSpec};
use rivulet_plugin::{Contract, FailureKind, GuestFailure, InstanceSetup, Limits, OperatorInstance, Plugin, PluginEngine};
use rivulet_state::{BackendKind, KeyedStateStore, MemoryBackend, TimerService};

use crate::chain::ChainedOperator;
use crate::error::JobError;
use crate::host_ops::HostOperators;
use crate::options::RunOptions;

/// What creating operator subtasks of one run needs.
pub(crate) struct OperatorSetup<'a> {
    /// The job.
    pub graph: &'a JobGraph,
    /// The engine.
    pub engine: &'a Arc<PluginEngine>,
    /// The run's options.
    pub opts: &'a RunOptions,
    /// The snapshot the run starts from.
    pub point: Option<&'a RestorePoint>,
    /// The run's working directory (RocksDB, staging).
    pub run_dir: &'a Path,
}

/// One subtask to create.
pub(crate) struct SubtaskSpec<'a> {
    /// The operator.
    pub spec: &'a OperatorSpec,
    /// Its plugin.
    pub plugin: Arc<Plugin>,
    /// Subtask index.
    pub subtask: u32,
    /// Parallelism.
    pub parallelism: u32,
}

/// The limits of an operator: the run's, with the spec's overrides.
fn limits_for(spec: &OperatorSpec, defaults: Limits) -> Limits {
    let mut limits = defaults;
    if let Some(l) = &spec.limits {
        if let Some(mb) = l.memory_mb {
            limits.memory_bytes = (mb as usize).saturating_mul(1 << 20);
        }
        if let Some(ms) = l.call_timeout_ms {
            limits.call_timeout = Duration::from_millis(ms);
        }
    }
    limits
}

impl OperatorSetup<'_> {
    fn instance_setup(&self, s: &SubtaskSpec<'_>, state: KeyedStateStore, limits: Limits, log: bool) -> InstanceSetup {
        InstanceSetup {
            uid: s.spec.uid.clone(),
            subtask: s.subtask,
            parallelism: s.parallelism,
            attempt: self.opts.attempt,
            state,
            limits,
            config: s.spec.config.to_string(),
            log: if log { self.opts.control.as_ref().map(|c| c.guest_log.clone()) } else { None },
            input_names: s.spec.inputs.names(),
        }
    }

    /// Create, restore and (if `open`) open one operator subtask. Returns it and whether
    /// it had finished in the restored snapshot.
    pub async fn start(
        &self,
        s: SubtaskSpec<'_>,
        outputs: Vec<OutputEdge>,
        metrics: Arc<NodeMetrics>,
        open: bool,
    ) -> Result<(ChainedOperator, bool), JobError> {
        let uid = &s.spec.uid;
        check_contract(s.spec, &s.plugin)?;
        let state_err = |e| JobError::State { operator: uid.clone(), error: e };
        let range = KeyGroupRange::for_subtask(s.subtask, s.parallelism, self.graph.max_parallelism);
        let restore = match self.point {
            Some(p) => p.operator(uid, s.subtask, s.parallelism)?,
            None => None,
        };
        let db_dir = self.run_dir.join(uid).join(s.subtask.to_string());
        let limits = limits_for(s.spec, self.opts.limits);
        // On restore, the state version decides between carrying state over and migrating
        // it: ask a throwaway instance, before any state exists.
        let state_version = match &restore {
            Some(_) => {
                let probe = KeyedStateStore::new(Box::new(MemoryBackend::default()), self.graph.max_parallelism);
                OperatorInstance::new(self.engine, s.plugin.clone(), self.instance_setup(&s, probe, limits, false)).await?.state_version().await?
            }
            None => 0,
        };
        let fast = restore.as_ref().is_some_and(|r| {
            self.opts.state_backend == BackendKind::Rocksdb
                && native_fast_path(&r.parts, range)
                && r.parts.iter().all(|(p, _)| p.header.state_version == state_version)
        });
        if let (true, Some(r)) = (fast, &restore) {
            write_db_files(&db_dir, &r.parts[0].1)?;
        }
        let backend = self.opts.state_backend.open(&db_dir).map_err(state_err)?;
        let mut store = KeyedStateStore::new(backend, self.graph.max_parallelism);
        let mut timers = TimerService::default();
        let mut host = HostOperators::new(s.spec);
        let (mut watermark, mut migrate, mut finished, mut broadcast) = (i64::MIN, Vec::new(), false, Default::default());
        if let Some(r) = &restore {
            finished = r.finished;
            let mut restored = restore_into(r, range, &mut store, fast, &mut timers, state_version, self.run_dir)?;
            host.restore(&mut restored);
            watermark = restored.watermark;
            migrate = restored.migrate;
            broadcast = restored.broadcast;
        }
        let mut instance = OperatorInstance::new(self.engine, s.plugin.clone(), self.instance_setup(&s, store, limits, true)).await?;
        let state_version = if restore.is_some() { state_version } else { instance.state_version().await? };
        migrate_state(&mut instance, uid, &s.plugin, migrate, state_version).await?;
        *instance.timers() = timers;
        *instance.broadcast() = broadcast;
        if watermark != i64::MIN {
            instance.set_watermark(watermark);
        }
        if !finished && open {
            instance.open().await?;
        }
        let meta = SubtaskMeta {
            uid: uid.clone(),
            plugin: s.plugin.label(),
            plugin_digest: s.plugin.digest.clone(),
            subtask: s.subtask,
            parallelism: s.parallelism,
            max_parallelism: self.graph.max_parallelism,
            range,
            state_version,
            instance: format!("{}-{}-{}", std::process::id(), now_ms(), unique_suffix()),
        };
        let uploaded = if fast { self.reused_files(uid, range) } else { UploadedFiles::default() };
        let staging = self.run_dir.join("staging").join(uid).join(s.subtask.to_string());
        let op = ChainedOperator::new(instance, host, outputs, metrics, meta, staging, uploaded, watermark);
        Ok((op, finished))
    }

    /// Files of the restored checkpoint are already stored: later checkpoints reuse them.
    fn reused_files(&self, uid: &str, range: KeyGroupRange) -> UploadedFiles {
        let uploaded = UploadedFiles::default();
        if let Some(p) = self.point
            && let Some(op) = p.manifest.operators.iter().find(|o| o.uid == uid)
            && let (Some(st), Ok(mut m)) = (op.subtasks.iter().find(|s| s.key_groups == (range.start, range.end)), uploaded.lock())
        {
            for d in st.db.iter().filter(|d| d.file.path.starts_with("shared/")) {
                m.insert(d.name.clone(), (d.clone(), p.manifest.id));
            }
        }
        uploaded
    }
}

/// Refuse a component whose contract lacks what the operator's spec asks of it.
fn check_contract(spec: &OperatorSpec, plugin: &Plugin) -> Result<(), JobError> {
    if plugin.contract >= Contract::V0_3 {
        return Ok(());
    }
    let needs = if spec.inputs.len() > 1 {
        Some("named inputs")
    } else if spec.interval_join.is_some() {
        Some("an interval join")
    } else {
        None
    };
    match needs {
        Some(what) => Err(GuestFailure::new(
            &spec.uid,
            &plugin.label(),
            FailureKind::Instantiate,
            format!("the spec gives it {what}, which needs {} or later; the component targets {}", Contract::V0_3, plugin.contract),
        )
        .into()),
        None => Ok(()),
    }
}

/// Hand entries of an older state version to the guest's `migrate-state` and keep what
/// it returns.
async fn migrate_state(
    instance: &mut OperatorInstance,
    uid: &str,
    plugin: &Plugin,
    migrate: Vec<(u32, Vec<rivulet_state::StateEntry>)>,
    state_version: u32,
) -> Result<(), JobError> {
    for (from, entries) in migrate {
        let count = entries.len();
        let mut migrated = Vec::new();
        for chunk in entries.chunks(1024) {
            migrated.extend(instance.migrate_state(from, chunk.to_vec()).await?);
        }
        instance
            .state()
            .write_entries(migrated, now_ms())
            .map_err(|e| GuestFailure::new(uid, &plugin.label(), FailureKind::GuestError, format!("migrate-state: {e}")))?;
        tracing::info!(operator = %uid, from, to = state_version, entries = count, "state migrated");
    }
    Ok(())
}
