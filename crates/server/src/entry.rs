//! One job as the manager holds it: its record, its parsed spec and graph (cached, so
//! views and metrics never re-parse), its current run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rivulet_job::secrets::Secrets;
use rivulet_job::{JobGraph, JobSpec};
use rivulet_plugin::GuestLog;
use rivulet_runtime::JobControl;
use tokio::sync::watch;

use crate::ServerError;
use crate::record::{ExceptionInfo, JobRecord, PluginRef};
use crate::registry::PluginRegistry;
use crate::view::{NodeLabel, node_labels};

/// A run of a job in the background.
pub(crate) struct RunHandle {
    /// The run's handle.
    pub control: Arc<JobControl>,
    /// Becomes `true` when the run (with its restarts) has ended.
    pub ended: watch::Receiver<bool>,
    /// The run has ended and its failures are in the record's exceptions.
    pub finished: bool,
    /// When it started.
    pub started: Instant,
}

/// A job of the manager.
pub(crate) struct JobEntry {
    /// What is persisted.
    pub record: JobRecord,
    /// The record's spec, parsed (`Err`: the stored spec does not parse; the job can be
    /// listed, not run).
    pub spec: Result<JobSpec, String>,
    /// The graph of the record's plugins and parallelism (`Err`: it cannot be built now,
    /// e.g. a plugin is no longer registered).
    pub graph: Result<Arc<JobGraph>, String>,
    /// Metric labels of the graph's nodes.
    pub labels: Vec<NodeLabel>,
    /// The current (or last) run.
    pub run: Option<RunHandle>,
    /// What its guests logged, across runs.
    pub log: Arc<GuestLog>,
    /// Held by a stop, upgrade or rescale: one at a time per job.
    pub op: Arc<tokio::sync::Mutex<()>>,
    /// Where relative paths of the spec resolve (the server's files directory).
    pub base_dir: PathBuf,
    /// The secret values of its spec: masked and scrubbed from what the API shows and
    /// the server logs.
    pub secrets: Secrets,
}

/// Parse a stored spec.
pub(crate) fn parse_spec(record: &JobRecord) -> Result<JobSpec, ServerError> {
    serde_json::from_value(record.spec.clone()).map_err(|e| ServerError::Internal(format!("stored spec of job {}: {e}", record.id)))
}

/// The graph of `spec` with `plugins` (by operator uid) and `parallelism`.
pub(crate) fn build_graph(
    registry: &PluginRegistry,
    spec: &JobSpec,
    plugins: &BTreeMap<String, PluginRef>,
    parallelism: Option<u32>,
    base_dir: &Path,
) -> Result<JobGraph, ServerError> {
    let mut spec = spec.clone();
    for op in &mut spec.operators {
        let p = plugins.get(&op.uid).ok_or_else(|| ServerError::Internal(format!("no plugin for operator '{}'", op.uid)))?;
        let meta = registry
            .get(&p.name, &p.version)
            .ok_or_else(|| ServerError::Conflict(format!("plugin {} of operator '{}' is no longer registered", p.label(), op.uid)))?;
        op.plugin = registry.path_of(&meta).display().to_string();
    }
    JobGraph::build(&spec, base_dir, parallelism).map_err(|e| ServerError::BadRequest(e.to_string()))
}

impl JobEntry {
    /// An entry for `record` (its spec parsed and its graph built now).
    /// Relative paths of its spec resolve against `base_dir`.
    pub fn new(record: JobRecord, registry: &PluginRegistry, base_dir: &Path) -> Self {
        let spec = parse_spec(&record).map_err(|e| e.to_string());
        let secrets = Secrets::of_json(&record.spec, base_dir);
        let mut entry = JobEntry {
            record,
            spec,
            graph: Err(String::new()),
            labels: Vec::new(),
            run: None,
            log: Default::default(),
            op: Default::default(),
            base_dir: base_dir.to_path_buf(),
            secrets,
        };
        entry.rebuild(registry);
        entry
    }

    /// The parsed spec.
    pub fn spec(&self) -> Result<&JobSpec, ServerError> {
        self.spec.as_ref().map_err(|e| ServerError::Internal(e.clone()))
    }

    /// Rebuild the cached graph after the plugins or the parallelism changed.
    pub fn rebuild(&mut self, registry: &PluginRegistry) {
        self.graph = match &self.spec {
            Ok(spec) => {
                build_graph(registry, spec, &self.record.plugins, self.record.parallelism, &self.base_dir).map(Arc::new).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.clone()),
        };
        self.labels = match &self.graph {
            Ok(g) => node_labels(g, &self.record),
            Err(_) => Vec::new(),
        };
    }

    /// Run `plugins` at `parallelism` from now on.
    pub fn set_version(&mut self, plugins: BTreeMap<String, PluginRef>, parallelism: Option<u32>, registry: &PluginRegistry) {
        self.record.plugins = plugins;
        self.record.parallelism = parallelism;
        self.rebuild(registry);
    }

    /// The graph, or why there is none.
    pub fn graph(&self) -> Result<Arc<JobGraph>, ServerError> {
        self.graph.clone().map_err(ServerError::Conflict)
    }

    /// Recorded exceptions plus those of the run in progress.
    pub fn exceptions(&self) -> Vec<ExceptionInfo> {
        let mut all = self.record.exceptions.clone();
        if let Some(r) = self.run.as_ref().filter(|r| !r.finished) {
            all.extend(r.control.live().failures.iter().map(ExceptionInfo::from));
        }
        all
    }

    /// The record as the API shows it: secrets masked and scrubbed.
    pub fn shown(&self) -> JobRecord {
        self.record.redacted(&self.secrets)
    }

    /// [`JobEntry::exceptions`] as the API shows them: scrubbed of the job's secrets.
    pub fn shown_exceptions(&self) -> Vec<ExceptionInfo> {
        self.exceptions().iter().map(|x| x.redacted(&self.secrets)).collect()
    }

    /// What its guests logged, as the API shows it: scrubbed of the job's secrets.
    pub fn shown_log(&self) -> Vec<rivulet_plugin::GuestLogLine> {
        let mut lines = self.log.lines();
        if !self.secrets.is_empty() {
            for l in &mut lines {
                l.message = self.secrets.scrub(&l.message);
            }
        }
        lines
    }

    /// The running attempt's handle, if the job runs.
    pub fn running(&self) -> Option<&RunHandle> {
        self.run.as_ref().filter(|r| !r.finished)
    }
}
