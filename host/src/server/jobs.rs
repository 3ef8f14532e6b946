//! Jobs in server mode: submission, the background run of each job, savepoints, stop,
//! rescale and the hot swap of operator code with automatic rollback.
//!
//! Every change to a job is written to `jobs/<id>.json` before it is answered, so a
//! restarted server knows each job's plugins, status and history, and resumes running
//! jobs from their latest checkpoint.
//!
//! A hot swap ([`JobManager::upgrade`]): validate the new components, dry-run their
//! restore (and `migrate-state`) on the job's latest snapshot, stop the job with a
//! savepoint (its sinks commit), start it from that savepoint with the new plugins on
//! *probation*. A failure before the new run's first completed checkpoint rolls back:
//! the old plugins start from the same savepoint. Output written by the failed run was
//! never committed (its part files are discarded on restore), so nothing is lost or
//! duplicated across a swap or a rollback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::registry::PluginRegistry;
use super::{ServerError, store};
use crate::checkpoint::{CheckpointConfig, CheckpointStorage, complete_snapshots, find_restore_point};
use crate::job::{JobGraph, JobSpec, NodeKind, RestartSpec};
use crate::runtime::{JobControl, RestoreFrom, RunOptions, dry_run_restore, now_ms, run_job_with_restarts};
use crate::state::BackendKind;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Running (or restarting after a failure).
    Running,
    /// Being stopped with a savepoint for a swap or rescale.
    Upgrading,
    /// Its bounded input is done and its output committed.
    Finished,
    /// Stopped with a savepoint.
    Stopped,
    /// Stopped without a savepoint.
    Cancelled,
    /// Failed beyond its restart strategy.
    Failed,
}

impl JobStatus {
    /// Whether the job still runs (or will, after a server restart).
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Upgrading)
    }
}

/// The plugin version an operator runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginRef {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `sha256:` digest.
    pub digest: String,
}

impl PluginRef {
    fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// One entry of a job's history.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// `submitted`, `started`, `resumed`, `swap`, `rollback`, `rescale`, `savepoint`,
    /// `stopped`, `cancelled`, `finished`, `failed`.
    pub kind: String,
    /// Plugin versions per operator uid after the event.
    pub versions: BTreeMap<String, String>,
    /// Versions before a swap or rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_versions: Option<BTreeMap<String, String>>,
    /// The savepoint involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<String>,
    /// For a swap: from the stop request to the first output of the new version (or to
    /// its start when no output followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// Parallelism override after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Details (a failure's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HistoryEvent {
    /// An event of `kind` now, with the plugin versions after it and nothing else set.
    pub fn new(kind: &str, versions: BTreeMap<String, String>) -> Self {
        HistoryEvent {
            at_ms: now_ms(),
            kind: kind.into(),
            versions,
            from_versions: None,
            savepoint: None,
            downtime_ms: None,
            parallelism: None,
            detail: None,
        }
    }
}

/// A failure of a task, as kept for `GET /v1/jobs/{id}/exceptions`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExceptionInfo {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Attempt of the run it ended.
    pub attempt: u32,
    /// Operator (or connector) it is attributed to.
    pub operator: Option<String>,
    /// Plugin label.
    pub plugin: Option<String>,
    /// Why (a trap's message and the guest's stack, a guest error…).
    pub reason: String,
}

/// A savepoint asked for through the API.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavepointInfo {
    /// Trigger id.
    pub trigger: String,
    /// The job.
    pub job: String,
    /// `in_progress`, `completed` or `failed`.
    pub status: String,
    /// Where it is, once complete.
    pub location: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Requested at, ms since the epoch.
    pub requested_ms: i64,
    /// The job stopped after it.
    pub stop: bool,
}

/// Everything the server keeps about a job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// Id.
    pub id: String,
    /// The spec's name.
    pub name: String,
    /// The spec as submitted (plugins referenced as `name@version` or digest).
    #[schema(value_type = Value)]
    pub spec: serde_json::Value,
    /// The plugin version each operator runs now.
    pub plugins: BTreeMap<String, PluginRef>,
    /// Parallelism override.
    pub parallelism: Option<u32>,
    /// State backend.
    #[schema(value_type = String)]
    pub state_backend: BackendKind,
    /// Status.
    pub status: JobStatus,
    /// Submitted at, ms since the epoch.
    pub created_ms: i64,
    /// The savepoint the job was first started from.
    pub initial_savepoint: Option<String>,
    /// Drop state of operators the job does not have.
    pub allow_non_restored_state: bool,
    /// What happened to the job.
    pub history: Vec<HistoryEvent>,
    /// Task failures.
    pub exceptions: Vec<ExceptionInfo>,
    /// Savepoints asked for through the API.
    pub savepoints: Vec<SavepointInfo>,
    /// Why the job failed.
    pub error: Option<String>,
}

/// A submission.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The spec.
    pub spec: JobSpec,
    /// Start from this savepoint.
    pub savepoint: Option<String>,
    /// Drop unmatched operator state.
    pub allow_non_restored_state: bool,
    /// Parallelism override.
    pub parallelism: Option<u32>,
    /// State backend (default: the spec's, else the server's).
    pub state_backend: Option<BackendKind>,
}

