//! The local runtime: turns a [`JobGraph`] into tasks on tokio — sources, chains of
//! operators, sinks — connected by bounded channels, and runs them to completion.
//!
//! Every subtask is a tokio task. Channels are bounded (backpressure); records cross
//! them and the Wasm boundary in encoded batches. Forward edges between operators of
//! equal parallelism are chained into one task (no channel hop), as in Flink.

mod channel;
mod control;
mod exchange;
mod metrics;
mod operator;
pub mod window;

pub use channel::{DownstreamGone, Envelope, GateEvent, InputGate, InputWatermarks, Message, Target, WatermarkChange};
pub use control::{JobControl, Live, SavepointReply, SavepointRequest};
pub use exchange::{ExchangeError, OutputEdge};
pub use metrics::NodeMetrics;
pub(crate) use operator::{blocking, now_ms};

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::checkpoint::subtask::{SubtaskMeta, UploadedFiles};
use crate::checkpoint::{
    CheckpointConfig, CheckpointError, Coordinator, CoordinatorOutcome, Ledger, RestorePoint, SnapshotKind, TaskCheckpointing, TaskKey, TaskReport,
    apply, commit_pending, find_restore_point, native_fast_path, open_snapshot, write_db_files, write_entries,
};
use crate::connectors::{FileSource, Generator, LineSink, SinkTarget, SourceCheckpointing, SourceOutput, prepare_sink_dir};
use crate::error::{FailureRecord, GuestFailure, JobError};
use crate::job::{JobGraph, NodeKind, Partition, RestartSpec, SinkSpec, SourceSpec, spec_resolve};
use crate::plugin::{InstanceSetup, Limits, OperatorInstance, Plugin, PluginEngine};
use crate::state::{BackendKind, KeyGroupRange, KeyedStateStore};
use operator::{ChainTask, ChainedOperator};
use window::WindowOperator;

/// Batches a channel holds before its sender waits.
const CHANNEL_CAPACITY: usize = 4;

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
    /// Where RocksDB keeps its files (a fresh directory per run below it).
    pub data_dir: PathBuf,
    /// Print progress on stderr every couple of seconds.
    pub progress: bool,
    /// Default limits for guests (operators may override in the spec).
    pub limits: Limits,
    /// Checkpointing (`None`: none; sinks commit at end of input).
    pub checkpoint: Option<CheckpointConfig>,
    /// Where to start from.
    pub restore: RestoreFrom,
    /// Drop state of operators the job no longer has instead of failing.
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
        }
    }
}

/// What a finished job did.
#[derive(Debug, Clone, Default)]
pub struct JobReport {
    /// Per node: (id, records in, records out, late records).
    pub nodes: Vec<(String, u64, u64, u64)>,
    /// Wall time.
    pub elapsed: Duration,
    /// Snapshots completed in this run.
    pub snapshots: Vec<CoordinatorOutcome>,
    /// Snapshots that failed in this run: (id, reason).
    pub snapshot_failures: Vec<(u64, String)>,
    /// Where the run started from.
    pub restored_from: Option<String>,
    /// Newer snapshots skipped on restore because they did not verify.
    pub restore_skipped: Vec<String>,
    /// The job stopped with this savepoint.
    pub stopped_with_savepoint: Option<String>,
    /// Savepoints taken while running.
    pub savepoints: Vec<String>,
    /// Failures the job restarted from.
    pub failures: Vec<FailureRecord>,
    /// The controller cancelled the run.
    pub cancelled: bool,
}

/// Run `graph`, restarting from the latest checkpoint after a task failure as `restart`
/// allows (attempts, fixed delay). Every failure is recorded in the report.
pub async fn run_job_with_restarts(
    graph: &JobGraph,
    engine: &Arc<PluginEngine>,
    opts: &RunOptions,
    restart: Option<&RestartSpec>,
) -> Result<JobReport, JobError> {
    let mut opts = opts.clone();
    // The handle also counts the snapshots each attempt completes (restart decisions).
    let control = opts.control.get_or_insert_with(JobControl::new).clone();
    let result = run_with_restarts(graph, engine, &mut opts, restart).await;
    control.close();
    result
}

