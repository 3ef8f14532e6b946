//! The jobs of one server: opening the store (resuming what ran), submission, and the
//! views the API shows. Runs are in `runs`, savepoints and stops in `savepoints`, the hot
//! swap in `upgrade`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rivulet_checkpoint::{CheckpointStorage, complete_snapshots};
use rivulet_dataflow::now_ms;
use rivulet_job::{JobGraph, JobSpec, NodeKind};
use rivulet_plugin::GuestLogLine;
use rivulet_runtime::{Live, RestoreFrom};
use rivulet_state::BackendKind;

use crate::ServerError;
use crate::access::AccessPolicy;
use crate::entry::{JobEntry, build_graph};
use crate::record::{HistoryEvent, HistoryKind, JobRecord, JobStatus, PluginRef, SavepointStatus};
use crate::registry::PluginRegistry;
use crate::store;
use crate::view::{CheckpointsView, FailedSnapshot, JobDetail, NodeLabel, RetainedSnapshot, SnapshotStat, edge_statuses, node_statuses};

/// Server starts in a row that may resume a job that then does not run for
/// [`RESUME_PROBATION`]; the next start suspends it.
pub const MAX_QUICK_RESUMES: u32 = 3;
/// How long a resumed job must run before the server's deaths stop counting against it.
pub const RESUME_PROBATION: Duration = Duration::from_secs(60);

/// Server-wide defaults for jobs.
#[derive(Debug, Clone)]
pub struct JobDefaults {
    /// Checkpoint interval when the spec sets none.
    pub checkpoint_interval: Duration,
    /// State backend when neither the submission nor the spec sets one.
    pub state_backend: BackendKind,
    /// What jobs may touch: files, hosts, client properties.
    pub access: AccessPolicy,
    /// The most guest memory (MiB) the running jobs' instances may be allowed in sum:
    /// each instance counts with its `limits.memory_mb`.
    pub guest_memory_mb: u64,
    /// Where jobs' tasks run: in this process (`None`), or on a cluster's workers.
    pub hosts: Option<std::sync::Arc<dyn rivulet_runtime::TaskHosts>>,
}

/// Linear memory an instance may grow to unless its operator's `limits` say otherwise.
const DEFAULT_GUEST_MEMORY_MB: u64 = (rivulet_plugin::Limits::DEFAULT_MEMORY_BYTES >> 20) as u64;

/// The guest memory a job's instances may use in sum, in MiB: every operator subtask's
/// memory limit.
pub fn guest_memory_mb(graph: &JobGraph) -> u64 {
    graph
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Operator { spec, .. } => {
                Some(u64::from(n.parallelism) * spec.limits.as_ref().and_then(|l| l.memory_mb).unwrap_or(DEFAULT_GUEST_MEMORY_MB))
            }
            _ => None,
        })
        .sum()
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

/// What the metrics show of a job.
#[derive(Debug, Clone)]
pub struct JobMetrics {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status.
    pub status: JobStatus,
    /// Plugins of the recorded exceptions (traps of finished runs).
    pub recorded_failures: Vec<Option<String>>,
    /// Restarts after task failures, the run in progress included.
    pub restarts: u64,
    /// The nodes and the live view of its run, if it has one.
    pub run: Option<(Vec<NodeLabel>, Live)>,
}

/// The jobs of one server.
pub struct JobManager {
    pub(crate) data_dir: PathBuf,
    pub(crate) registry: Arc<PluginRegistry>,
    pub(crate) defaults: JobDefaults,
    jobs: Mutex<BTreeMap<String, JobEntry>>,
    /// Set by [`JobManager::shut_down`]: no job is submitted from then on.
    shutting_down: AtomicBool,
}

/// A fresh 16-hex-digit id (time, process and a counter, hashed).
pub(crate) fn new_id() -> String {
    use sha2::Digest as _;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos}-{}-{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hex::encode(&sha2::Sha256::digest(seed.as_bytes())[..8])
}

