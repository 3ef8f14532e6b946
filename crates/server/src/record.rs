//! What the server keeps about a job (`jobs/<id>.json`), and what its API returns of it.

use std::collections::BTreeMap;

use rivulet_dataflow::now_ms;
use rivulet_job::secrets::Secrets;
use rivulet_state::BackendKind;
use serde::{Deserialize, Serialize};

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
    /// Not resumed: the server died again and again soon after resuming it (a crash
    /// loop); `error` says why. Its checkpoints are kept.
    Suspended,
}

impl JobStatus {
    /// Whether the job still runs (or will, after a server restart).
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Running | JobStatus::Upgrading)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobStatus::Running => "running",
            JobStatus::Upgrading => "upgrading",
            JobStatus::Finished => "finished",
            JobStatus::Stopped => "stopped",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Failed => "failed",
            JobStatus::Suspended => "suspended",
        })
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
    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// Submitted and started.
    Submitted,
    /// Started again.
    Started,
    /// Resumed after a server restart.
    Resumed,
    /// Operator plugins swapped through a savepoint.
    Swap,
    /// A swap or rescale rolled back to the versions before it.
    Rollback,
    /// Parallelism changed through a savepoint.
    Rescale,
    /// A savepoint completed.
    Savepoint,
    /// Stopped with a savepoint.
    Stopped,
    /// Stopped without a savepoint.
    Cancelled,
    /// Its bounded input is done.
    Finished,
    /// Failed beyond its restart strategy.
    Failed,
    /// Suspended instead of resumed after repeated server deaths.
    Suspended,
}

/// One entry of a job's history.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEvent {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// What happened.
    pub kind: HistoryKind,
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
    pub fn new(kind: HistoryKind, versions: BTreeMap<String, String>) -> Self {
        HistoryEvent { at_ms: now_ms(), kind, versions, from_versions: None, savepoint: None, downtime_ms: None, parallelism: None, detail: None }
    }
}

/// Task failures a job record keeps (the newest; older ones are counted).
pub const MAX_EXCEPTIONS: usize = 100;

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

impl From<&rivulet_runtime::FailureRecord> for ExceptionInfo {
    fn from(f: &rivulet_runtime::FailureRecord) -> Self {
        ExceptionInfo { at_ms: f.at_ms, attempt: f.attempt, operator: f.operator.clone(), plugin: f.plugin.clone(), reason: f.reason.clone() }
    }
}

/// Where a savepoint asked for through the API is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SavepointStatus {
    /// Asked for, not complete yet.
    InProgress,
    /// Complete: `location` says where.
    Completed,
    /// Failed: `error` says why.
    Failed,
}

/// A savepoint asked for through the API.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavepointInfo {
    /// Trigger id.
    pub trigger: String,
    /// The job.
    pub job: String,
    /// Where it is.
    pub status: SavepointStatus,
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
    /// Task failures, the newest [`MAX_EXCEPTIONS`].
    pub exceptions: Vec<ExceptionInfo>,
    /// Older failures no longer kept.
    #[serde(default)]
    pub exceptions_dropped: u64,
    /// Restarts after task failures, over every run of the job (the run in progress
    /// adds its own: see `JobDetail.attempt`).
    #[serde(default)]
    pub restarts: u64,
    /// Server starts in a row that resumed this job and did not see it run for a
    /// minute (reset once it has): a crash loop suspends the job.
    #[serde(default)]
    pub quick_resumes: u32,
    /// The server last stopped with the job active through a graceful shutdown (SIGTERM,
    /// SIGINT), not a crash: the next start resumes it without counting that start in
    /// `quick_resumes`, and clears this. Never set in what the API returns.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schema(ignore)]
    pub shut_down_gracefully: bool,
    /// Savepoints asked for through the API.
    pub savepoints: Vec<SavepointInfo>,
    /// Why the job failed.
    pub error: Option<String>,
}

impl JobRecord {
    /// Plugin labels per operator uid.
    pub fn versions(&self) -> BTreeMap<String, String> {
        versions(&self.plugins)
    }

