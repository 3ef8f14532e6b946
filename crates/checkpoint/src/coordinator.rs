//! The checkpoint coordinator: triggers barriers at the sources, collects acks, writes
//! the manifest last, commits sinks, keeps N checkpoints and deletes what no retained
//! checkpoint references.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use rivulet_dataflow::{Barrier, NodeRole, SnapshotFormat, now_ms};

use crate::commit::Committers;
use crate::locate::{complete_snapshots, load_manifest};
use crate::manifest::{FORMAT, MANIFEST, Manifest, OperatorEntry, SnapshotKind, VERSION};
use crate::report::{Ledger, OperatorPart, SnapshotPart, TaskKey, TaskReport};
use crate::{CheckpointConfig, CheckpointError, failpoint, snapshot_dir};

/// A snapshot in progress.
#[derive(Debug)]
struct Pending {
    barrier: Barrier,
    started: Instant,
    acks: BTreeMap<TaskKey, SnapshotPart>,
    /// When the last sink acknowledged the barrier, from the trigger.
    sinks_reached: Option<std::time::Duration>,
}

/// What finishing a snapshot produced.
#[derive(Debug, Clone)]
pub struct CoordinatorOutcome {
    /// Its id.
    pub id: u64,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Where it is.
    pub location: String,
    /// The job stops after it.
    pub stop: bool,
    /// Bytes written for it (new files only).
    pub bytes: u64,
    /// Bytes of every file it consists of (shared files of earlier checkpoints included).
    pub total_bytes: u64,
    /// Time from trigger to completion.
    pub duration_ms: u64,
    /// Time from the trigger until the barrier had passed every sink: it travels behind
    /// every record already in the channels, so this is the pipeline's end-to-end
    /// latency (Flink's latency markers measure the same way). None when no sink took
    /// part (all finished).
    pub latency_ms: Option<u64>,
    /// Completed at, ms since the epoch.
    pub completed_ms: i64,
}

/// Coordinates the snapshots of one job run.
pub struct Coordinator {
    cfg: CheckpointConfig,
    job: String,
    max_parallelism: u16,
    sources: Vec<mpsc::UnboundedSender<Barrier>>,
    expected: BTreeSet<TaskKey>,
    finished: BTreeMap<TaskKey, (SnapshotPart, u64)>,
    pending: Option<Pending>,
    next_id: u64,
    consecutive_failures: u32,
    ledger: Arc<Ledger>,
    committers: Committers,
    retained: Vec<Manifest>,
    /// Completed snapshots of this run, in order.
    pub completed: Vec<CoordinatorOutcome>,
    /// Failed snapshot attempts of this run: (id, reason).
    pub failures: Vec<(u64, String)>,
}

impl Coordinator {
    /// A coordinator for a job whose tasks are `expected`, continuing ids after anything
    /// already under the root, cleaning up incomplete snapshots left by a crash. Each
    /// completed snapshot's sink transactions go to `committers`.
    pub async fn start(
        cfg: CheckpointConfig,
        job: &str,
        max_parallelism: u16,
        sources: Vec<mpsc::UnboundedSender<Barrier>>,
        expected: BTreeSet<TaskKey>,
        ledger: Arc<Ledger>,
        committers: Committers,
    ) -> Result<Coordinator, CheckpointError> {
        let root = &cfg.storage;
        let mut max_id = 0;
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        for (p, _) in root.list("").await? {
            let mut parts = p.split('/');
            let first = parts.next().unwrap_or_default();
            let dir = if first == "savepoints" { format!("savepoints/{}", parts.next().unwrap_or_default()) } else { first.to_owned() };
            let name = dir.rsplit('/').next().unwrap_or_default();
            if let Some(id) = name.strip_prefix("chk-").or_else(|| name.strip_prefix("sp-")).and_then(|n| n.parse::<u64>().ok()) {
                max_id = max_id.max(id);
                dirs.insert(dir);
            }
        }
        let complete: HashSet<String> = complete_snapshots(root).await?.into_iter().map(|(_, d)| d).collect();
        let mut retained = Vec::new();
        for dir in &dirs {
            if !complete.contains(dir) {
                // A crash between upload and manifest: never complete, never used.
                tracing::info!(dir = %dir, "deleting an incomplete snapshot");
                let _ = root.delete_prefix(dir).await;
            } else if dir.starts_with("chk-") {
                match load_manifest(root, dir).await {
                    Ok(m) => retained.push(m),
                    Err(e) => {
                        tracing::warn!(dir = %dir, error = %e, "unreadable manifest kept aside")
                    }
                }
            }
        }
        retained.sort_by_key(|m| m.id);
        for m in &retained {
            ledger.complete(m.id);
        }
        let mut c = Coordinator {
            cfg,
            job: job.to_owned(),
            max_parallelism,
            sources,
            expected,
            finished: BTreeMap::new(),
            pending: None,
            next_id: max_id + 1,
            consecutive_failures: 0,
            ledger,
            committers,
            retained,
            completed: Vec::new(),
            failures: Vec::new(),
        };
        c.collect_garbage().await;
        Ok(c)
    }

