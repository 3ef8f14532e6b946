//! What the API shows of a job besides its record: its graph with live counters, its
//! snapshots. Built from the job's cached graph and its run's live view.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rivulet_checkpoint::CoordinatorOutcome;
use rivulet_dataflow::{NodeMetrics, NodeRole, PartitionKind, SnapshotKind};
use rivulet_job::{JobGraph, NodeKind};
use rivulet_runtime::Live;
use serde::{Deserialize, Serialize};

use crate::record::JobRecord;

/// A live view of one operator or connector node.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeStatus {
    /// Node id (an operator's uid).
    pub id: String,
    /// Source, operator or sink.
    pub kind: NodeRole,
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
    /// The worker running each subtask, by subtask index (empty when the job runs in
    /// the server's process).
    pub workers: Vec<u32>,
}

/// An edge of a job's graph.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EdgeStatus {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
    /// How records are partitioned.
    pub partitioning: PartitionKind,
    /// The side output it carries (absent for the main output).
    pub tag: Option<String>,
}

/// A checkpoint or savepoint completed by the current server process.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotStat {
    /// Id.
    pub id: u64,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
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

impl From<&CoordinatorOutcome> for SnapshotStat {
    fn from(s: &CoordinatorOutcome) -> Self {
        SnapshotStat {
            id: s.id,
            kind: s.kind,
            location: s.location.clone(),
            bytes: s.bytes,
            total_bytes: s.total_bytes,
            duration_ms: s.duration_ms,
            latency_ms: s.latency_ms,
            at_ms: s.completed_ms,
        }
    }
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
    /// Complete snapshots in storage, newest first.
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

/// A node as the metrics name it: id, role, and the plugin version of an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLabel {
    /// Node id.
    pub id: String,
    /// Source, operator or sink.
    pub role: NodeRole,
    /// `name@version` of an operator's plugin.
    pub plugin: Option<String>,
}

/// The labels of `graph`'s nodes, in graph order.
pub fn node_labels(graph: &JobGraph, record: &JobRecord) -> Vec<NodeLabel> {
    graph
        .nodes
        .iter()
        .map(|n| NodeLabel {
            id: n.id.clone(),
            role: n.kind.role(),
            plugin: match &n.kind {
                NodeKind::Operator { spec, .. } => record.plugins.get(&spec.uid).map(|p| p.label()),
                _ => None,
            },
        })
        .collect()
}

/// The nodes of `graph` with the live counters of its run (`uptime` long).
pub fn node_statuses(graph: &JobGraph, labels: &[NodeLabel], live: &Live, uptime: Duration) -> Vec<NodeStatus> {
    graph
        .nodes
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (node, label))| {
            let m = live.metrics.get(i);
            let load = |f: fn(&NodeMetrics) -> &AtomicU64| m.map_or(0, |m| f(m).load(Ordering::Relaxed));
            let secs = uptime.as_secs_f64().max(1e-3) * f64::from(node.parallelism);
            NodeStatus {
                id: node.id.clone(),
                kind: label.role,
                parallelism: node.parallelism,
                plugin: label.plugin.clone(),
                records_in: load(|m| &m.records_in),
                records_out: load(|m| &m.records_out),
                late_records: load(|m| &m.late_records),
                dead_letter_records: load(|m| &m.dead_letters),
                watermark: m.map(|m| m.watermark.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN),
                backpressure: (load(|m| &m.backpressure_ns) as f64 / 1e9 / secs).min(1.0),
                guest_ms: load(|m| &m.guest_ns) / 1_000_000,
                memory_bytes: load(|m| &m.memory_bytes),
                workers: live.placement.get(i).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// The edges of `graph`.
pub fn edge_statuses(graph: &JobGraph) -> Vec<EdgeStatus> {
    graph
        .edges
        .iter()
        .map(|e| EdgeStatus {
            from: graph.nodes[e.from].id.clone(),
            to: graph.nodes[e.to].id.clone(),
            partitioning: e.partitioning.kind(),
            tag: e.tag.clone(),
        })
        .collect()
}
