//! One run of a job: plugins loaded, connectors built, the restored snapshot's sinks
//! committed, tasks launched, the run supervised to its end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rivulet_checkpoint::{Committers, Coordinator, Ledger, RestorePoint, TaskCheckpointing, TaskReport};
use rivulet_connectors::{ConnectorContext, SinkConnector, SourceConnector, sink_connector, source_connector};
use rivulet_dataflow::{LocalExchange, NodeMetrics, now_ms};
use rivulet_job::{JobGraph, NodeKind, file_safe};
use rivulet_plugin::{Plugin, PluginEngine};
use rivulet_state::BackendKind;
use tokio::sync::mpsc;

use crate::error::JobError;
use crate::hosts::RemoteRun;
use crate::launch::{Launch, Launched, closed_reports};
use crate::options::RunOptions;
use crate::plan::PhysicalPlan;
use crate::progress::report_progress;
use crate::report::{JobReport, NodeCounts};
use crate::restore::restore_point;
use crate::supervise::{Ended, Supervisor};

/// Messages a channel of the in-process exchange holds before its sender waits: a
/// barrier waits behind everything queued, so few (4 batches of up to 1,000 records).
const CHANNEL_CAPACITY: usize = 4;

/// The connectors of a job's sources and sinks, and its sinks' committers.
pub(crate) struct Connectors {
    pub sources: HashMap<usize, Box<dyn SourceConnector>>,
    pub sinks: HashMap<usize, Box<dyn SinkConnector>>,
    pub committers: Committers,
}

impl Connectors {
    pub(crate) fn build(graph: &JobGraph, opts: &RunOptions) -> Self {
        let cx = ConnectorContext {
            job: graph.name.clone(),
            base_dir: graph.base_dir.clone(),
            data_dir: opts.data_dir.clone(),
            max_record_bytes: graph.max_record_bytes,
        };
        let committers = Committers::with_fallback(rivulet_connectors::committer_for);
        let mut c = Connectors { sources: HashMap::new(), sinks: HashMap::new(), committers };
        for (i, node) in graph.nodes.iter().enumerate() {
            match &node.kind {
                NodeKind::Source(spec) => {
                    c.sources.insert(i, source_connector(spec, &cx));
                }
                NodeKind::Sink(spec) => {
                    let sink = sink_connector(spec, &cx);
                    if let Some(committer) = sink.committer() {
                        c.committers.register(&node.id, committer);
                    }
                    c.sinks.insert(i, sink);
                }
                NodeKind::Operator { .. } => {}
            }
        }
        c
    }

    /// Get every sink's output ready: fresh, or as of the restored snapshot.
    async fn prepare_sinks(&self, graph: &JobGraph, point: Option<&RestorePoint>) -> Result<(), JobError> {
        for (&i, sink) in &self.sinks {
            let entries: Option<Vec<_>> = point.map(|p| p.manifest.sinks.iter().filter(|s| s.id == graph.nodes[i].id).cloned().collect());
            sink.prepare(entries.as_deref()).await?;
        }
        Ok(())
    }
}

/// The sinks' committers of `graph` run with `opts` (to check snapshots outside a run).
pub fn committers(graph: &JobGraph, opts: &RunOptions) -> Committers {
    Connectors::build(graph, opts).committers
}

/// What every task of a run that checkpoints holds (`None` without checkpoints).
pub(crate) fn task_checkpointing(
    opts: &RunOptions,
    reports: Option<mpsc::UnboundedSender<TaskReport>>,
    ledger: &Arc<Ledger>,
) -> Option<TaskCheckpointing> {
    opts.checkpoint.as_ref().zip(reports).map(|(c, reports)| TaskCheckpointing {
        storage: c.storage.clone(),
        reports,
        ledger: ledger.clone(),
        incremental: c.incremental && opts.state_backend == BackendKind::Rocksdb,
    })
}

/// Load every plugin first: a bad component fails the job before anything runs.
pub(crate) async fn load_plugins(graph: &JobGraph, engine: &Arc<PluginEngine>) -> Result<HashMap<usize, Arc<Plugin>>, JobError> {
    let mut plugins = HashMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        if let NodeKind::Operator { plugin_path, spec } = &node.kind {
            let (engine, path) = (engine.clone(), plugin_path.clone());
            let plugin =
                tokio::task::spawn_blocking(move || engine.load_file(&path)).await.map_err(|e| JobError::Internal(e.to_string()))?.map_err(|e| {
                    tracing::error!(operator = %spec.uid, error = %e, "plugin rejected");
                    e
                })?;
            plugins.insert(i, plugin);
        }
    }
    Ok(plugins)
}

