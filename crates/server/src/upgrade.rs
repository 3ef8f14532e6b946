//! The hot swap ([`JobManager::upgrade`]): validate the new components, dry-run their
//! restore (and `migrate-state`) on the job's latest snapshot, stop the job with a
//! savepoint (its sinks commit), start it from that savepoint with the new plugins on
//! *probation*. A failure before the new run's first completed checkpoint rolls back:
//! the old plugins start from the same savepoint. Output written by the failed run was
//! never committed (its part files are discarded on restore), so nothing is lost or
//! duplicated across a swap or a rollback. A rescale is the same with a new parallelism.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rivulet_checkpoint::find_restore_point;
use rivulet_dataflow::{NodeRole, SnapshotFormat};
use rivulet_runtime::{RestoreFrom, RunOptions, committers, dry_run_restore};
use tokio::sync::watch;

use crate::ServerError;
use crate::entry::build_graph;
use crate::manager::JobManager;
use crate::record::{HistoryEvent, HistoryKind, JobRecord, JobStatus, PluginRef, UpgradeOutcome, UpgradeResult, versions};
use crate::runs::Rollback;

/// How long a swap waits for the new version's probation to end.
const PROBATION_WAIT: Duration = Duration::from_secs(300);

/// An upgrade that passed its checks.
struct Checked {
    plugins: BTreeMap<String, PluginRef>,
    changed: Vec<String>,
    parallelism: Option<u32>,
    sinks: Vec<usize>,
    /// The snapshot the dry run restored (none yet: nothing to check).
    snapshot: Option<String>,
}