pub(crate) fn not_found(id: &str) -> ServerError {
    ServerError::NotFound(format!("job {id}"))
}

impl JobManager {
    /// Open the job store below `data_dir` and resume every job that was running.
    pub async fn open(data_dir: &Path, registry: Arc<PluginRegistry>, defaults: JobDefaults) -> Result<Arc<Self>, ServerError> {
        let dir = data_dir.join("jobs");
        std::fs::create_dir_all(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))?;
        let mut jobs = BTreeMap::new();
        // Jobs that were active when the server last stopped through a graceful shutdown.
        let mut shut_down_gracefully = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))? {
            let path = entry.map_err(|e| ServerError::Internal(e.to_string()))?.path();
            if path.extension().is_some_and(|x| x == "json")
                && let Some(mut record) = store::read_json::<JobRecord>(&path)?
            {
                // Savepoints in flight when the server died will not complete.
                for sp in record.savepoints.iter_mut().filter(|sp| sp.status == SavepointStatus::InProgress) {
                    sp.status = SavepointStatus::Failed;
                    sp.error = Some("the server stopped before the savepoint completed".into());
                }
                if std::mem::take(&mut record.shut_down_gracefully) {
                    shut_down_gracefully.insert(record.id.clone());
                }
                let entry = JobEntry::new(record, &registry, defaults.access.files_dir());
                if let Err(e) = &entry.spec {
                    tracing::error!(job = %entry.record.id, error = %entry.secrets.scrub(e), "a stored job spec does not parse: the job is listed but cannot run");
                }
                jobs.insert(entry.record.id.clone(), entry);
            }
        }
        let manager = Arc::new(JobManager {
            data_dir: data_dir.to_path_buf(),
            registry,
            defaults,
            jobs: Mutex::new(jobs),
            shutting_down: AtomicBool::new(false),
        });
        let resume: Vec<String> = manager.lock().values().filter(|e| e.record.status.is_active()).map(|e| e.record.id.clone()).collect();
        for id in resume {
            // A graceful shutdown is no death: the start after it does not count (the
            // shutdown reset the count), and the record it resumes says so.
            let graceful = shut_down_gracefully.contains(&id);
            let suspended = manager.with_job(&id, |entry| {
                if graceful {
                    entry.record.quick_resumes = 0;
                    return Ok(false);
                }
                entry.record.quick_resumes += 1;
                if entry.record.quick_resumes <= MAX_QUICK_RESUMES {
                    return Ok(false);
                }
                let why = format!(
                    "suspended instead of resumed: the server stopped {} times in a row within {} s of resuming this job (a crash loop?); \
                     its checkpoints are kept: submit it again with `savepoint` set to the latest one",
                    entry.record.quick_resumes - 1,
                    RESUME_PROBATION.as_secs()
                );
                tracing::error!(job = %id, "{why}");
                entry.record.status = JobStatus::Suspended;
                entry.record.error = Some(why.clone());
                entry.record.push(HistoryEvent { detail: Some(why), ..HistoryEvent::new(HistoryKind::Suspended, entry.record.versions()) });
                manager.persist(&entry.record)?;
                Ok(true)
            })?;
            if suspended {
                continue;
            }
            tracing::info!(job = %id, graceful, "resuming job after a server restart");
            manager.with_job(&id, |entry| {
                let detail = if graceful {
                    "server restarted after a graceful shutdown; resuming from the latest checkpoint"
                } else {
                    "server restarted; resuming from the latest checkpoint"
                };
                entry.record.push(HistoryEvent {
                    parallelism: entry.record.parallelism,
                    detail: Some(detail.into()),
                    ..HistoryEvent::new(HistoryKind::Resumed, entry.record.versions())
                });
                entry.record.status = JobStatus::Running;
                if let Err(e) = manager.start_run(entry, RestoreFrom::Latest, None) {
                    entry.record.status = JobStatus::Failed;
                    entry.record.error = Some(e.to_string());
                }
                manager.persist(&entry.record)
            })?;
            // Once the resumed job has run for a while, the server's deaths are no
            // longer a loop around it.
            let (m, id) = (manager.clone(), id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(RESUME_PROBATION).await;
                let _ = m.with_job(&id, |entry| {
                    if entry.record.status.is_active() && entry.record.quick_resumes > 0 {
                        entry.record.quick_resumes = 0;
                        m.persist(&entry.record)?;
                    }
                    Ok(())
                });
            });
        }
        // Workers made for jobs that are not running (left by a coordinator that died
        // before removing them) go.
        if let Some(hosts) = manager.defaults.hosts.clone() {
            let active: Vec<String> = manager.lock().values().filter(|e| e.record.status.is_active()).map(|e| e.record.id.clone()).collect();
            tokio::spawn(async move { hosts.retain_jobs(&active).await });
        }
        Ok(manager)
    }

    /// Record, durably, that the server is shutting down gracefully (SIGTERM, SIGINT)
    /// rather than crashing: every active job's record is marked so, with its count of
    /// quick resumes reset, so that the next start resumes it from its latest checkpoint
    /// without counting the restart toward a crash loop. No job is submitted after this.
    /// The runs are left as they are: the process exits next, as a crash would leave
    /// them. Returns the jobs marked.
    pub fn shut_down(&self) -> usize {
        let mut jobs = self.lock();
        self.shutting_down.store(true, Ordering::SeqCst);
        let mut marked = 0;
        for entry in jobs.values_mut().filter(|e| e.record.status.is_active()) {
            entry.record.shut_down_gracefully = true;
            entry.record.quick_resumes = 0;
            match self.persist(&entry.record) {
                Ok(()) => marked += 1,
                Err(e) => {
                    tracing::error!(job = %entry.record.id, error = %e, "cannot record the graceful shutdown: the next start counts it as a crash")
                }
            }
        }
        tracing::info!(jobs = marked, "graceful shutdown recorded; the jobs resume on the next start");
        marked
    }

    /// Whether [`JobManager::shut_down`] was called.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<String, JobEntry>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on job `id` under the jobs lock.
    pub(crate) fn with_job<T>(&self, id: &str, f: impl FnOnce(&mut JobEntry) -> Result<T, ServerError>) -> Result<T, ServerError> {
        let mut jobs = self.lock();
        let entry = jobs.get_mut(id).ok_or_else(|| not_found(id))?;
        f(entry)
    }

    /// Write a record to the store.
    pub(crate) fn persist(&self, record: &JobRecord) -> Result<(), ServerError> {
        store::write_json(&self.data_dir.join("jobs").join(format!("{}.json", record.id)), record)
    }

    /// The checkpoint root of a job.
    pub(crate) fn storage(&self, spec: &JobSpec, id: &str) -> Result<CheckpointStorage, ServerError> {
        let root = match spec.checkpoint.as_ref().and_then(|c| c.dir.clone()) {
            Some(dir) => CheckpointStorage::open(&dir).map_err(|e| ServerError::BadRequest(e.to_string()))?,
            None => {
                let dir = self.data_dir.join("checkpoints");
                std::fs::create_dir_all(&dir).map_err(|e| ServerError::Internal(format!("{}: {e}", dir.display())))?;
                CheckpointStorage::open(&dir.display().to_string()).map_err(|e| ServerError::Internal(e.to_string()))?
            }
        };
        Ok(root.child(id))
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

    /// Submit and start a job.
    pub fn submit(self: &Arc<Self>, sub: Submission) -> Result<JobRecord, ServerError> {
        // From here on the spec names every place as the absolute path that was checked.
        let (spec, savepoint) = self.defaults.access.admit(&sub.spec, sub.savepoint.as_deref())?;
        let sub = Submission { spec, savepoint, ..sub };
        let plugins = self.resolve_plugins(&sub.spec)?;
        // Check the graph before anything is stored.
        let graph = build_graph(&self.registry, &sub.spec, &plugins, sub.parallelism, self.defaults.access.files_dir())?;
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
            exceptions_dropped: 0,
            restarts: 0,
            quick_resumes: 0,
            shut_down_gracefully: false,
            savepoints: Vec::new(),
            error: None,
        };
        record.push(HistoryEvent {
            savepoint: sub.savepoint.clone(),
            parallelism: record.parallelism,
            ..HistoryEvent::new(HistoryKind::Submitted, record.versions())
        });
        let restore = match &sub.savepoint {
            Some(p) => RestoreFrom::Path(p.clone()),
            None => RestoreFrom::Nothing,
        };
        let id = record.id.clone();
        let entry = JobEntry::new(record, &self.registry, self.defaults.access.files_dir());
        let writes = self.defaults.access.written_locations(&sub.spec);
        // Under the lock, so the run cannot end before its record is in the map, and
        // two submissions cannot both take one output location.
        let mut jobs = self.lock();
        if self.is_shutting_down() {
            return Err(ServerError::Unavailable("the server is shutting down".into()));
        }
        self.check_outputs_free(&jobs, &writes)?;
        self.check_guest_memory(&jobs, guest_memory_mb(&graph), None)?;
        let entry = jobs.entry(id.clone()).or_insert(entry);
        if let Err(e) = self.start_run(entry, restore, None).and_then(|()| self.persist(&entry.record)) {
            jobs.remove(&id);
            return Err(e);
        }
        tracing::info!(job = %entry.record.id, name = %entry.record.name, "job submitted");
        Ok(entry.shown())
    }

    /// A sink location belongs to one active job at a time: a fresh run clears its
    /// output and a commit writes it, so a second job there would destroy the first's.
    fn check_outputs_free(&self, jobs: &BTreeMap<String, JobEntry>, writes: &[(String, String)]) -> Result<(), ServerError> {
        for other in jobs.values().filter(|e| e.record.status.is_active()) {
            let Ok(spec) = other.spec() else { continue };
            for (_, theirs) in self.defaults.access.written_locations(spec) {
                if let Some((at, mine)) = writes.iter().find(|(_, mine)| crate::access::overlaps(mine, &theirs)) {
                    return Err(ServerError::Conflict(format!(
                        "{at}: {mine} is written by job {} ('{}', {}): stop it first or choose another location",
                        other.record.id, other.record.name, other.record.status
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether `adding` MiB of guest memory fit the server's budget beside the running
    /// jobs (but `replacing`, whose share the new one takes).
    pub(crate) fn check_guest_memory(&self, jobs: &BTreeMap<String, JobEntry>, adding: u64, replacing: Option<&str>) -> Result<(), ServerError> {
        let running: u64 = jobs
            .values()
            .filter(|e| e.record.status.is_active() && Some(e.record.id.as_str()) != replacing)
            .filter_map(|e| e.graph.as_ref().ok())
            .map(|g| guest_memory_mb(g))
            .sum();
        let budget = self.defaults.guest_memory_mb;
        if running + adding > budget {
            return Err(ServerError::Conflict(format!(
                "the job's operators may use {adding} MiB of guest memory (parallelism × limits.memory_mb); with the {running} MiB of the running jobs that is over the server's budget of {budget} MiB (--guest-memory-mb)"
            )));
        }
        Ok(())
    }

    /// The record of job `id` as shown: its spec's secrets masked, its texts scrubbed
    /// of them ([`JobRecord::redacted`]).
    pub fn record(&self, id: &str) -> Result<JobRecord, ServerError> {
        self.with_job(id, |e| Ok(e.shown()))
    }

    /// The stored record of job `id`, secrets and all (to run it, never to show it).
    pub(crate) fn stored_record(&self, id: &str) -> Result<JobRecord, ServerError> {
        self.with_job(id, |e| Ok(e.record.clone()))
    }

    /// `text` about job `id` scrubbed of its secret values (to show or log it).
    pub(crate) fn scrub(&self, id: &str, text: &str) -> String {
        self.with_job(id, |e| Ok(e.secrets.scrub(text))).unwrap_or_else(|_| text.to_owned())
    }

    /// Task failures of job `id`: recorded ones and those of the run in progress
    /// (scrubbed of the job's secrets).
    pub fn exceptions(&self, id: &str) -> Result<Vec<crate::ExceptionInfo>, ServerError> {
        self.with_job(id, |e| Ok(e.shown_exceptions()))
    }

    /// What the job's guests logged (across its runs since the server started),
    /// scrubbed of the job's secrets.
    pub fn logs(&self, id: &str) -> Result<Vec<GuestLogLine>, ServerError> {
        self.with_job(id, |e| Ok(e.shown_log()))
    }

    /// Every job, as shown (secrets masked).
    pub fn list(&self) -> Vec<JobRecord> {
        self.lock().values().map(|e| e.shown()).collect()
    }

    /// One job with its live view.
    pub fn detail(&self, id: &str) -> Result<JobDetail, ServerError> {
        let (mut record, exceptions, live, uptime, graph, labels) = self.with_job(id, |e| {
            let (live, uptime) = match &e.run {
                Some(r) => (r.control.live(), r.started.elapsed()),
                None => (Live::default(), Duration::ZERO),
            };
            Ok((e.shown(), e.shown_exceptions(), live, uptime, e.graph.clone().ok(), e.labels.clone()))
        })?;
        record.exceptions = exceptions;
        let (nodes, edges) = match &graph {
            Some(g) => (node_statuses(g, &labels, &live, uptime), edge_statuses(g)),
            None => (Vec::new(), Vec::new()),
        };
        let last_checkpoint = live.snapshots.last().map(SnapshotStat::from);
        Ok(JobDetail { record, attempt: live.attempt, uptime_s: uptime.as_secs_f64(), nodes, edges, last_checkpoint })
    }

    /// What the metrics show of every job.
    pub fn metrics(&self) -> Vec<JobMetrics> {
        self.lock()
            .values()
            .map(|e| JobMetrics {
                id: e.record.id.clone(),
                name: e.record.name.clone(),
                status: e.record.status,
                recorded_failures: e.record.exceptions.iter().map(|x| x.plugin.clone()).collect(),
                restarts: e.record.restarts + e.run.as_ref().filter(|r| !r.finished).map_or(0, |r| u64::from(r.control.live().attempt)),
                run: e.run.as_ref().map(|r| {
                    let mut live = r.control.live();
                    if r.finished {
                        // Its failures are among the recorded exceptions now.
                        live.failures.clear();
                    }
                    (e.labels.clone(), live)
                }),
            })
            .collect()
    }

    /// Snapshots of a job.
    pub async fn checkpoints(&self, id: &str) -> Result<CheckpointsView, ServerError> {
        let (storage, live, secrets) = self.with_job(id, |e| {
            Ok((self.storage(e.spec()?, &e.record.id)?, e.run.as_ref().map(|r| r.control.live()).unwrap_or_default(), e.secrets.clone()))
        })?;
        let retained = complete_snapshots(&storage)
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?
            .into_iter()
            .map(|(id, dir)| RetainedSnapshot { id, location: secrets.scrub(&storage.url_of(&dir)) })
            .collect();
        Ok(CheckpointsView {
            retained,
            completed: live.snapshots.iter().map(SnapshotStat::from).collect(),
            failed: live.snapshot_failures.iter().map(|(id, reason)| FailedSnapshot { id: *id, reason: secrets.scrub(reason) }).collect(),
        })
    }

    /// Whether an active job uses the plugin version (the id of one that does).
    pub fn uses_plugin(&self, name: &str, version: &str) -> Option<String> {
        self.lock()
            .values()
            .find(|e| e.record.status.is_active() && e.record.plugins.values().any(|p| p.name == name && p.version == version))
            .map(|e| e.record.id.clone())
    }
}