    /// Keep `failures` (after those kept), dropping the oldest beyond [`MAX_EXCEPTIONS`].
    pub fn add_exceptions(&mut self, failures: impl IntoIterator<Item = ExceptionInfo>) {
        self.exceptions.extend(failures);
        let over = self.exceptions.len().saturating_sub(MAX_EXCEPTIONS);
        if over > 0 {
            self.exceptions.drain(..over);
            self.exceptions_dropped += over as u64;
        }
    }

    /// Record `event`.
    pub fn push(&mut self, event: HistoryEvent) {
        self.history.push(event);
    }

    /// The newest swap or rescale event.
    pub fn last_change_mut(&mut self) -> Option<&mut HistoryEvent> {
        self.history.iter_mut().rev().find(|h| matches!(h.kind, HistoryKind::Swap | HistoryKind::Rescale))
    }
}

impl JobRecord {
    /// The record as shown (the API, the web UI): the spec with its secret values masked
    /// (`******`; references such as `${env:NAME}` kept) and every text about the job —
    /// exceptions, the error, history details, savepoint errors — scrubbed of them. The
    /// stored record keeps the spec as submitted: the job needs it to run.
    pub fn redacted(&self, secrets: &Secrets) -> JobRecord {
        JobRecord {
            spec: rivulet_job::secrets::redact_json(&self.spec),
            history: self.history.iter().map(|h| HistoryEvent { detail: h.detail.as_deref().map(|d| secrets.scrub(d)), ..h.clone() }).collect(),
            exceptions: self.exceptions.iter().map(|x| x.redacted(secrets)).collect(),
            savepoints: self.savepoints.iter().map(|s| s.redacted(secrets)).collect(),
            error: self.error.as_deref().map(|e| secrets.scrub(e)),
            ..self.clone()
        }
    }
}

impl ExceptionInfo {
    /// The failure as shown: its reason scrubbed of the job's secret values.
    pub fn redacted(&self, secrets: &Secrets) -> ExceptionInfo {
        ExceptionInfo { reason: secrets.scrub(&self.reason), ..self.clone() }
    }
}

impl SavepointInfo {
    /// The savepoint as shown: its error scrubbed of the job's secret values.
    pub fn redacted(&self, secrets: &Secrets) -> SavepointInfo {
        SavepointInfo { error: self.error.as_deref().map(|e| secrets.scrub(e)), ..self.clone() }
    }
}

/// Plugin labels per operator uid.
pub fn versions(p: &BTreeMap<String, PluginRef>) -> BTreeMap<String, String> {
    p.iter().map(|(k, v)| (k.clone(), v.label())).collect()
}

/// What a swap or rescale ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeResult {
    /// The new version passed its probation (its first checkpoint, or the end of input).
    Swapped,
    /// The new version failed on probation; the old one runs again from the same savepoint.
    RolledBack,
    /// Still on probation after 5 minutes (no checkpoint of the new version yet): it may
    /// still roll back.
    Pending,
    /// Only checked (`dry_run`): nothing changed.
    DryRunOk,
}

/// What a swap did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpgradeOutcome {
    /// What it ended in.
    pub result: UpgradeResult,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_the_newest_exceptions_and_counts_the_rest() {
        let mut r: JobRecord = serde_json::from_value(serde_json::json!({
            "id": "j", "name": "n", "spec": {}, "plugins": {}, "parallelism": null, "state_backend": "memory", "status": "running",
            "created_ms": 0, "initial_savepoint": null, "allow_non_restored_state": false, "history": [], "exceptions": [],
            "savepoints": [], "error": null
        }))
        .expect("a record written before the counters existed still loads");
        let ex = |i: u32| ExceptionInfo { at_ms: 0, attempt: i, operator: None, plugin: None, reason: format!("failure {i}") };
        r.add_exceptions((0..MAX_EXCEPTIONS as u32 + 30).map(ex));
        assert_eq!(r.exceptions.len(), MAX_EXCEPTIONS);
        assert_eq!(r.exceptions_dropped, 30);
        assert_eq!(r.exceptions[0].attempt, 30, "the oldest go first");
    }
}