/// How long a swap or rescale waits for the savepoint that stops the old version.
const SWAP_SAVEPOINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl JobManager {
    /// Swap operator plugins (and/or parallelism) through a savepoint, rolling back on
    /// its own when the new version fails before its first checkpoint.
    pub async fn upgrade(
        self: &Arc<Self>,
        id: &str,
        new_plugins: &BTreeMap<String, String>,
        parallelism: Option<u32>,
    ) -> Result<UpgradeOutcome, ServerError> {
        let record = self.stored_record(id)?;
        let (control, mut ended, op) = self.running(id)?;
        let _op = op.try_lock_owned().map_err(|_| Self::busy(id))?;
        let checked = self.check(&record, new_plugins, parallelism).await?;
        // Stop with a savepoint.
        self.with_job(id, |e| {
            if e.record.status != JobStatus::Running {
                return Err(ServerError::Conflict(format!("job {id} is {}, not running", e.record.status)));
            }
            e.record.status = JobStatus::Upgrading;
            self.persist(&e.record)
        })?;
        let t0 = Instant::now();
        // A stuck guest must not hold the swap forever: the savepoint is given up in time
        // and the job runs on with the old versions. Native: the swap's savepoint is only
        // read by the new versions, and RocksDB state then goes through as files.
        let savepoint = match crate::savepoints::stop_savepoint(&control, SnapshotFormat::Native, SWAP_SAVEPOINT_TIMEOUT).await {
            Ok(loc) => loc,
            Err(reason) => {
                let _ = self.with_job(id, |e| {
                    if e.record.status == JobStatus::Upgrading {
                        e.record.status = JobStatus::Running;
                    }
                    self.persist(&e.record)
                });
                return Err(ServerError::Conflict(format!("could not stop the job with a savepoint: {reason}")));
            }
        };
        let savepoint_ms = t0.elapsed().as_millis() as u64;
        let _ = ended.wait_for(|e| *e).await;
        let stopped_ms = t0.elapsed().as_millis() as u64;
        // Start the new version on probation.
        let from_versions = versions(&record.plugins);
        let (verdict, rolled_back) = watch::channel(None);
        let new_run = self.start_new_version(id, &checked, &savepoint, Arc::new(verdict))?;
        let (result, reason, downtime) = watch_probation(&new_run, rolled_back, &checked.sinks, t0).await;
        // Where a swap's downtime goes: the savepoint, the old run's end, the new run's
        // restore and start until its first output.
        tracing::info!(job = %id, savepoint_ms, stopped_ms, downtime_ms = ?downtime, ?result, "swap phases");
        let versions_now = self.with_job(id, |e| {
            if let Some(h) = e.record.last_change_mut() {
                h.downtime_ms = downtime;
            }
            self.persist(&e.record)?;
            Ok(e.record.versions())
        })?;
        let rollback_reason = reason.map(|r| self.scrub(id, &r));
        Ok(UpgradeOutcome { result, savepoint, from_versions, versions: versions_now, downtime_ms: downtime, rollback_reason, detail: None })
    }

    /// Switch job `id` to the checked versions and start them from `savepoint`; back to
    /// the old ones at once if the new run cannot even start.
    fn start_new_version(
        self: &Arc<Self>,
        id: &str,
        checked: &Checked,
        savepoint: &str,
        verdict: Arc<watch::Sender<Option<String>>>,
    ) -> Result<(Arc<rivulet_runtime::JobControl>, watch::Receiver<bool>), ServerError> {
        self.with_job(id, |e| {
            if e.record.status != JobStatus::Upgrading {
                return Err(ServerError::Conflict(format!("job {id} ended while it was being stopped for the swap ({})", e.record.status)));
            }
            let rollback =
                Rollback { plugins: e.record.plugins.clone(), parallelism: e.record.parallelism, savepoint: savepoint.to_owned(), verdict };
            let from_versions = e.record.versions();
            e.set_version(checked.plugins.clone(), checked.parallelism, &self.registry);
            let kind = if checked.changed.is_empty() { HistoryKind::Rescale } else { HistoryKind::Swap };
            e.record.push(HistoryEvent {
                from_versions: Some(from_versions),
                savepoint: Some(savepoint.to_owned()),
                parallelism: checked.parallelism,
                ..HistoryEvent::new(kind, versions(&checked.plugins))
            });
            if let Err(err) = self.start_run(e, RestoreFrom::Path(savepoint.to_owned()), Some(rollback.clone())) {
                // The new graph cannot even be built: back to the old one.
                e.set_version(rollback.plugins.clone(), rollback.parallelism, &self.registry);
                e.record.push(HistoryEvent {
                    savepoint: Some(savepoint.to_owned()),
                    detail: Some(err.to_string()),
                    ..HistoryEvent::new(HistoryKind::Rollback, e.record.versions())
                });
                if let Err(again) = self.start_run(e, RestoreFrom::Path(savepoint.to_owned()), None) {
                    e.record.status = JobStatus::Failed;
                    e.record.error = Some(format!("the swap failed ({err}) and so did the rollback: {again}"));
                }
                self.persist(&e.record)?;
                return Err(err);
            }
            self.persist(&e.record)?;
            let run = e.run.as_ref().ok_or_else(|| ServerError::Internal("the new run did not start".into()))?;
            Ok((run.control.clone(), run.ended.clone()))
        })
    }

    /// The checks of [`Self::upgrade`] alone: the job is left running.
    pub async fn check_upgrade(
        self: &Arc<Self>,
        id: &str,
        new_plugins: &BTreeMap<String, String>,
        parallelism: Option<u32>,
    ) -> Result<UpgradeOutcome, ServerError> {
        let record = self.stored_record(id)?;
        self.running(id)?;
        let checked = self.check(&record, new_plugins, parallelism).await?;
        let detail = match (&checked.snapshot, checked.changed.is_empty()) {
            (Some(at), false) => format!("the new versions restored the state of {at} through migrate-state"),
            (Some(at), true) => format!("the state of {at} can be redistributed"),
            (None, _) => "the job has no snapshot yet: there is no state to migrate".into(),
        };
        Ok(UpgradeOutcome {
            result: UpgradeResult::DryRunOk,
            savepoint: checked.snapshot.unwrap_or_default(),
            from_versions: versions(&record.plugins),
            versions: versions(&checked.plugins),
            downtime_ms: None,
            rollback_reason: None,
            detail: Some(detail),
        })
    }

    /// Validate an upgrade's new versions (compiled and world-checked at upload) and
    /// dry-run their restore on the latest snapshot.
    async fn check(&self, record: &JobRecord, new_plugins: &BTreeMap<String, String>, parallelism: Option<u32>) -> Result<Checked, ServerError> {
        if new_plugins.is_empty() && parallelism.is_none() {
            return Err(ServerError::BadRequest("nothing to change: give `plugins` (uid → name@version) and/or `parallelism`".into()));
        }
        if parallelism == Some(0) {
            return Err(ServerError::BadRequest("parallelism must be at least 1".into()));
        }
        let mut plugins = record.plugins.clone();
        let mut changed = Vec::new();
        for (uid, reference) in new_plugins {
            if !plugins.contains_key(uid) {
                return Err(ServerError::BadRequest(format!("the job has no operator with uid '{uid}'")));
            }
            let meta = self.registry.resolve(reference)?;
            plugins.insert(uid.clone(), PluginRef { name: meta.name, version: meta.version, digest: meta.digest });
            changed.push(uid.clone());
        }
        let parallelism = parallelism.or(record.parallelism);
        let spec = crate::entry::parse_spec(record)?;
        let graph = build_graph(&self.registry, &spec, &plugins, parallelism, self.defaults.access.files_dir())?;
        self.check_guest_memory(&self.lock(), crate::manager::guest_memory_mb(&graph), Some(&record.id))?;
        let storage = self.storage(&spec, &record.id)?;
        let opts = RunOptions::new(record.state_backend, self.data_dir.join("state").join(&record.id));
        let latest = find_restore_point(&storage, &graph.name, &committers(&graph, &opts)).await.map_err(|e| ServerError::Internal(e.to_string()))?;
        if let Some(point) = &latest {
            dry_run_restore(&graph, self.registry.engine(), &point.location, &changed)
                .await
                .map_err(|e| ServerError::Unprocessable(format!("dry run of the new version on {} failed: {e}", point.location)))?;
        }
        let sinks = graph.nodes_with(NodeRole::Sink).collect();
        Ok(Checked { plugins, changed, parallelism, sinks, snapshot: latest.map(|p| p.location) })
    }
}

