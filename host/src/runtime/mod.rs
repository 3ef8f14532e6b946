//! The local runtime: turns a [`JobGraph`] into tasks on tokio — sources, chains of
//! operators, sinks — connected by bounded channels, and runs them to completion.
//!
//! Every subtask is a tokio task. Channels are bounded (backpressure); records cross
//! them and the Wasm boundary in encoded batches. Forward edges between operators of
//! equal parallelism are chained into one task (no channel hop), as in Flink.

mod channel;
mod exchange;
mod metrics;
mod operator;
pub mod window;

pub use channel::{DownstreamGone, Envelope, InputWatermarks, Message, Target, WatermarkChange};
pub use exchange::{ExchangeError, OutputEdge};
pub use metrics::NodeMetrics;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::connectors::{FileSource, Generator, LineSink, SinkTarget, SourceOutput};
use crate::error::JobError;
use crate::job::{JobGraph, NodeKind, Partition, SinkSpec, SourceSpec, spec_resolve};
use crate::plugin::{InstanceSetup, Limits, OperatorInstance, Plugin, PluginEngine};
use crate::state::{BackendKind, KeyedStateStore};
use operator::{ChainTask, ChainedOperator};
use window::WindowOperator;

/// Batches a channel holds before its sender waits.
const CHANNEL_CAPACITY: usize = 16;

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
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// Per node: (id, records in, records out, late records).
    pub nodes: Vec<(String, u64, u64, u64)>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Run `graph` to completion (bounded inputs) or until it fails.
pub async fn run_job(graph: &JobGraph, engine: &Arc<PluginEngine>, opts: &RunOptions) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let n = graph.nodes.len();

    // Load every plugin first: a bad component fails the job before anything runs.
    let mut plugins: HashMap<usize, Arc<Plugin>> = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if let NodeKind::Operator { plugin_path, spec } = &node.kind {
            let engine = engine.clone();
            let path = plugin_path.clone();
            let plugin = tokio::task::spawn_blocking(move || engine.load_file(&path))
                .await
                .map_err(|e| JobError::Internal(e.to_string()))?
                .map_err(|e| {
                    tracing::error!(operator = %spec.uid, error = %e, "plugin rejected");
                    e
                })?;
            plugins.insert(i, plugin);
        }
    }

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
    let run_dir = opts.data_dir.join(format!("{}-{}-{}", sanitize(&graph.name), std::process::id(), operator::now_ms()));
    let mut tasks: JoinSet<Result<(), JobError>> = JoinSet::new();

    for (i, node) in graph.nodes.iter().enumerate() {
        match &node.kind {
            NodeKind::Source(spec) => {
                for s in 0..node.parallelism {
                    let ooo = spec.event_time().map(|et| et.max_out_of_orderness_ms as i64);
                    let every = spec.event_time().and_then(|et| et.watermark_every).unwrap_or(graph.batch_size);
                    let out = SourceOutput::new(&node.id, outputs_of(i, s), graph.batch_size.min(every), ooo, metrics[i].clone());
                    match spec {
                        SourceSpec::File { id, path, format, csv, event_time } => {
                            let src = FileSource {
                                id: id.clone(),
                                path: spec_resolve(&graph.base_dir, path),
                                format: *format,
                                delimiter: csv.as_ref().and_then(|c| c.delimiter).map_or(b',', |c| c as u8),
                                time_field: event_time.as_ref().map(|et| et.field.clone().unwrap_or_else(|| "timestamp".into())),
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
                    for &m in &members {
                        let NodeKind::Operator { spec, .. } = &graph.nodes[m].kind else { continue };
                        let backend = opts
                            .state_backend
                            .open(&run_dir.join(&spec.uid).join(t.to_string()))
                            .map_err(|source| JobError::State { operator: spec.uid.clone(), error: source })?;
                        let mut limits = opts.limits;
                        if let Some(l) = &spec.limits {
                            if let Some(mb) = l.memory_mb {
                                limits.memory_bytes = (mb as usize).saturating_mul(1 << 20);
                            }
                            if let Some(ms) = l.call_timeout_ms {
                                limits.call_timeout = Duration::from_millis(ms);
                            }
                        }
                        let setup = InstanceSetup {
                            uid: spec.uid.clone(),
                            subtask: t,
                            parallelism: graph.nodes[m].parallelism,
                            state: KeyedStateStore::new(backend, graph.max_parallelism),
                            limits,
                            config: spec.config.to_string(),
                        };
                        let plugin = plugins.get(&m).cloned().ok_or_else(|| JobError::Internal("plugin not loaded".into()))?;
                        let mut instance = OperatorInstance::new(engine, plugin, setup).await?;
                        instance.open().await?;
                        let window = spec.window.as_ref().map(WindowOperator::new);
                        ops.push(ChainedOperator::new(spec.uid.clone(), instance, window, outputs_of(m, t), metrics[m].clone()));
                    }
                    let rx = receivers.remove(&(i, t)).ok_or_else(|| JobError::Internal("missing input queue".into()))?;
                    let inputs = InputWatermarks::new(channel_count.get(&(i, t)).copied().unwrap_or(0));
                    tasks.spawn(ChainTask { ops, rx, inputs }.run());
                }
            }
            NodeKind::Operator { .. } => {}
            NodeKind::Sink(spec) => {
                let target = match spec {
                    SinkSpec::File { path, .. } => SinkTarget::File(spec_resolve(&graph.base_dir, path)),
                    SinkSpec::Stdout { .. } => SinkTarget::Stdout,
                };
                let rx = receivers.remove(&(i, 0)).ok_or_else(|| JobError::Internal("missing input queue".into()))?;
                let inputs = InputWatermarks::new(channel_count.get(&(i, 0)).copied().unwrap_or(0));
                tasks.spawn(LineSink { id: node.id.clone(), target, rx, inputs, metrics: metrics[i].clone() }.run());
            }
        }
    }
    // Only tasks hold senders now: a queue closes when its producers are gone.
    drop(senders);

    let progress = opts.progress.then(|| tokio::spawn(report_progress(metrics.clone(), graph.clone())));
    let mut first_error: Option<JobError> = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(JobError::Internal(format!("task panicked: {e}"))));
        if let Err(e) = result {
            let secondary = matches!(&e, JobError::Internal(m) if m.contains("stopped") || m.contains("closed"));
            if first_error.is_none() || (!secondary && matches!(first_error, Some(JobError::Internal(_)))) {
                first_error = Some(e);
            }
            tasks.abort_all();
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    if let Some(e) = first_error {
        return Err(e);
    }
    let nodes = metrics
        .iter()
        .map(|m| {
            (
                m.id.clone(),
                m.records_in.load(Ordering::Relaxed),
                m.records_out.load(Ordering::Relaxed),
                m.late_records.load(Ordering::Relaxed),
            )
        })
        .collect();
    Ok(JobReport { nodes, elapsed: started.elapsed() })
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