/// What a swap did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpgradeOutcome {
    /// `swapped`, `rolled_back`, `pending` (still on probation after 5 minutes: no
    /// checkpoint of the new version yet, so it may still roll back), or `dry_run_ok`
    /// (only checked: nothing changed).
    pub result: String,
    /// The savepoint both versions start from.
    pub savepoint: String,
    /// Versions before.
    pub from_versions: BTreeMap<String, String>,
    /// Versions running now.
    pub versions: BTreeMap<String, String>,
    /// Stop request to first output of the new version.
    pub downtime_ms: Option<u64>,
    /// Why the new version was rolled back.
    pub rollback_reason: Option<String>,
    /// What a dry run checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Server-wide defaults for jobs.
#[derive(Debug, Clone)]
pub struct JobDefaults {
    /// Checkpoint interval when the spec sets none.
    pub checkpoint_interval: Duration,
    /// State backend when neither the submission nor the spec sets one.
    pub state_backend: BackendKind,
}

struct RunHandle {
    control: Arc<JobControl>,
    ended: watch::Receiver<bool>,
    /// The run has ended and its failures are in the record's exceptions.
    finished: bool,
    started: Instant,
}

struct JobEntry {
    record: JobRecord,
    run: Option<RunHandle>,
    log: Arc<crate::plugin::GuestLog>,
    /// Held by a stop, upgrade or rescale: one at a time per job.
    op: Arc<tokio::sync::Mutex<()>>,
}

impl JobEntry {
    fn new(record: JobRecord) -> Self {
        JobEntry { record, run: None, log: Default::default(), op: Default::default() }
    }

    /// Recorded exceptions plus those of the run in progress.
    fn exceptions(&self) -> Vec<ExceptionInfo> {
        let mut all = self.record.exceptions.clone();
        if let Some(r) = self.run.as_ref().filter(|r| !r.finished) {
            all.extend(r.control.live().failures.iter().map(exception));
        }
        all
    }
}

fn exception(f: &crate::error::FailureRecord) -> ExceptionInfo {
    ExceptionInfo { at_ms: f.at_ms, attempt: f.attempt, operator: f.operator.clone(), plugin: f.plugin.clone(), reason: f.reason.clone() }
}

/// An upgrade that passed its checks.
struct Checked {
    plugins: BTreeMap<String, PluginRef>,
    changed: Vec<String>,
    parallelism: Option<u32>,
    graph: JobGraph,
    /// The snapshot the dry run restored (none yet: nothing to check).
    snapshot: Option<String>,
}

/// What a rolled-back swap returns to.
#[derive(Debug, Clone)]
struct Rollback {
    plugins: BTreeMap<String, PluginRef>,
    parallelism: Option<u32>,
    savepoint: String,
}

/// The jobs of one server.
pub struct JobManager {
    data_dir: PathBuf,
    registry: Arc<PluginRegistry>,
    defaults: JobDefaults,
    jobs: Mutex<BTreeMap<String, JobEntry>>,
}

/// A live view of one operator or connector node.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeStatus {
    /// Node id (an operator's uid).
    pub id: String,
    /// `source`, `operator` or `sink`.
    pub kind: String,
    /// Parallelism.
    pub parallelism: u32,
    /// Plugin version (operators).
    pub plugin: Option<String>,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Late records sent to the side output.
    pub late_records: u64,
    /// Undecodable records a source sent to its `dead-letter` output.
    pub dead_letter_records: u64,
    /// Current watermark (absent before the first).
    pub watermark: Option<i64>,
    /// Share of the run's time spent waiting on full downstream channels (0–1).
    pub backpressure: f64,
    /// Milliseconds spent in guest calls.
    pub guest_ms: u64,
    /// Largest linear memory of an instance.
    pub memory_bytes: u64,
}

/// An edge of a job's graph.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EdgeStatus {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
    /// `forward`, `hash` or `rebalance`.
    pub partitioning: String,
    /// The side output it carries (absent for the main output).
    pub tag: Option<String>,
}

/// A checkpoint or savepoint completed by the current server process.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotStat {
    /// Id.
    pub id: u64,
    /// `checkpoint` or `savepoint`.
    pub kind: String,
    /// Where.
    pub location: String,
    /// Bytes written for it (an incremental checkpoint's new files).
    pub bytes: u64,
    /// Bytes of all files it consists of (shared files of earlier checkpoints included).
    pub total_bytes: u64,
    /// Trigger to completion.
    pub duration_ms: u64,
    /// Trigger until the barrier had passed every sink: the pipeline's end-to-end
    /// latency (the barrier travels behind every record in flight).
    pub latency_ms: Option<u64>,
    /// Completed at, ms since the epoch.
    pub at_ms: i64,
}

/// `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobDetail {
    /// The stored record.
    #[serde(flatten)]
    pub record: JobRecord,
    /// Attempt of the current run.
    pub attempt: u32,
    /// Seconds since the current run started.
    pub uptime_s: f64,
    /// Operators and connectors, sources first (topological order).
    pub nodes: Vec<NodeStatus>,
    /// How records flow between them.
    pub edges: Vec<EdgeStatus>,
    /// The latest snapshot completed since the run started.
    pub last_checkpoint: Option<SnapshotStat>,
}