/// Watch a new version on probation: its first checkpoint (or the end of its input)
/// confirms the swap; the verdict says it was rolled back. Returns the result, the
/// rollback's reason, and the downtime: from `t0` (the stop request) to the first
/// record at a sink of the new run (or to its confirmation when none came).
async fn watch_probation(
    (control, ended): &(Arc<rivulet_runtime::JobControl>, watch::Receiver<bool>),
    rolled_back: watch::Receiver<Option<String>>,
    sinks: &[usize],
    t0: Instant,
) -> (UpgradeResult, Option<String>, Option<u64>) {
    let mut downtime = None;
    let deadline = Instant::now() + PROBATION_WAIT;
    let (result, reason) = loop {
        let live = control.live();
        if downtime.is_none() && sinks.iter().any(|&i| live.metrics.get(i).is_some_and(|m| m.records_in.load(Ordering::Relaxed) > 0)) {
            downtime = Some(t0.elapsed().as_millis() as u64);
        }
        if let Some(reason) = rolled_back.borrow().clone() {
            break (UpgradeResult::RolledBack, Some(reason));
        }
        if !live.snapshots.is_empty() || *ended.borrow() {
            break (UpgradeResult::Swapped, None);
        }
        if Instant::now() > deadline {
            // Still on probation (no checkpoint yet): it may yet roll back.
            break (UpgradeResult::Pending, None);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let downtime = downtime.or_else(|| (result == UpgradeResult::Swapped).then(|| t0.elapsed().as_millis() as u64));
    (result, reason, downtime)
}