    /// Whether a snapshot is in progress.
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether every task has finished.
    pub fn all_finished(&self) -> bool {
        self.expected.iter().all(|k| self.finished.contains_key(k))
    }

    /// Start a snapshot (a savepoint in the canonical format); `None` if one is already
    /// running.
    pub fn trigger(&mut self, kind: SnapshotKind, stop: bool) -> Option<u64> {
        self.begin(kind, SnapshotFormat::Canonical, stop)
    }

    /// Start a savepoint in `format`; `None` if a snapshot is already running.
    pub fn trigger_savepoint(&mut self, format: SnapshotFormat, stop: bool) -> Option<u64> {
        self.begin(SnapshotKind::Savepoint, format, stop)
    }

    fn begin(&mut self, kind: SnapshotKind, format: SnapshotFormat, stop: bool) -> Option<u64> {
        if self.pending.is_some() || self.all_finished() {
            return None;
        }
        let format = if kind == SnapshotKind::Savepoint { format } else { SnapshotFormat::Canonical };
        let barrier = Barrier { id: self.next_id, kind, stop, format };
        self.next_id += 1;
        tracing::debug!(id = barrier.id, ?kind, "triggering snapshot");
        for s in &self.sources {
            // A finished source is gone: its final part stands in.
            let _ = s.send(barrier);
        }
        self.pending = Some(Pending { barrier, started: Instant::now(), acks: BTreeMap::new(), sinks_reached: None });
        Some(barrier.id)
    }

    /// Handle a task's report; returns a completed snapshot, if this completed one.
    pub async fn on_report(&mut self, report: TaskReport) -> Result<Option<CoordinatorOutcome>, CheckpointError> {
        match report {
            TaskReport::Ack { id, part } => {
                if let Some(p) = self.pending.as_mut().filter(|p| p.barrier.id == id) {
                    if part.task().role == NodeRole::Sink {
                        p.sinks_reached = Some(p.started.elapsed());
                    }
                    p.acks.insert(part.task(), part);
                }
            }
            TaskReport::Finished { part, after } => {
                self.finished.insert(part.task(), (part, after));
            }
            TaskReport::Decline { id, task, reason } => {
                if self.pending.as_ref().is_some_and(|p| p.barrier.id == id) {
                    self.abort(format!("task {task}: {reason}")).await?;
                }
                return Ok(None);
            }
        }
        self.try_complete().await
    }

    /// Abort the pending snapshot if it ran past the timeout.
    pub async fn check_timeout(&mut self) -> Result<(), CheckpointError> {
        if let Some(p) = &self.pending
            && p.started.elapsed() > self.cfg.timeout
        {
            let missing: Vec<String> =
                self.expected.iter().filter(|k| !p.acks.contains_key(k) && !self.finished_before(k, p.barrier.id)).map(TaskKey::to_string).collect();
            self.abort(format!("timed out after {} ms waiting for {}", self.cfg.timeout.as_millis(), missing.join(", "))).await?;
        }
        Ok(())
    }

    /// Give up the savepoint in progress, if one is, with `reason` (its failure is the
    /// job's, as on a timeout); a checkpoint in progress goes on.
    pub async fn abort_savepoint(&mut self, reason: String) -> Result<(), CheckpointError> {
        if self.pending.as_ref().is_some_and(|p| p.barrier.kind == SnapshotKind::Savepoint) {
            return self.abort(reason).await;
        }
        Ok(())
    }

    /// The failure count went past the tolerance: the job must fail.
    fn tolerance_error(&self, reason: &str) -> CheckpointError {
        CheckpointError::Storage {
            path: self.cfg.storage.url.clone(),
            message: format!(
                "{} consecutive checkpoints failed (tolerable: {}); last: {reason}",
                self.consecutive_failures, self.cfg.tolerable_failures
            ),
        }
    }