async fn run_with_restarts(
    graph: &JobGraph,
    engine: &Arc<PluginEngine>,
    opts: &mut RunOptions,
    restart: Option<&RestartSpec>,
) -> Result<JobReport, JobError> {
    let mut failures = Vec::new();
    let max = restart.map_or(0, |r| r.attempts);
    let snapshots_before = opts.control.as_ref().map_or(0, |c| c.live().snapshots.len());
    loop {
        match run_job(graph, engine, opts).await {
            Ok(mut report) => {
                report.failures = failures;
                return Ok(report);
            }
            Err(e) => {
                let (operator, plugin) = e.culprit();
                tracing::error!(attempt = opts.attempt, error = %e, "job failed");
                let record = FailureRecord { attempt: opts.attempt, operator, plugin, reason: e.to_string(), at_ms: operator::now_ms() };
                if let Some(c) = &opts.control {
                    c.update(|l| l.failures.push(record.clone()));
                }
                failures.push(record);
                if !e.is_restartable() || opts.attempt >= max || opts.control.as_ref().is_some_and(|c| c.cancelled()) {
                    return Err(e);
                }
                let completed_now = opts.control.as_ref().map_or(0, |c| c.live().snapshots.len());
                if opts.probation {
                    if completed_now == snapshots_before {
                        return Err(e);
                    }
                    opts.probation = false;
                }
                let delay = Duration::from_millis(restart.map_or(0, |r| r.delay_ms));
                let from_latest = opts.checkpoint.is_some() && completed_now > snapshots_before;
                eprintln!(
                    "[rivulet] attempt {} failed: {e}; restarting in {} ms from {} ({} of {max} restarts)",
                    opts.attempt,
                    delay.as_millis(),
                    if from_latest || opts.restore == RestoreFrom::Latest { "the latest checkpoint" } else { "where the run started" },
                    opts.attempt + 1
                );
                tokio::time::sleep(delay).await;
                opts.attempt += 1;
                // Restart from the newest snapshot this run completed; when it completed
                // none, from where the run started (a fresh start discards the failed
                // attempt's uncommitted output; a savepoint is restored again). Never from
                // an older snapshot than one whose output was committed.
                if from_latest {
                    opts.restore = RestoreFrom::Latest;
                }
            }
        }
    }
}