/// `GET /v1/jobs/{id}/checkpoints`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointsView {
    /// Complete snapshots in storage, newest first: (id, directory).
    pub retained: Vec<RetainedSnapshot>,
    /// Snapshots completed by this server process, with sizes and durations.
    pub completed: Vec<SnapshotStat>,
    /// Failed snapshot attempts: id and reason.
    pub failed: Vec<FailedSnapshot>,
}

/// A snapshot present in storage.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetainedSnapshot {
    /// Id.
    pub id: u64,
    /// Location.
    pub location: String,
}

/// A failed snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailedSnapshot {
    /// Id.
    pub id: u64,
    /// Why.
    pub reason: String,
}

fn versions(p: &BTreeMap<String, PluginRef>) -> BTreeMap<String, String> {
    p.iter().map(|(k, v)| (k.clone(), v.label())).collect()
}

/// A fresh 16-hex-digit id (time, process and a counter, hashed).
fn new_id() -> String {
    use sha2::Digest as _;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..8])
}

impl JobManager {
    /// Open the job store below `data_dir` and resume every job that was running.
    pub async fn open(data_dir: &Path, registry: Arc<PluginRegistry>, defaults: JobDefaults) -> Result<Arc<Self>, ServerError> {
        let dir = data_dir.join("jobs");
        std::fs::create_dir_all(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))?;
        let mut jobs = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))? {
            let path = entry.map_err(|e| ServerError::Internal(e.to_string()))?.path();
            if path.extension().is_some_and(|x| x == "json")
                && let Some(record) = store::read_json::<JobRecord>(&path)?
            {
                jobs.insert(record.id.clone(), JobEntry::new(record));
            }
        }
        // Savepoints in flight when the server died will not complete.
        for e in jobs.values_mut() {
            for sp in e.record.savepoints.iter_mut().filter(|sp| sp.status == "in_progress") {
                sp.status = "failed".into();
                sp.error = Some("the server stopped before the savepoint completed".into());
            }
        }
        let manager = Arc::new(JobManager { data_dir: data_dir.to_path_buf(), registry, defaults, jobs: Mutex::new(jobs) });
        let resume: Vec<String> = manager.lock().values().filter(|e| e.record.status.is_active()).map(|e| e.record.id.clone()).collect();
        for id in resume {
            tracing::info!(job = %id, "resuming job after a server restart");
            let mut jobs = manager.lock();
            if let Some(entry) = jobs.get_mut(&id) {
                entry.record.history.push(HistoryEvent {
                    parallelism: entry.record.parallelism,
                    detail: Some("server restarted; resuming from the latest checkpoint".into()),
                    ..HistoryEvent::new("resumed", versions(&entry.record.plugins))
                });
                entry.record.status = JobStatus::Running;
                if let Err(e) = manager.start_run(entry, RestoreFrom::Latest, None) {
                    entry.record.status = JobStatus::Failed;
                    entry.record.error = Some(e.to_string());
                }
                manager.persist(&entry.record)?;
            }
        }
        Ok(manager)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, JobEntry>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, record: &JobRecord) -> Result<(), ServerError> {
        store::write_json(&self.data_dir.join("jobs").join(format!("{}.json", record.id)), record)
    }

    /// The checkpoint root of a job.
    fn storage(&self, record: &JobRecord) -> Result<CheckpointStorage, ServerError> {
        let spec: JobSpec = serde_json::from_value(record.spec.clone()).map_err(|e| ServerError::Internal(format!("stored spec: {e}")))?;
        let root = match spec.checkpoint.as_ref().and_then(|c| c.dir.clone()) {
            Some(dir) => CheckpointStorage::open(&dir).map_err(|e| ServerError::BadRequest(e.to_string()))?,
            None => {
                let dir = self.data_dir.join("checkpoints");
                std::fs::create_dir_all(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))?;
                CheckpointStorage::open(&dir.display().to_string()).map_err(|e| ServerError::Internal(e.to_string()))?
            }
        };
        Ok(root.child(&record.id))
    }

    /// Resolve a spec's plugin references against the registry.
    fn resolve_plugins(&self, spec: &JobSpec) -> Result<BTreeMap<String, PluginRef>, ServerError> {
        let mut out = BTreeMap::new();
        for (i, op) in spec.operators.iter().enumerate() {
            let meta = self.registry.resolve(&op.plugin).map_err(|e| ServerError::BadRequest(format!("operators[{i}] (uid '{}'): {e}", op.uid)))?;
            out.insert(op.uid.clone(), PluginRef { name: meta.name, version: meta.version, digest: meta.digest });
        }
        Ok(out)
    }

    /// The dataflow graph of a record with the given plugins and parallelism.
    fn graph(&self, record: &JobRecord, plugins: &BTreeMap<String, PluginRef>, parallelism: Option<u32>) -> Result<JobGraph, ServerError> {
        let mut spec: JobSpec = serde_json::from_value(record.spec.clone()).map_err(|e| ServerError::Internal(format!("stored spec: {e}")))?;
        for op in &mut spec.operators {
            let p = plugins.get(&op.uid).ok_or_else(|| ServerError::Internal(format!("no plugin for operator '{}'", op.uid)))?;
            let meta = self
                .registry
                .get(&p.name, &p.version)
                .ok_or_else(|| ServerError::Conflict(format!("plugin {} of operator '{}' is no longer registered", p.label(), op.uid)))?;
            op.plugin = self.registry.path_of(&meta).display().to_string();
        }
        let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        JobGraph::build(&spec, &base, parallelism).map_err(|e| ServerError::BadRequest(e.to_string()))
    }

    /// Submit and start a job.
    pub fn submit(self: &Arc<Self>, sub: Submission) -> Result<JobRecord, ServerError> {
        let plugins = self.resolve_plugins(&sub.spec)?;
        let spec_json = serde_json::to_value(&sub.spec).map_err(|e| ServerError::Internal(e.to_string()))?;
        let mut record = JobRecord {
            id: new_id(),
            name: sub.spec.name.clone(),
            spec: spec_json,
            plugins,
            parallelism: sub.parallelism,
            state_backend: sub.state_backend.or(sub.spec.state_backend).unwrap_or(self.defaults.state_backend),
            status: JobStatus::Running,
            created_ms: now_ms(),
            initial_savepoint: sub.savepoint.clone(),
            allow_non_restored_state: sub.allow_non_restored_state,
            history: Vec::new(),
            exceptions: Vec::new(),
            savepoints: Vec::new(),
            error: None,
        };
        // Check the graph before anything is stored.
        self.graph(&record, &record.plugins, record.parallelism)?;
        record.history.push(HistoryEvent {
            savepoint: sub.savepoint.clone(),
            parallelism: record.parallelism,
            ..HistoryEvent::new("submitted", versions(&record.plugins))
        });
        let restore = match &sub.savepoint {
            Some(p) => RestoreFrom::Path(p.clone()),
            None => RestoreFrom::Nothing,
        };
        // Under the lock, so the run cannot end before its record is in the map.
        let id = record.id.clone();
        let mut jobs = self.lock();
        let entry = jobs.entry(id.clone()).or_insert(JobEntry::new(record));
        if let Err(e) = self.start_run(entry, restore, None).and_then(|()| self.persist(&entry.record)) {
            jobs.remove(&id);
            return Err(e);
        }
        let entry = jobs.get(&id).ok_or_else(|| ServerError::Internal("job vanished".into()))?;
        tracing::info!(job = %entry.record.id, name = %entry.record.name, "job submitted");
        Ok(entry.record.clone())
    }

    /// Start a run of `entry` in the background.
    fn start_run(self: &Arc<Self>, entry: &mut JobEntry, restore: RestoreFrom, probation: Option<Rollback>) -> Result<(), ServerError> {
        let record = &mut entry.record;
        let graph = self.graph(record, &record.plugins, record.parallelism)?;
        let spec: JobSpec = serde_json::from_value(record.spec.clone()).map_err(|e| ServerError::Internal(format!("stored spec: {e}")))?;
        let storage = self.storage(record)?;
        let mut ck = CheckpointConfig::new(storage.clone());
        let cs = spec.checkpoint.clone().unwrap_or_default();
        ck.interval = Some(cs.interval_ms.map(Duration::from_millis).unwrap_or(self.defaults.checkpoint_interval));
        if let Some(t) = cs.timeout_ms {
            ck.timeout = Duration::from_millis(t);
        }
        if let Some(r) = cs.retain {
            ck.retain = r.max(1);
        }
        if let Some(t) = cs.tolerable_failures {
            ck.tolerable_failures = t;
        }
        ck.incremental = cs.incremental.unwrap_or(true);
        let control = JobControl::with_guest_log(entry.log.clone());
        let mut opts = RunOptions::new(record.state_backend, self.data_dir.join("state").join(&record.id));
        opts.checkpoint = Some(ck);
        opts.allow_non_restored_state = record.allow_non_restored_state;
        opts.control = Some(control.clone());
        opts.probation = probation.is_some();
        let restart = spec.restart.clone().unwrap_or(RestartSpec { attempts: 3, delay_ms: 1000 });
        let (tx, rx) = watch::channel(false);
        entry.run = Some(RunHandle { control, ended: rx, finished: false, started: Instant::now() });
        record.status = JobStatus::Running;
        record.error = None;
        let manager = self.clone();
        let id = record.id.clone();
        let initial = record.initial_savepoint.clone();
        tokio::spawn(async move {
            // `latest` falls back to the savepoint the job was first started from.
            if opts.restore == RestoreFrom::Nothing || restore == RestoreFrom::Latest {
                opts.restore = match (&restore, initial) {
                    (RestoreFrom::Latest, Some(sp)) => match find_restore_point(&storage, &graph.name).await {
                        Ok(Some(_)) => RestoreFrom::Latest,
                        _ => RestoreFrom::Path(sp),
                    },
                    _ => restore.clone(),
                };
            }
            let result = run_job_with_restarts(&graph, manager.registry.engine(), &opts, Some(&restart)).await;
            manager.run_ended(&id, &opts, result, probation);
            let _ = tx.send(true);
        });
        Ok(())
    }

    /// Record how a run ended; roll a swap on probation back.
    fn run_ended(
        self: &Arc<Self>,
        id: &str,
        opts: &RunOptions,
        result: Result<crate::runtime::JobReport, crate::JobError>,
        probation: Option<Rollback>,
    ) {
        let mut jobs = self.lock();
        let Some(entry) = jobs.get_mut(id) else { return };
        let live = opts.control.as_ref().map(|c| c.live()).unwrap_or_default();
        entry.record.exceptions.extend(live.failures.iter().map(exception));
        if let Some(r) = &mut entry.run {
            r.finished = true;
        }
        let versions_now = versions(&entry.record.plugins);
        let event = |kind: &str, detail: Option<String>| HistoryEvent { detail, ..HistoryEvent::new(kind, versions_now.clone()) };
        match result {
            Ok(report) if report.cancelled => {
                entry.record.status = JobStatus::Cancelled;
                entry.record.history.push(event("cancelled", None));
            }
            Ok(report) if report.stopped_with_savepoint.is_some() => {
                // A stop, or the first half of a swap (which starts the next run).
                entry.record.status = if entry.record.status == JobStatus::Upgrading { JobStatus::Upgrading } else { JobStatus::Stopped };
                if entry.record.status == JobStatus::Stopped {
                    let mut e = event("stopped", None);
                    e.savepoint = report.stopped_with_savepoint.clone();
                    entry.record.history.push(e);
                }
            }
            Ok(_) => {
                entry.record.status = JobStatus::Finished;
                entry.record.history.push(event("finished", None));
            }
            Err(e) => match probation {
                Some(rb) if live.snapshots.is_empty() => {
                    let reason = e.to_string();
                    tracing::warn!(job = %id, %reason, "the new version failed on probation; rolling back");
                    let from = versions(&entry.record.plugins);
                    entry.record.plugins = rb.plugins.clone();
                    entry.record.parallelism = rb.parallelism;
                    entry.record.history.push(HistoryEvent {
                        from_versions: Some(from),
                        savepoint: Some(rb.savepoint.clone()),
                        parallelism: rb.parallelism,
                        detail: Some(reason),
                        ..HistoryEvent::new("rollback", versions(&entry.record.plugins))
                    });
                    if let Err(e) = self.start_run(entry, RestoreFrom::Path(rb.savepoint.clone()), None) {
                        entry.record.status = JobStatus::Failed;
                        entry.record.error = Some(format!("rollback failed: {e}"));
                    }
                }
                _ => {
                    entry.record.status = JobStatus::Failed;
                    entry.record.error = Some(e.to_string());
                    entry.record.history.push(event("failed", Some(e.to_string())));
                }
            },
        }
        if let Err(e) = self.persist(&entry.record) {
            tracing::error!(job = %id, error = %e, "cannot persist job record");
        }
    }

    /// What the job's guests logged (across its runs since the server started).
    pub fn logs(&self, id: &str) -> Result<Vec<crate::plugin::GuestLogLine>, ServerError> {
        let jobs = self.lock();
        let e = jobs.get(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
        Ok(e.log.lines())
    }

    /// Every job.
    pub fn list(&self) -> Vec<JobRecord> {
        self.lock().values().map(|e| e.record.clone()).collect()
    }

    /// One job with its live view.
    pub fn detail(&self, id: &str) -> Result<JobDetail, ServerError> {
        let jobs = self.lock();
        let entry = jobs.get(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
        let mut record = entry.record.clone();
        record.exceptions = entry.exceptions();
        let (live, uptime) = match &entry.run {
            Some(r) => (r.control.live(), r.started.elapsed()),
            None => (Default::default(), Duration::ZERO),
        };
        drop(jobs);
        let graph = self.graph(&record, &record.plugins, record.parallelism).ok();
        let mut nodes = Vec::new();
        if let Some(graph) = &graph {
            for (i, node) in graph.nodes.iter().enumerate() {
                let m = live.metrics.get(i);
                let load = |f: fn(&crate::runtime::NodeMetrics) -> &std::sync::atomic::AtomicU64| m.map_or(0, |m| f(m).load(Ordering::Relaxed));
                let wm = m.map(|m| m.watermark.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN);
                let (kind, plugin) = match &node.kind {
                    NodeKind::Source(_) => ("source", None),
                    NodeKind::Operator { spec, .. } => ("operator", record.plugins.get(&spec.uid).map(PluginRef::label)),
                    NodeKind::Sink(_) => ("sink", None),
                };
                let secs = uptime.as_secs_f64().max(1e-3) * f64::from(node.parallelism);
                nodes.push(NodeStatus {
                    id: node.id.clone(),
                    kind: kind.into(),
                    parallelism: node.parallelism,
                    plugin,
                    records_in: load(|m| &m.records_in),
                    records_out: load(|m| &m.records_out),
                    late_records: load(|m| &m.late_records),
                    dead_letter_records: load(|m| &m.dead_letters),
                    watermark: wm,
                    backpressure: (load(|m| &m.backpressure_ns) as f64 / 1e9 / secs).min(1.0),
                    guest_ms: load(|m| &m.guest_ns) / 1_000_000,
                    memory_bytes: load(|m| &m.memory_bytes),
                });
            }
        }
        let edges = graph
            .iter()
            .flat_map(|g| {
                g.edges.iter().map(|e| EdgeStatus {
                    from: g.nodes[e.from].id.clone(),
                    to: g.nodes[e.to].id.clone(),
                    partitioning: match e.partition {
                        crate::job::Partition::Forward => "forward",
                        crate::job::Partition::Hash(_) => "hash",
                        crate::job::Partition::Rebalance => "rebalance",
                    }
                    .into(),
                    tag: e.tag.clone(),
                })
            })
            .collect();
        let last_checkpoint = live.snapshots.last().map(stat);
        Ok(JobDetail { record, attempt: live.attempt, uptime_s: uptime.as_secs_f64(), nodes, edges, last_checkpoint })
    }

    /// Live metrics of every job with a run: (job id, job name, node kinds, live view).
    pub fn live_views(&self) -> Vec<(JobRecord, Vec<String>, crate::runtime::Live)> {
        let jobs = self.lock();
        let mut out = Vec::new();
        for e in jobs.values() {
            if let Some(r) = &e.run {
                let kinds = self
                    .graph(&e.record, &e.record.plugins, e.record.parallelism)
                    .map(|g| {
                        g.nodes
                            .iter()
                            .map(|n| match &n.kind {
                                NodeKind::Source(_) => "source".to_owned(),
                                NodeKind::Operator { spec, .. } => {
                                    format!("operator:{}", e.record.plugins.get(&spec.uid).map(PluginRef::label).unwrap_or_default())
                                }
                                NodeKind::Sink(_) => "sink".to_owned(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut live = r.control.live();
                if r.finished {
                    live.failures.clear();
                }
                out.push((e.record.clone(), kinds, live));
            }
        }
        out
    }

    /// Snapshots of a job.
    pub async fn checkpoints(&self, id: &str) -> Result<CheckpointsView, ServerError> {
        let (record, live) = {
            let jobs = self.lock();
            let e = jobs.get(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
            (e.record.clone(), e.run.as_ref().map(|r| r.control.live()).unwrap_or_default())
        };
        let storage = self.storage(&record)?;
        let retained = complete_snapshots(&storage)
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .into_iter()
            .map(|(id, dir)| RetainedSnapshot { id, location: storage.url_of(&dir) })
            .collect();
        Ok(CheckpointsView {
            retained,
            completed: live.snapshots.iter().map(stat).collect(),
            failed: live.snapshot_failures.iter().map(|(id, reason)| FailedSnapshot { id: *id, reason: reason.clone() }).collect(),
        })
    }

    fn control(&self, id: &str) -> Result<(Arc<JobControl>, watch::Receiver<bool>, Arc<tokio::sync::Mutex<()>>), ServerError> {
        let jobs = self.lock();
        let e = jobs.get(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
        if e.record.status != JobStatus::Running {
            return Err(ServerError::Conflict(format!("job {id} is {:?}, not running", e.record.status).to_lowercase()));
        }
        let r = e.run.as_ref().filter(|r| !r.finished).ok_or_else(|| ServerError::Conflict(format!("job {id} has no running attempt")))?;
        Ok((r.control.clone(), r.ended.clone(), e.op.clone()))
    }

    fn busy(id: &str) -> ServerError {
        ServerError::Conflict(format!("another stop, upgrade or rescale of job {id} is in progress"))
    }

    /// Ask for a savepoint; returns its trigger id at once.
    pub fn trigger_savepoint(self: &Arc<Self>, id: &str) -> Result<SavepointInfo, ServerError> {
        let (control, _, _) = self.control(id)?;
        let info = self.record_savepoint_request(id, false)?;
        let rx = control.request_savepoint(false);
        let manager = self.clone();
        let (job, trigger) = (id.to_owned(), info.trigger.clone());
        tokio::spawn(async move {
            let outcome = rx.await.unwrap_or_else(|_| Err("the job ended before the savepoint completed".into()));
            manager.settle_savepoint(&job, &trigger, outcome);
        });
        Ok(info)
    }

    /// Note a savepoint request in the job's record (status `in_progress`).
    fn record_savepoint_request(&self, id: &str, stop: bool) -> Result<SavepointInfo, ServerError> {
        let info = SavepointInfo {
            trigger: new_id(),
            job: id.to_owned(),
            status: "in_progress".into(),
            location: None,
            error: None,
            requested_ms: now_ms(),
            stop,
        };
        let mut jobs = self.lock();
        let e = jobs.get_mut(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
        e.record.savepoints.push(info.clone());
        self.persist(&e.record)?;
        Ok(info)
    }

    fn settle_savepoint(&self, job: &str, trigger: &str, outcome: Result<String, String>) {
        let mut jobs = self.lock();
        let Some(e) = jobs.get_mut(job) else { return };
        let versions_now = versions(&e.record.plugins);
        if let Some(sp) = e.record.savepoints.iter_mut().find(|s| s.trigger == trigger) {
            match outcome {
                Ok(loc) => {
                    sp.status = "completed".into();
                    sp.location = Some(loc.clone());
                    e.record.history.push(HistoryEvent { savepoint: Some(loc), ..HistoryEvent::new("savepoint", versions_now) });
                }
                Err(reason) => {
                    sp.status = "failed".into();
                    sp.error = Some(reason);
                }
            }
        }
        let _ = self.persist(&e.record);
    }

    /// A savepoint by trigger id.
    pub fn savepoint(&self, id: &str, trigger: &str) -> Result<SavepointInfo, ServerError> {
        let jobs = self.lock();
        let e = jobs.get(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
        e.record
            .savepoints
            .iter()
            .find(|s| s.trigger == trigger)
            .cloned()
            .ok_or_else(|| ServerError::NotFound(format!("savepoint trigger {trigger}")))
    }

    /// Every savepoint of every job.
    pub fn all_savepoints(&self) -> Vec<SavepointInfo> {
        self.lock().values().flat_map(|e| e.record.savepoints.clone()).collect()
    }

    /// Stop a job: with a savepoint (drained and committed first) or at once.
    pub async fn stop(self: &Arc<Self>, id: &str, savepoint: bool) -> Result<JobRecord, ServerError> {
        let (control, mut ended, op) = self.control(id)?;
        let _op = op.try_lock_owned().map_err(|_| Self::busy(id))?;
        if savepoint {
            let trigger = self.record_savepoint_request(id, true)?.trigger;
            let outcome = control.request_savepoint(true).await.unwrap_or_else(|_| Err("the job ended before the savepoint completed".into()));
            let failed = outcome.as_ref().err().cloned();
            self.settle_savepoint(id, &trigger, outcome);
            if let Some(reason) = failed {
                return Err(ServerError::Conflict(format!("stop with savepoint failed: {reason}")));
            }
        } else {
            control.cancel();
        }
        let _ = ended.wait_for(|e| *e).await;
        self.record(id)
    }

    /// The stored record of job `id`.
    fn record(&self, id: &str) -> Result<JobRecord, ServerError> {
        self.lock().get(id).map(|e| e.record.clone()).ok_or_else(|| ServerError::NotFound(format!("job {id}")))
    }

    /// Swap operator plugins (and/or parallelism) through a savepoint, rolling back on
    /// its own when the new version fails before its first checkpoint.
    pub async fn upgrade(
        self: &Arc<Self>,
        id: &str,
        new_plugins: &BTreeMap<String, String>,
        parallelism: Option<u32>,
    ) -> Result<UpgradeOutcome, ServerError> {
        let record = self.record(id)?;
        let (control, mut ended, op) = self.control(id)?;
        let _op = op.try_lock_owned().map_err(|_| Self::busy(id))?;
        let Checked { plugins, changed, parallelism, graph, .. } = self.check(&record, new_plugins, parallelism).await?;
        // 3. Stop with a savepoint.
        {
            let mut jobs = self.lock();
            let e = jobs.get_mut(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
            if e.record.status != JobStatus::Running {
                return Err(ServerError::Conflict(format!("job {id} is {:?}, not running", e.record.status).to_lowercase()));
            }
            e.record.status = JobStatus::Upgrading;
            self.persist(&e.record)?;
        }
        let t0 = Instant::now();
        let savepoint = match control.request_savepoint(true).await.unwrap_or_else(|_| Err("the job ended before the savepoint completed".into())) {
            Ok(loc) => loc,
            Err(reason) => {
                let mut jobs = self.lock();
                if let Some(e) = jobs.get_mut(id)
                    && e.record.status == JobStatus::Upgrading
                {
                    e.record.status = JobStatus::Running;
                    let _ = self.persist(&e.record);
                }
                return Err(ServerError::Conflict(format!("could not stop the job with a savepoint: {reason}")));
            }
        };
        let _ = ended.wait_for(|e| *e).await;
        // 4. Start the new version on probation.
        let from_versions = versions(&record.plugins);
        let new_control = {
            let mut jobs = self.lock();
            let e = jobs.get_mut(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
            if e.record.status != JobStatus::Upgrading {
                return Err(ServerError::Conflict(format!("job {id} ended while it was being stopped for the swap ({:?})", e.record.status)));
            }
            let rollback = Rollback { plugins: e.record.plugins.clone(), parallelism: e.record.parallelism, savepoint: savepoint.clone() };
            e.record.plugins = plugins.clone();
            e.record.parallelism = parallelism;
            let kind = if changed.is_empty() { "rescale" } else { "swap" };
            e.record.history.push(HistoryEvent {
                from_versions: Some(from_versions.clone()),
                savepoint: Some(savepoint.clone()),
                parallelism,
                ..HistoryEvent::new(kind, versions(&plugins))
            });
            if let Err(err) = self.start_run(e, RestoreFrom::Path(savepoint.clone()), Some(rollback.clone())) {
                // The new graph cannot even be built: back to the old one.
                e.record.plugins = rollback.plugins;
                e.record.parallelism = rollback.parallelism;
                e.record.history.push(HistoryEvent {
                    savepoint: Some(savepoint.clone()),
                    detail: Some(err.to_string()),
                    ..HistoryEvent::new("rollback", versions(&e.record.plugins))
                });
                if let Err(again) = self.start_run(e, RestoreFrom::Path(savepoint.clone()), None) {
                    e.record.status = JobStatus::Failed;
                    e.record.error = Some(format!("the swap failed ({err}) and so did the rollback: {again}"));
                }
                self.persist(&e.record)?;
                return Err(err);
            }
            self.persist(&e.record)?;
            e.run.as_ref().map(|r| (r.control.clone(), r.ended.clone()))
        };
        let Some((new_control, new_ended)) = new_control else {
            return Err(ServerError::Internal("the new run did not start".into()));
        };
        // 5. Watch the probation: the first checkpoint (or the end of input) confirms the
        //    swap; a rollback event says it failed.
        let sinks: Vec<usize> = graph.nodes.iter().enumerate().filter(|(_, n)| matches!(n.kind, NodeKind::Sink(_))).map(|(i, _)| i).collect();
        let mut downtime = None;
        let deadline = Instant::now() + Duration::from_secs(300);
        let outcome = loop {
            let live = new_control.live();
            if downtime.is_none() && sinks.iter().any(|&i| live.metrics.get(i).is_some_and(|m| m.records_in.load(Ordering::Relaxed) > 0)) {
                downtime = Some(t0.elapsed().as_millis() as u64);
            }
            let rolled_back = {
                let jobs = self.lock();
                jobs.get(id).and_then(|e| {
                    let last_swap = e.record.history.iter().rposition(|h| h.kind == "swap" || h.kind == "rescale")?;
                    e.record.history[last_swap..].iter().find(|h| h.kind == "rollback").and_then(|h| h.detail.clone())
                })
            };
            if let Some(reason) = rolled_back {
                break ("rolled_back", Some(reason));
            }
            if !live.snapshots.is_empty() || *new_ended.borrow() {
                break ("swapped", None);
            }
            if Instant::now() > deadline {
                // Still on probation (no checkpoint yet): it may yet roll back.
                break ("pending", None);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let downtime = downtime.or_else(|| (outcome.0 == "swapped").then(|| t0.elapsed().as_millis() as u64));
        let mut jobs = self.lock();
        let e = jobs.get_mut(id).ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
        if let Some(h) = e.record.history.iter_mut().rev().find(|h| h.kind == "swap" || h.kind == "rescale") {
            h.downtime_ms = downtime;
        }
        self.persist(&e.record)?;
        Ok(UpgradeOutcome {
            result: outcome.0.into(),
            savepoint,
            from_versions,
            versions: versions(&e.record.plugins),
            downtime_ms: downtime,
            rollback_reason: outcome.1,
            detail: None,
        })
    }

    /// The checks of [`Self::upgrade`] (step 1 and 2) alone: the job is left running.
    pub async fn check_upgrade(
        self: &Arc<Self>,
        id: &str,
        new_plugins: &BTreeMap<String, String>,
        parallelism: Option<u32>,
    ) -> Result<UpgradeOutcome, ServerError> {
        let record = self.record(id)?;
        self.control(id)?;
        let checked = self.check(&record, new_plugins, parallelism).await?;
        let detail = match (&checked.snapshot, checked.changed.is_empty()) {
            (Some(at), false) => format!("the new versions restored the state of {at} through migrate-state"),
            (Some(at), true) => format!("the state of {at} can be redistributed"),
            (None, _) => "the job has no snapshot yet: there is no state to migrate".into(),
        };
        Ok(UpgradeOutcome {
            result: "dry_run_ok".into(),
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
        let graph = self.graph(record, &plugins, parallelism)?;
        let storage = self.storage(record)?;
        let latest = find_restore_point(&storage, &graph.name).await.map_err(|e| ServerError::Internal(e.to_string()))?;
        if let Some(point) = &latest {
            dry_run_restore(&graph, self.registry.engine(), &point.location, &changed)
                .await
                .map_err(|e| ServerError::Unprocessable(format!("dry run of the new version on {} failed: {e}", point.location)))?;
        }
        Ok(Checked { plugins, changed, parallelism, graph, snapshot: latest.map(|p| p.location) })
    }

    /// Whether an active job uses the plugin digest.
    pub fn uses_plugin(&self, name: &str, version: &str) -> Option<String> {
        self.lock()
            .values()
            .find(|e| e.record.status.is_active() && e.record.plugins.values().any(|p| p.name == name && p.version == version))
            .map(|e| e.record.id.clone())
    }
}

fn stat(s: &crate::checkpoint::CoordinatorOutcome) -> SnapshotStat {
    SnapshotStat {
        id: s.id,
        kind: format!("{:?}", s.kind).to_lowercase(),
        location: s.location.clone(),
        bytes: s.bytes,
        total_bytes: s.total_bytes,
        duration_ms: s.duration_ms,
        latency_ms: s.latency_ms,
        at_ms: s.completed_ms,
    }
}