    async fn abort(&mut self, reason: String) -> Result<(), CheckpointError> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        tracing::warn!(id = p.barrier.id, %reason, "snapshot aborted");
        eprintln!("[rivulet] checkpoint {} aborted: {reason}", p.barrier.id);
        self.failures.push((p.barrier.id, reason.clone()));
        // Best effort: if the store is down this fails, and the next cleanup gets it.
        let _ = self.cfg.storage.delete_prefix(&snapshot_dir(p.barrier.kind, p.barrier.id)).await;
        if p.barrier.kind == SnapshotKind::Savepoint {
            return Err(CheckpointError::Storage {
                path: self.cfg.storage.url.clone(),
                message: format!("savepoint {} failed: {reason}", p.barrier.id),
            });
        }
        self.consecutive_failures += 1;
        if self.consecutive_failures > self.cfg.tolerable_failures {
            return Err(self.tolerance_error(&reason));
        }
        Ok(())
    }

    /// Whether task `k` finished before barrier `id` could reach it (so its final part
    /// stands for it). A task that processed the barrier and then finished must ack.
    fn finished_before(&self, k: &TaskKey, id: u64) -> bool {
        self.finished.get(k).is_some_and(|(_, after)| *after < id)
    }

    fn finished_parts(&self) -> BTreeMap<TaskKey, SnapshotPart> {
        self.finished.iter().map(|(k, (p, _))| (k.clone(), p.clone())).collect()
    }

    async fn try_complete(&mut self) -> Result<Option<CoordinatorOutcome>, CheckpointError> {
        let Some(p) = &self.pending else {
            return Ok(None);
        };
        let id = p.barrier.id;
        // Cheap bound first: the full check walks every task, and doing that on every
        // report made a checkpoint's cost quadratic in the number of subtasks.
        if p.acks.len() + self.finished.len() < self.expected.len() {
            return Ok(None);
        }
        if !self.expected.iter().all(|k| p.acks.contains_key(k) || self.finished_before(k, id)) {
            return Ok(None);
        }
        if p.started.elapsed() > self.cfg.timeout {
            // Complete, but past its deadline: expired, as if the timeout timer had fired.
            let late = p.started.elapsed().as_millis();
            self.abort(format!("timed out: complete after {late} ms, over the {} ms limit", self.cfg.timeout.as_millis())).await?;
            return Ok(None);
        }
        let Some(p) = self.pending.take() else {
            return Ok(None);
        };
        let mut parts: BTreeMap<TaskKey, SnapshotPart> =
            self.finished.iter().filter(|(_, (_, after))| *after < id).map(|(k, (part, _))| (k.clone(), part.clone())).collect();
        let all_finished = self.expected.iter().all(|k| self.finished.contains_key(k));
        for (k, v) in p.acks {
            parts.insert(k, v);
        }
        let all_finished = all_finished && parts.values().all(SnapshotPart::is_finished);
        self.write(p.barrier, parts, all_finished && p.barrier.kind == SnapshotKind::Checkpoint, p.started, p.sinks_reached).await
    }

    /// Every task has finished: write the final checkpoint (marked finished) so that a
    /// restart after this point commits the sinks and ends, then commit.
    pub async fn finish(&mut self) -> Result<CoordinatorOutcome, CheckpointError> {
        self.pending = None;
        if let Some(last) = self.completed.last().filter(|_| self.retained.last().is_some_and(|m| m.finished)) {
            // A checkpoint taken after every task finished already is the final one.
            return Ok(last.clone());
        }
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            let barrier = Barrier { id: self.next_id, kind: SnapshotKind::Checkpoint, stop: false, format: SnapshotFormat::Canonical };
            self.next_id += 1;
            let parts = self.finished_parts();
            if let Some(done) = self.write(barrier, parts, true, Instant::now(), None).await? {
                return Ok(done);
            }
            // The store is failing: the output cannot be committed until it is back.
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_secs(5));
        }
    }

    /// Write the manifest (making the snapshot complete), commit, retain, clean up.
    /// `None` when the manifest could not be written (the snapshot is aborted).
    async fn write(
        &mut self,
        barrier: Barrier,
        parts: BTreeMap<TaskKey, SnapshotPart>,
        finished: bool,
        started: Instant,
        sinks_reached: Option<std::time::Duration>,
    ) -> Result<Option<CoordinatorOutcome>, CheckpointError> {
        let mut operators: BTreeMap<String, OperatorEntry> = BTreeMap::new();
        let mut sources = Vec::new();
        let mut sinks = Vec::new();
        for part in parts.into_values() {
            match part {
                SnapshotPart::Operator(OperatorPart { uid, plugin, plugin_digest, parallelism, state_version, state }) => {
                    operators
                        .entry(uid.clone())
                        .or_insert_with(|| OperatorEntry { uid, plugin, plugin_digest, parallelism, state_version, subtasks: Vec::new() })
                        .subtasks
                        .push(state);
                }
                SnapshotPart::Source(s) => sources.push(s),
                SnapshotPart::Sink(s) => sinks.push(s),
            }
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            kind: barrier.kind,
            id: barrier.id,
            job: self.job.clone(),
            created_ms: now_ms(),
            finished,
            max_parallelism: self.max_parallelism,
            operators: operators.into_values().collect(),
            sources,
            sinks,
        };
        let dir = snapshot_dir(barrier.kind, barrier.id);
        let earlier: HashSet<&str> = self.retained.iter().flat_map(|m| m.files()).map(|f| f.path.as_str()).collect();
        let new_bytes: u64 = manifest.files().filter(|f| f.path.starts_with(&dir) || !earlier.contains(f.path.as_str())).map(|f| f.size).sum();
        let total_bytes: u64 = manifest.files().map(|f| f.size).sum();
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| CheckpointError::Local(e.to_string()))?;
        failpoint::hit("before-manifest");
        let written = self.cfg.storage.put_new(&format!("{dir}/{MANIFEST}"), Bytes::from(json)).await;
        if let Err(e @ CheckpointError::AlreadyWritten(_)) = written {
            // Fenced out: the snapshot and its files are the other coordinator's; touch
            // nothing and fail this run.
            return Err(e);
        }
        if let Err(e) = written {
            // Not complete: the manifest is what makes it so.
            self.pending = Some(Pending { barrier, started, acks: BTreeMap::new(), sinks_reached: None });
            self.abort(e.to_string()).await?;
            return Ok(None);
        }
        self.ledger.complete(barrier.id);
        self.consecutive_failures = 0;
        failpoint::hit("before-commit");
        let committed = self.committers.commit_all(&manifest.sinks)?;
        tracing::info!(id = barrier.id, kind = ?barrier.kind, committed, "snapshot complete");
        let outcome = CoordinatorOutcome {
            id: barrier.id,
            kind: barrier.kind,
            location: self.cfg.storage.url_of(&dir),
            stop: barrier.stop,
            bytes: new_bytes,
            total_bytes,
            duration_ms: started.elapsed().as_millis() as u64,
            latency_ms: sinks_reached.map(|d| d.as_millis() as u64),
            completed_ms: now_ms(),
        };
        if barrier.kind == SnapshotKind::Checkpoint {
            self.retained.push(manifest);
            while self.retained.len() > self.cfg.retain.max(1) {
                let old = self.retained.remove(0);
                let _ = self.cfg.storage.delete_prefix(&snapshot_dir(SnapshotKind::Checkpoint, old.id)).await;
            }
            self.collect_garbage().await;
        }
        self.completed.push(outcome.clone());
        failpoint::hit("after-checkpoint");
        Ok(Some(outcome))
    }

    /// Delete shared files no retained checkpoint references, and snapshot directories
    /// without a manifest (aborted or crashed) other than the one in progress.
    async fn collect_garbage(&mut self) {
        let root = &self.cfg.storage;
        let referenced: HashSet<&str> = self.retained.iter().flat_map(|m| m.files()).map(|f| f.path.as_str()).collect();
        let in_progress = self.pending.as_ref().map(|p| snapshot_dir(p.barrier.kind, p.barrier.id));
        let Ok(all) = root.list("").await else { return };
        let retained_dirs: HashSet<String> = self.retained.iter().map(|m| snapshot_dir(SnapshotKind::Checkpoint, m.id)).collect();
        let mut deleted = 0;
        for (p, _) in all {
            let orphan = if p.starts_with("shared/") {
                !referenced.contains(p.as_str())
            } else if p.starts_with("chk-") {
                let dir = p.split('/').next().unwrap_or_default().to_owned();
                !retained_dirs.contains(&dir) && in_progress.as_deref() != Some(dir.as_str())
            } else {
                false
            };
            if orphan && root.delete(&p).await.is_ok() {
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::debug!(deleted, "deleted files no retained checkpoint references");
        }
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