/// Run `graph` to completion (bounded inputs), until it stops with a savepoint, or until
/// it fails.
pub async fn run_job(graph: &JobGraph, engine: &Arc<PluginEngine>, opts: &RunOptions) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let mut report = JobReport::default();
    let plugins = load_plugins(graph, engine).await?;
    let connectors = Connectors::build(graph, opts);
    let point = restore_point(graph, opts, &connectors.committers).await?;
    if let Some(p) = &point {
        report.restored_from = Some(p.location.clone());
        report.restore_skipped = p.skipped.clone();
        eprintln!("[rivulet] restoring from {}", p.location);
        // Transactions of the restored snapshot are committed; the rest is discarded.
        connectors.committers.commit_all(&p.manifest.sinks)?;
        if p.manifest.finished {
            eprintln!("[rivulet] the job had already finished at {}; its output is committed", p.location);
            report.elapsed = started.elapsed();
            return Ok(report);
        }
    }
    connectors.prepare_sinks(graph, point.as_ref()).await?;

    let metrics: Vec<Arc<NodeMetrics>> = graph.nodes.iter().map(|nd| Arc::new(NodeMetrics::new(&nd.id))).collect();
    if let Some(c) = &opts.control {
        c.update(|l| {
            l.metrics = metrics.clone();
            l.attempt = opts.attempt;
            l.restored_from = report.restored_from.clone();
        });
    }
    let run_dir = opts.data_dir.join(format!("{}-{}-{}-{}", file_safe(&graph.name), std::process::id(), now_ms(), opts.attempt));
    let ledger = Arc::new(Ledger::default());
    if let Some(p) = &point {
        ledger.complete(p.manifest.id);
    }
    let (reports_tx, reports) = match &opts.checkpoint {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), rx)
        }
        None => (None, closed_reports()),
    };
    let checkpointing = task_checkpointing(opts, reports_tx, &ledger);
    let plan = PhysicalPlan::new(graph);
    let exchange = LocalExchange::new(CHANNEL_CAPACITY);
    let launched = match &opts.hosts {
        // Tasks on workers: they upload state to the same storage and report here.
        Some(hosts) => {
            let remote = RemoteRun {
                job: opts.job_id.as_deref().unwrap_or(&graph.name),
                graph,
                plan: &plan,
                opts,
                restore: point.as_ref().map(|p| p.location.clone()),
                reports: checkpointing.map(|c| c.reports),
                ledger: ledger.clone(),
                metrics: &metrics,
            };
            let started = hosts.start(remote).await?;
            Launched { tasks: started.tasks, barriers: started.barriers, expected: plan.snapshot_parts(graph) }
        }
        None => {
            Launch {
                graph,
                plan: &plan,
                exchange: &exchange,
                engine,
                opts,
                point: point.as_ref(),
                plugins: &plugins,
                sources: &connectors.sources,
                sinks: &connectors.sinks,
                metrics: &metrics,
                run_dir: &run_dir,
                checkpointing,
                placed: None,
            }
            .start()
            .await?
        }
    };
    let coordinator = match &opts.checkpoint {
        Some(cfg) => Some(
            Coordinator::start(
                cfg.clone(),
                &graph.name,
                graph.max_parallelism,
                launched.barriers,
                launched.expected,
                ledger,
                connectors.committers.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let progress = opts.progress.then(|| tokio::spawn(report_progress(metrics.clone(), graph.clone())));
    let ended = Supervisor::new(graph, opts, coordinator, &metrics).run(launched.tasks, reports, &mut report).await;
    if let Some(p) = progress {
        p.abort();
    }
    let _ = std::fs::remove_dir_all(&run_dir);
    match ended {
        Ended::Cancelled => report.cancelled = true,
        Ended::Done(result) => {
            result?;
            report.nodes = metrics
                .iter()
                .map(|m| NodeCounts {
                    id: m.id.clone(),
                    records_in: m.records_in.load(Ordering::Relaxed),
                    records_out: m.records_out.load(Ordering::Relaxed),
                    late: m.late_records.load(Ordering::Relaxed),
                })
                .collect();
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