/// Restore the operators `uids` of `graph` from the snapshot at `location` into
/// throwaway in-memory instances — state versions compared, `migrate-state` run where
/// they differ — without opening them or running anything: a dry run of a restore.
pub async fn dry_run_restore(graph: &JobGraph, engine: &Arc<PluginEngine>, location: &str, uids: &[String]) -> Result<(), JobError> {
    let (_, point) = open_snapshot(location, &graph.name).await?;
    let dir = std::env::temp_dir().join(format!("rivulet-dry-run-{}-{}", std::process::id(), operator::now_ms()));
    let opts = RunOptions::new(BackendKind::Memory, dir.clone());
    let result = async {
        for node in &graph.nodes {
            let NodeKind::Operator { plugin_path, spec } = &node.kind else { continue };
            if !uids.contains(&spec.uid) {
                continue;
            }
            let (e, path) = (engine.clone(), plugin_path.clone());
            let plugin = tokio::task::spawn_blocking(move || e.load_file(&path)).await.map_err(|e| JobError::Internal(e.to_string()))??;
            for t in 0..node.parallelism {
                let metrics = Arc::new(NodeMetrics::new(&node.id));
                start_operator(graph, engine, &opts, Some(&point), &dir, spec, plugin.clone(), t, node.parallelism, Vec::new(), metrics, false)
                    .await?;
            }
        }
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Find and verify the snapshot a run starts from.
async fn restore_point(graph: &JobGraph, opts: &RunOptions) -> Result<Option<RestorePoint>, JobError> {
    let point = match &opts.restore {
        RestoreFrom::Nothing => None,
        RestoreFrom::Latest => match &opts.checkpoint {
            Some(c) => find_restore_point(&c.storage, &graph.name).await?,
            None => {
                return Err(CheckpointError::Mismatch("--restore latest needs a checkpoint location (--checkpoint-dir)".into()).into());
            }
        },
        RestoreFrom::Path(p) => Some(open_snapshot(p, &graph.name).await?.1),
    };
    let Some(point) = point else { return Ok(None) };
    if point.manifest.max_parallelism != graph.max_parallelism {
        return Err(CheckpointError::Mismatch(format!(
            "the snapshot has {} key groups (max_parallelism) and the job {}; key groups cannot change",
            point.manifest.max_parallelism, graph.max_parallelism
        ))
        .into());
    }
    let uids: Vec<&str> =
        graph.nodes.iter().filter_map(|n| if let NodeKind::Operator { spec, .. } = &n.kind { Some(spec.uid.as_str()) } else { None }).collect();
    for uid in point.operator_uids() {
        if !uids.contains(&uid) {
            if opts.allow_non_restored_state {
                tracing::warn!(operator = uid, "dropping state of an operator the job no longer has");
                eprintln!("[rivulet] dropping the state of operator '{uid}' (not in the job; --allow-non-restored-state)");
            } else {
                return Err(CheckpointError::Mismatch(format!(
                    "{} holds state for operator uid '{uid}', which the job does not have; pass --allow-non-restored-state to drop it",
                    point.location
                ))
                .into());
            }
        }
    }
    Ok(Some(point))
}

/// Run `graph` to completion (bounded inputs), until it stops with a savepoint, or until
/// it fails.
pub async fn run_job(graph: &JobGraph, engine: &Arc<PluginEngine>, opts: &RunOptions) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let n = graph.nodes.len();
    let mut report = JobReport::default();

    // Load every plugin first: a bad component fails the job before anything runs.
    let mut plugins: HashMap<usize, Arc<Plugin>> = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if let NodeKind::Operator { plugin_path, spec } = &node.kind {
            let engine = engine.clone();
            let path = plugin_path.clone();
            let plugin =
                tokio::task::spawn_blocking(move || engine.load_file(&path)).await.map_err(|e| JobError::Internal(e.to_string()))?.map_err(|e| {
                    tracing::error!(operator = %spec.uid, error = %e, "plugin rejected");
                    e
                })?;
            plugins.insert(i, plugin);
        }
    }

    let point = restore_point(graph, opts).await?;
    if let Some(p) = &point {
        report.restored_from = Some(p.location.clone());
        report.restore_skipped = p.skipped.clone();
        eprintln!("[rivulet] restoring from {}", p.location);
        // Transactions of the restored snapshot are committed; the rest is discarded.
        commit_pending(&p.manifest.sinks)?;
        if p.manifest.finished {
            eprintln!("[rivulet] the job had already finished at {}; its output is committed", p.location);
            report.elapsed = started.elapsed();
            return Ok(report);
        }
    }
    for node in &graph.nodes {
        if let NodeKind::Sink(SinkSpec::Objects { url, .. }) = &node.kind {
            let keep = |sub: u32| point.as_ref().and_then(|p| p.sink(&node.id, sub)).map_or(0, |e| e.next_seq);
            let keep: &(dyn Fn(u32) -> u64 + Sync) = &keep;
            crate::connectors::objects::prepare(url, point.is_some().then_some(keep))
                .await
                .map_err(|e| JobError::Connector { node: "sink", id: node.id.clone(), message: format!("cannot prepare {url}: {e}") })?;
        }
        if let NodeKind::Sink(spec @ (SinkSpec::File { .. } | SinkSpec::Kafka { .. } | SinkSpec::Objects { .. })) = &node.kind {
            let dir = sink_dir(graph, opts, spec);
            let keep = |sub: u32| point.as_ref().and_then(|p| p.sink(&node.id, sub)).map_or(0, |e| e.next_seq);
            let keep: &dyn Fn(u32) -> u64 = &keep;
            prepare_sink_dir(&dir, point.is_some().then_some(keep)).map_err(|e| JobError::Connector {
                node: "sink",
                id: node.id.clone(),
                message: format!("cannot prepare {}: {e}", dir.display()),
            })?;
        }
    }

    // Checkpointing: reports from tasks, barrier channels into sources.
    let ledger = Arc::new(Ledger::default());
    if let Some(p) = &point {
        ledger.complete(p.manifest.id);
    }
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<TaskReport>();
    let task_ckpt = opts.checkpoint.as_ref().map(|c| TaskCheckpointing {
        storage: c.storage.clone(),
        reports: report_tx.clone(),
        ledger: ledger.clone(),
        incremental: c.incremental && opts.state_backend == BackendKind::Rocksdb,
    });
    let mut barrier_senders = Vec::new();
    let mut expected: BTreeSet<TaskKey> = BTreeSet::new();

    // Chaining: an operator joins its producer's task when the producer's only output
    // is a forward edge into it and it has no other input.
    let mut chained_into: Vec<Option<usize>> = vec![None; n];
    for (to, node) in graph.nodes.iter().enumerate() {
        if !matches!(node.kind, NodeKind::Operator { .. }) {
            continue;
        }
        let ins: Vec<_> = graph.inputs(to).collect();
        if let [e] = ins.as_slice() {
            let from = e.from;
            let producer_outs = graph.outputs(from).count();
            if e.partition == Partition::Forward
                && e.tag.is_none()
                && producer_outs == 1
                && matches!(graph.nodes[from].kind, NodeKind::Operator { .. })
                && graph.nodes[from].parallelism == node.parallelism
            {
                chained_into[to] = Some(from);
            }
        }
    }
    let is_chained_edge = |from: usize, to: usize| chained_into[to] == Some(from);

    // Input queues for tasks that receive: chain heads and sinks.
    let mut senders: HashMap<(usize, u32), mpsc::Sender<Envelope>> = HashMap::new();
    let mut receivers: HashMap<(usize, u32), mpsc::Receiver<Envelope>> = HashMap::new();
    let mut channel_count: HashMap<(usize, u32), usize> = HashMap::new();
    let mut channel_id: HashMap<(usize, u32, u32), usize> = HashMap::new(); // (edge, from subtask, to subtask)
    for (to, node) in graph.nodes.iter().enumerate() {
        if matches!(node.kind, NodeKind::Source(_)) || chained_into[to].is_some() {
            continue;
        }
        for t in 0..node.parallelism {
            let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
            senders.insert((to, t), tx);
            receivers.insert((to, t), rx);
        }
        for (ei, e) in graph.edges.iter().enumerate().filter(|(_, e)| e.to == to) {
            let up = graph.nodes[e.from].parallelism;
            for t in 0..node.parallelism {
                for s in 0..up {
                    if e.partition == Partition::Forward && s != t {
                        continue;
                    }
                    let c = channel_count.entry((to, t)).or_insert(0);
                    channel_id.insert((ei, s, t), *c);
                    *c += 1;
                }
            }
        }
    }

    let outputs_of = |node: usize, s: u32| -> Vec<OutputEdge> {
        let mut outs = Vec::new();
        for (ei, e) in graph.edges.iter().enumerate().filter(|(_, e)| e.from == node) {
            if is_chained_edge(e.from, e.to) {
                continue;
            }
            let down = graph.nodes[e.to].parallelism;
            let mut targets = Vec::new();
            for t in 0..down {
                if let (Some(tx), Some(&channel)) = (senders.get(&(e.to, t)), channel_id.get(&(ei, s, t))) {
                    targets.push(Target { tx: tx.clone(), channel });
                }
            }
            outs.push(OutputEdge::new(e.tag.clone(), e.partition.clone(), targets, graph.max_parallelism, graph.nodes[e.to].id.clone()));
        }
        outs
    };

    let metrics: Vec<Arc<NodeMetrics>> = graph.nodes.iter().map(|nd| Arc::new(NodeMetrics::new(&nd.id))).collect();
    if let Some(c) = &opts.control {
        c.update(|l| {
            l.metrics = metrics.clone();
            l.attempt = opts.attempt;
            l.restored_from = report.restored_from.clone();
        });
    }
    let run_dir = opts.data_dir.join(format!("{}-{}-{}-{}", sanitize(&graph.name), std::process::id(), operator::now_ms(), opts.attempt));
    let mut tasks: JoinSet<Result<(), JobError>> = JoinSet::new();

    for (i, node) in graph.nodes.iter().enumerate() {
        match &node.kind {
            NodeKind::Source(spec) => {
                for s in 0..node.parallelism {
                    let ooo = spec.event_time().map(|et| et.max_out_of_orderness_ms as i64);
                    let every = spec.event_time().and_then(|et| et.watermark_every).unwrap_or(graph.batch_size);
                    let checkpointing = task_ckpt.as_ref().map(|ctx| {
                        let (tx, rx) = mpsc::unbounded_channel();
                        barrier_senders.push(tx);
                        SourceCheckpointing { barriers: rx, ctx: ctx.clone(), subtask: s, parallelism: node.parallelism }
                    });
                    expected.insert(TaskKey { kind: 0, id: node.id.clone(), subtask: s });
                    // Kafka sources merge every subtask's offsets (they rescale by partition).
                    let start = match &point {
                        Some(_) if matches!(spec, SourceSpec::Kafka { .. }) => None,
                        Some(p) => p.source(&node.id, s, node.parallelism)?.map(|e| e.position.clone()),
                        None => None,
                    };
                    let out = SourceOutput::new(&node.id, outputs_of(i, s), graph.batch_size.min(every), ooo, metrics[i].clone())
                        .with_checkpointing(checkpointing);
                    match spec {
                        SourceSpec::File { id, path, format, csv, event_time } => {
                            let src = FileSource {
                                id: id.clone(),
                                path: spec_resolve(&graph.base_dir, path),
                                format: *format,
                                delimiter: csv.as_ref().and_then(|c| c.delimiter).map_or(b',', |c| c as u8),
                                time_field: event_time.as_ref().map(|et| et.field.clone().unwrap_or_else(|| "timestamp".into())),
                                start,
                            };
                            tasks.spawn(src.run(out));
                        }
                        SourceSpec::Objects { id, url, format, event_time } => {
                            let src = crate::connectors::ObjectSource {
                                id: id.clone(),
                                url: url.clone(),
                                format: *format,
                                time_field: event_time.as_ref().map(|et| et.field.clone().unwrap_or_else(|| "timestamp".into())),
                                start,
                            };
                            tasks.spawn(src.run(out));
                        }
                        SourceSpec::Kafka {
                            id,
                            bootstrap_servers,
                            topic,
                            start: kstart,
                            start_timestamp_ms,
                            group_id,
                            bounded,
                            format,
                            event_time,
                            properties,
                            ..
                        } => {
                            let restored = match &point {
                                Some(p) => Some(p.source_entries(&node.id).into_iter().map(|e| e.position.clone()).collect()),
                                None => None,
                            };
                            let src = crate::connectors::KafkaSource {
                                id: id.clone(),
                                job: graph.name.clone(),
                                bootstrap: bootstrap_servers.clone(),
                                topic: topic.clone(),
                                start: *kstart,
                                start_timestamp_ms: *start_timestamp_ms,
                                group_id: group_id.clone(),
                                bounded: *bounded,
                                format: *format,
                                time: match event_time.as_ref().and_then(|et| et.field.clone()) {
                                    Some(f) => crate::connectors::KafkaTime::Field(f),
                                    None => crate::connectors::KafkaTime::RecordTimestamp,
                                },
                                idle_timeout: event_time.as_ref().and_then(|et| et.idle_timeout_ms).map(Duration::from_millis),
                                properties: properties.clone(),
                                subtask: s,
                                parallelism: node.parallelism,
                                restored,
                            };
                            tasks.spawn(src.run(out));
                        }
                        SourceSpec::Generator { kind, count, rate, keys, interval_ms, seed, event_time, .. } => {
                            let g = Generator {
                                kind: *kind,
                                count: *count,
                                rate: *rate,
                                keys: keys.unwrap_or(100),
                                interval_ms: interval_ms.unwrap_or(1),
                                seed: seed.unwrap_or(0),
                                subtask: s,
                                parallelism: node.parallelism,
                                idle_timeout: event_time.as_ref().and_then(|et| et.idle_timeout_ms).map(Duration::from_millis),
                                start,
                            };
                            tasks.spawn(g.run(out));
                        }
                    }
                }
            }
            NodeKind::Operator { .. } if chained_into[i].is_none() => {
                // Follow the chain from this head.
                let mut members = vec![i];
                while let Some(next) = (0..n).find(|&j| chained_into[j] == Some(*members.last().unwrap_or(&i))) {
                    members.push(next);
                }
                for t in 0..node.parallelism {
                    let mut ops = Vec::new();
                    let mut all_finished = true;
                    for &m in &members {
                        let NodeKind::Operator { spec, .. } = &graph.nodes[m].kind else {
                            continue;
                        };
                        let par = graph.nodes[m].parallelism;
                        expected.insert(TaskKey { kind: 1, id: spec.uid.clone(), subtask: t });
                        let plugin = plugins.get(&m).cloned().ok_or_else(|| JobError::Internal("plugin not loaded".into()))?;
                        let op = start_operator(
                            graph,
                            engine,
                            opts,
                            point.as_ref(),
                            &run_dir,
                            spec,
                            plugin,
                            t,
                            par,
                            outputs_of(m, t),
                            metrics[m].clone(),
                            true,
                        )
                        .await?;
                        all_finished &= op.1;
                        ops.push(op.0);
                    }
                    let rx = receivers.remove(&(i, t)).ok_or_else(|| JobError::Internal("missing input queue".into()))?;
                    let channels = channel_count.get(&(i, t)).copied().unwrap_or(0);
                    let mut inputs = InputWatermarks::new(channels);
                    if let Some(head) = ops.first() {
                        inputs.restore(head.restored_watermark());
                    }
                    tasks.spawn(
                        ChainTask {
                            ops,
                            input: InputGate::new(rx, channels),
                            inputs,
                            checkpointing: task_ckpt.clone(),
                            restored_finished: point.is_some() && all_finished,
                            last_barrier: 0,
                        }
                        .run(),
                    );
                }
            }
            NodeKind::Operator { .. } => {}
            NodeKind::Sink(spec) => {
                let target = match spec {
                    SinkSpec::Kafka { delivery: crate::job::KafkaDelivery::AtLeastOnce, bootstrap_servers, topic, key_field, properties, .. } => {
                        SinkTarget::KafkaDirect(crate::connectors::KafkaDirectTarget {
                            bootstrap: bootstrap_servers.clone(),
                            topic: topic.clone(),
                            key_field: key_field.clone(),
                            properties: properties.clone(),
                        })
                    }
                    SinkSpec::File { .. } | SinkSpec::Kafka { .. } | SinkSpec::Objects { .. } => SinkTarget::Dir(sink_dir(graph, opts, spec)),
                    SinkSpec::Postgres { url, table, key, batch_size, .. } => SinkTarget::Postgres(crate::connectors::PostgresTarget {
                        url: url.clone(),
                        table: table.clone(),
                        key: key.clone(),
                        batch_size: batch_size.unwrap_or(500),
                    }),
                    SinkSpec::Stdout { .. } => SinkTarget::Stdout,
                };
                let kafka = match spec {
                    SinkSpec::Kafka { delivery: crate::job::KafkaDelivery::ExactlyOnce, bootstrap_servers, topic, key_field, properties, .. } => Some(crate::connectors::KafkaCommitTarget {
                        bootstrap: bootstrap_servers.clone(),
                        topic: topic.clone(),
                        key_field: key_field.clone(),
                        transactional_id: format!("rivulet-{}-{}-0", sanitize(&graph.name), node.id),
                        properties: properties.clone(),
                    }),
                    _ => None,
                };
                expected.insert(TaskKey { kind: 2, id: node.id.clone(), subtask: 0 });
                let next_seq = point.as_ref().and_then(|p| p.sink(&node.id, 0)).map_or(0, |e| e.next_seq);
                let rx = receivers.remove(&(i, 0)).ok_or_else(|| JobError::Internal("missing input queue".into()))?;
                let channels = channel_count.get(&(i, 0)).copied().unwrap_or(0);
                tasks.spawn(
                    LineSink {
                        id: node.id.clone(),
                        subtask: 0,
                        target,
                        input: InputGate::new(rx, channels),
                        inputs: InputWatermarks::new(channels),
                        metrics: metrics[i].clone(),
                        checkpointing: task_ckpt.clone(),
                        next_seq,
                        last_barrier: 0,
                        kafka,
                        objects: match spec {
                            SinkSpec::Objects { url, format, .. } => Some(crate::connectors::ObjectCommitTarget { url: url.clone(), format: *format }),
                            _ => None,
                        },
                        roll_bytes: match spec {
                            SinkSpec::Objects { roll_size_bytes, .. } => Some(roll_size_bytes.unwrap_or(64 << 20)),
                            _ => None,
                        },
                        roll_interval: match spec {
                            SinkSpec::Objects { roll_interval_ms: Some(ms), .. } => Some(Duration::from_millis(*ms)),
                            _ => None,
                        },
                    }
                    .run(),
                );
            }
        }
    }
    // Only tasks hold senders now: a queue closes when its producers are gone.
    drop(senders);
    drop(report_tx);
    drop(task_ckpt);

    let mut coordinator = match &opts.checkpoint {
        Some(cfg) => Some(Coordinator::start(cfg.clone(), &graph.name, graph.max_parallelism, barrier_senders, expected, ledger.clone()).await?),
        None => None,
    };
    let interval = opts.checkpoint.as_ref().and_then(|c| c.interval);
    let mut next_checkpoint = interval.map(|i| Instant::now() + i);
    let mut stop_requested = false;
    let mut savepoint_requested = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut usr1 = if opts.savepoint_on_signal { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok() } else { None };
    let source_ids: Vec<usize> = (0..n).filter(|&i| matches!(graph.nodes[i].kind, NodeKind::Source(_))).collect();

    let progress = opts.progress.then(|| tokio::spawn(report_progress(metrics.clone(), graph.clone())));
    let mut first_error: Option<JobError> = None;
    let mut reports_open = true;
    let mut cancelled = false;
    // Savepoints a controller asked for, by snapshot id.
    let mut waiting: HashMap<u64, tokio::sync::oneshot::Sender<SavepointReply>> = HashMap::new();
    loop {
        #[cfg(unix)]
        let signal = async {
            match usr1.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signal = std::future::pending::<Option<()>>();
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let result = joined.unwrap_or_else(|e| Err(JobError::Internal(format!("task panicked: {e}"))));
                if let Err(e) = result {
                    let secondary = matches!(&e, JobError::Internal(m) if m.contains("stopped") || m.contains("closed"));
                    if first_error.is_none() || (!secondary && matches!(first_error, Some(JobError::Internal(_)))) {
                        first_error = Some(e);
                    }
                    tasks.abort_all();
                }
            }
            rep = report_rx.recv(), if reports_open => {
                match (rep, coordinator.as_mut()) {
                    (Some(rep), Some(c)) => match c.on_report(rep).await {
                        Ok(Some(done)) => note_snapshot(&mut report, &done, opts, &mut waiting),
                        Ok(None) => settle_failed(c, &mut waiting),
                        Err(e) => {
                            first_error.get_or_insert(e.into());
                            tasks.abort_all();
                        }
                    },
                    (None, _) => reports_open = false,
                    _ => {}
                }
            }
            _ = signal => savepoint_requested = true,
            _ = tick.tick() => {
                if let Some(ctl) = &opts.control {
                    if ctl.cancelled() && !cancelled {
                        cancelled = true;
                        tasks.abort_all();
                        continue;
                    }
                    if coordinator.is_none()
                        && let Some(r) = ctl.next_request()
                    {
                        let _ = r.reply.send(Err("the job has no checkpoint location, so it cannot take savepoints".into()));
                    }
                }
                let Some(c) = coordinator.as_mut() else { continue };
                if let Err(e) = c.check_timeout().await {
                    first_error.get_or_insert(e.into());
                    tasks.abort_all();
                    continue;
                }
                settle_failed(c, &mut waiting);
                if let Some(ctl) = &opts.control
                    && !c.busy()
                    && !stop_requested
                    && let Some(r) = ctl.next_request()
                {
                    match c.trigger(SnapshotKind::Savepoint, r.stop) {
                        Some(id) => {
                            stop_requested |= r.stop;
                            waiting.insert(id, r.reply);
                        }
                        None => ctl.push_front(r),
                    }
                }
                if let Some(f) = &opts.savepoint_trigger_file
                    && f.exists() {
                        let _ = std::fs::remove_file(f);
                        savepoint_requested = true;
                    }
                if let Some(limit) = opts.stop_with_savepoint_after_records {
                    let emitted: u64 = source_ids.iter().map(|&i| metrics[i].records_out.load(Ordering::Relaxed)).sum();
                    if emitted >= limit && !stop_requested && !c.busy() && c.trigger(SnapshotKind::Savepoint, true).is_some() {
                        stop_requested = true;
                    }
                }
                if savepoint_requested && !c.busy() && !stop_requested && c.trigger(SnapshotKind::Savepoint, false).is_some() {
                    savepoint_requested = false;
                }
                if let Some(due) = next_checkpoint
                    && Instant::now() >= due && !c.busy() && !stop_requested {
                        c.trigger(SnapshotKind::Checkpoint, false);
                        next_checkpoint = interval.map(|i| Instant::now() + i);
                    }
            }
        }
    }
    // Every task is done: the remaining reports (uploads still finishing) complete the
    // snapshot in progress; then the final checkpoint commits what the sinks hold.
    if let (None, Some(c)) = (&first_error, coordinator.as_mut()) {
        while let Some(rep) = report_rx.recv().await {
            match c.on_report(rep).await {
                Ok(Some(done)) => note_snapshot(&mut report, &done, opts, &mut waiting),
                Ok(None) => {}
                Err(e) => {
                    first_error = Some(e.into());
                    break;
                }
            }
        }
        if first_error.is_none() {
            if stop_requested {
                if report.stopped_with_savepoint.is_none() {
                    first_error = Some(JobError::Internal("the job stopped but its savepoint did not complete".into()));
                }
            } else if c.all_finished() {
                match c.finish().await {
                    Ok(done) => note_snapshot(&mut report, &done, opts, &mut waiting),
                    Err(e) => first_error = Some(e.into()),
                }
            }
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    if let Some(c) = &coordinator {
        report.snapshot_failures = c.failures.clone();
        if let Some(ctl) = &opts.control {
            ctl.update(|l| l.snapshot_failures.extend(c.failures.iter().cloned()));
        }
    }
    for (_, reply) in waiting.drain() {
        let _ = reply.send(Err("the job ended before the savepoint completed".into()));
    }
    if cancelled {
        report.cancelled = true;
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    if let Some(sp) = &report.stopped_with_savepoint
        && let Some(e) = first_error.take()
    {
        // The stop's savepoint completed and committed the sinks: the job is over, and a
        // task failing while it wound down must not start it again.
        tracing::warn!(error = %e, savepoint = %sp, "a task failed after the job stopped with its savepoint");
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    report.nodes = metrics
        .iter()
        .map(|m| (m.id.clone(), m.records_in.load(Ordering::Relaxed), m.records_out.load(Ordering::Relaxed), m.late_records.load(Ordering::Relaxed)))
        .collect();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Answer savepoint requests whose snapshot failed.
fn settle_failed(c: &Coordinator, waiting: &mut HashMap<u64, tokio::sync::oneshot::Sender<SavepointReply>>) {
    for (id, reason) in &c.failures {
        if let Some(reply) = waiting.remove(id) {
            let _ = reply.send(Err(format!("savepoint {id} failed: {reason}")));
        }
    }
}

fn note_snapshot(
    report: &mut JobReport,
    done: &CoordinatorOutcome,
    opts: &RunOptions,
    waiting: &mut HashMap<u64, tokio::sync::oneshot::Sender<SavepointReply>>,
) {
    if let Some(reply) = waiting.remove(&done.id) {
        let _ = reply.send(Ok(done.location.clone()));
    }
    if let Some(ctl) = &opts.control {
        ctl.update(|l| l.snapshots.push(done.clone()));
    }
    if done.kind == SnapshotKind::Savepoint {
        eprintln!("[rivulet] savepoint {} complete: {}", done.id, done.location);
        if done.stop {
            report.stopped_with_savepoint = Some(done.location.clone());
        } else {
            report.savepoints.push(done.location.clone());
        }
    }
    report.snapshots.push(done.clone());
}

/// Create, restore and open one operator subtask. Returns it and whether it had finished
/// in the restored snapshot.
#[allow(clippy::too_many_arguments)]
async fn start_operator(
    graph: &JobGraph,
    engine: &Arc<PluginEngine>,
    opts: &RunOptions,
    point: Option<&RestorePoint>,
    run_dir: &std::path::Path,
    spec: &crate::job::OperatorSpec,
    plugin: Arc<Plugin>,
    t: u32,
    par: u32,
    outputs: Vec<OutputEdge>,
    metrics: Arc<NodeMetrics>,
    open: bool,
) -> Result<(ChainedOperator, bool), JobError> {
    let state_err = |e| JobError::State { operator: spec.uid.clone(), error: e };
    let range = KeyGroupRange::for_subtask(t, par, graph.max_parallelism);
    let restore = match point {
        Some(p) => p.operator(&spec.uid, t, par)?,
        None => None,
    };
    let db_dir = run_dir.join(&spec.uid).join(t.to_string());
    let mut limits = opts.limits;
    if let Some(l) = &spec.limits {
        if let Some(mb) = l.memory_mb {
            limits.memory_bytes = (mb as usize).saturating_mul(1 << 20);
        }
        if let Some(ms) = l.call_timeout_ms {
            limits.call_timeout = Duration::from_millis(ms);
        }
    }
    // On restore, the state version decides between carrying state over and migrating
    // it: ask a throwaway instance, before any state exists.
    let state_version = if restore.is_some() {
        let probe = InstanceSetup {
            uid: spec.uid.clone(),
            subtask: t,
            parallelism: par,
            attempt: opts.attempt,
            state: KeyedStateStore::new(Box::new(crate::state::MemoryBackend::default()), graph.max_parallelism),
            limits,
            config: spec.config.to_string(),
            log: None,
        };
        OperatorInstance::new(engine, plugin.clone(), probe).await?.state_version().await?
    } else {
        0
    };
    let fast = restore.as_ref().is_some_and(|r| {
        opts.state_backend == BackendKind::Rocksdb
            && native_fast_path(&r.parts, range)
            && r.parts.iter().all(|(p, _)| p.header.state_version == state_version)
    });
    if let (true, Some(r)) = (fast, &restore) {
        write_db_files(&db_dir, &r.parts[0].1)?;
    }
    let backend = opts.state_backend.open(&db_dir).map_err(state_err)?;
    let mut store = KeyedStateStore::new(backend, graph.max_parallelism);
    let mut timers = crate::plugin::TimerService::default();
    let mut window = spec.window.as_ref().map(WindowOperator::new);
    let mut watermark = i64::MIN;
    let mut migrate = Vec::new();
    let mut finished = false;
    if let Some(r) = &restore {
        finished = r.finished;
        let (wm, m) = apply(r, range, &mut store, fast, &mut timers, window.as_mut(), state_version, run_dir)?;
        watermark = wm;
        migrate = m;
    }
    let setup = InstanceSetup {
        uid: spec.uid.clone(),
        subtask: t,
        parallelism: par,
        attempt: opts.attempt,
        state: store,
        limits,
        config: spec.config.to_string(),
        log: opts.control.as_ref().map(|c| c.guest_log.clone()),
    };
    let mut instance = OperatorInstance::new(engine, plugin.clone(), setup).await?;
    let state_version = if restore.is_some() { state_version } else { instance.state_version().await? };
    for (from, entries) in migrate {
        let count = entries.len();
        let mut migrated = Vec::new();
        for chunk in entries.chunks(1024) {
            migrated.extend(instance.migrate_state(from, chunk.to_vec()).await?);
        }
        write_entries(instance.state(), migrated, operator::now_ms())
            .map_err(|m| GuestFailure::new(&spec.uid, &plugin.label(), crate::FailureKind::GuestError, format!("migrate-state: {m}")))?;
        tracing::info!(operator = %spec.uid, from, to = state_version, entries = count, "state migrated");
    }
    {
        let (_, tm) = instance.state_and_timers();
        *tm = timers;
    }
    if watermark != i64::MIN {
        instance.set_watermark(watermark);
    }
    if !finished && open {
        instance.open().await?;
    }
    let meta = SubtaskMeta {
        uid: spec.uid.clone(),
        plugin: plugin.label(),
        plugin_digest: plugin.digest.clone(),
        subtask: t,
        parallelism: par,
        max_parallelism: graph.max_parallelism,
        range,
        state_version,
        instance: format!("{}-{}-{}", std::process::id(), operator::now_ms(), crate::checkpoint::storage::UNIQUE.fetch_add(1, Ordering::Relaxed)),
    };
    let uploaded: UploadedFiles = Default::default();
    if let (true, Some(r), Some(p)) = (fast, &restore, point) {
        // Files of the restored checkpoint are already stored: later checkpoints reuse them.
        if let Some(op) = p.manifest.operators.iter().find(|o| o.uid == spec.uid)
            && let (Some(st), Ok(mut m)) = (op.subtasks.iter().find(|s| s.key_groups == (range.start, range.end)), uploaded.lock())
        {
            for d in &st.db {
                if d.file.path.starts_with("shared/") {
                    m.insert(d.name.clone(), (d.clone(), p.manifest.id));
                }
            }
        }
        let _ = r;
    }
    let op = ChainedOperator::new(
        instance,
        window,
        outputs,
        metrics,
        meta,
        run_dir.join("staging").join(&spec.uid).join(t.to_string()),
        uploaded,
        watermark,
    );
    Ok((op, finished))
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

async fn report_progress(metrics: Vec<Arc<NodeMetrics>>, graph: JobGraph) {
    let sources: Vec<usize> = (0..graph.nodes.len()).filter(|&i| matches!(graph.nodes[i].kind, NodeKind::Source(_))).collect();
    let sinks: Vec<usize> = (0..graph.nodes.len()).filter(|&i| matches!(graph.nodes[i].kind, NodeKind::Sink(_))).collect();
    let started = Instant::now();
    let (mut last_in, mut last_out) = (0u64, 0u64);
    let period = Duration::from_secs(2);
    loop {
        tokio::time::sleep(period).await;
        let r_in: u64 = sources.iter().map(|&i| metrics[i].records_out.load(Ordering::Relaxed)).sum();
        let r_out: u64 = sinks.iter().map(|&i| metrics[i].records_in.load(Ordering::Relaxed)).sum();
        let wm = sinks.iter().map(|&i| metrics[i].watermark.load(Ordering::Relaxed)).min().unwrap_or(i64::MIN);
        let wm = match wm {
            i64::MIN => "none".to_owned(),
            i64::MAX => "end of input".to_owned(),
            w => w.to_string(),
        };
        eprintln!(
            "[rivulet] {:>6.1}s  in {r_in} ({:.0}/s)  out {r_out} ({:.0}/s)  watermark {wm}",
            started.elapsed().as_secs_f64(),
            (r_in - last_in) as f64 / period.as_secs_f64(),
            (r_out - last_out) as f64 / period.as_secs_f64(),
        );
        (last_in, last_out) = (r_in, r_out);
    }
}

/// Where a sink writes its part files: a file sink's directory, or a Kafka sink's spool.
fn sink_dir(graph: &JobGraph, opts: &RunOptions, spec: &SinkSpec) -> PathBuf {
    match spec {
        SinkSpec::Kafka { spool_dir: Some(d), .. } => spec_resolve(&graph.base_dir, d),
        SinkSpec::Kafka { id, .. } => opts.data_dir.join("kafka-spool").join(sanitize(&graph.name)).join(id),
        SinkSpec::Objects { spool_dir: Some(d), .. } => spec_resolve(&graph.base_dir, d),
        SinkSpec::Objects { id, .. } => opts.data_dir.join("object-spool").join(sanitize(&graph.name)).join(id),
        SinkSpec::File { path, .. } => spec_resolve(&graph.base_dir, path),
        SinkSpec::Stdout { .. } | SinkSpec::Postgres { .. } => PathBuf::new(),
    }
}
