//! Starting a run's tasks: the plan's channels created through the exchange, each source,
//! chain and sink subtask built (operators restored and opened) and spawned.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use rivulet_checkpoint::{RestorePoint, SourceCheckpointing, TaskCheckpointing, TaskKey, TaskReport};
use rivulet_connectors::{SinkConnector, SinkTask, SourceConnector, SourceContext};
use rivulet_dataflow::{Barrier, Exchange, InputGate, InputQueue, InputWatermarks, NodeMetrics, OutputEdge, SourceOutput, SubtaskId};
use rivulet_job::{JobGraph, NodeKind};
use rivulet_plugin::{Plugin, PluginEngine};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::chain::ChainTask;
use crate::error::JobError;
use crate::operator_setup::{OperatorSetup, SubtaskSpec};
use crate::options::RunOptions;
use crate::plan::{PhysicalPlan, Task};

/// What starting a run needs.
pub(crate) struct Launch<'a> {
    /// The job.
    pub graph: &'a JobGraph,
    /// Its tasks and channels.
    pub plan: &'a PhysicalPlan,
    /// Where channels come from.
    pub exchange: &'a dyn Exchange,
    /// The engine.
    pub engine: &'a Arc<PluginEngine>,
    /// The run's options.
    pub opts: &'a RunOptions,
    /// The snapshot the run starts from.
    pub point: Option<&'a RestorePoint>,
    /// Each operator node's plugin.
    pub plugins: &'a HashMap<usize, Arc<Plugin>>,
    /// Each source node's connector.
    pub sources: &'a HashMap<usize, Box<dyn SourceConnector>>,
    /// Each sink node's connector.
    pub sinks: &'a HashMap<usize, Box<dyn SinkConnector>>,
    /// Each node's counters.
    pub metrics: &'a [Arc<NodeMetrics>],
    /// The run's working directory.
    pub run_dir: &'a Path,
    /// Checkpointing, if the job checkpoints.
    pub checkpointing: Option<TaskCheckpointing>,
    /// Which of the plan's tasks run here, by index (`None`: all of them; a worker runs
    /// its share).
    pub placed: Option<&'a [usize]>,
}

/// A started run.
pub(crate) struct Launched {
    /// Its tasks.
    pub tasks: JoinSet<Result<(), JobError>>,
    /// Where the coordinator injects barriers: one per source subtask.
    pub barriers: Vec<mpsc::UnboundedSender<Barrier>>,
    /// The parts every snapshot needs.
    pub expected: BTreeSet<TaskKey>,
}

impl Launch<'_> {
    /// Create every channel, start every task.
    pub async fn start(self) -> Result<Launched, JobError> {
        let here: Vec<&Task> = match self.placed {
            None => self.plan.tasks.iter().collect(),
            Some(indices) => indices.iter().filter_map(|i| self.plan.tasks.get(*i)).collect(),
        };
        let receivers: Vec<SubtaskId> = here.iter().filter_map(|t| t.receiver()).collect();
        let mut inputs: HashMap<SubtaskId, (Box<dyn InputQueue>, usize)> = receivers
            .into_iter()
            .map(|id| {
                let channels = self.plan.input_channels(id);
                (id, (self.exchange.input(id, channels), channels))
            })
            .collect();
        let mut launched = Launched { tasks: JoinSet::new(), barriers: Vec::new(), expected: self.plan.snapshot_parts(self.graph) };
        for task in here {
            match task {
                Task::Source { node, subtask } => self.start_source(*node, *subtask, &mut launched)?,
                Task::Chain { members, subtask } => {
                    let input = take_input(&mut inputs, members[0], *subtask)?;
                    let chain = self.chain(members, *subtask, input).await?;
                    launched.tasks.spawn(chain.run());
                }
                Task::Sink { node, subtask } => {
                    let input = take_input(&mut inputs, *node, *subtask)?;
                    let sink = self.sink(*node, *subtask, input)?;
                    launched.tasks.spawn(async move { sink.run().await.map_err(JobError::from) });
                }
            }
        }
        // Only tasks hold senders now: a queue closes when its producers are gone.
        self.exchange.seal();
        Ok(launched)
    }

    /// The output edges of subtask `subtask` of `node`.
    fn outputs(&self, node: usize, subtask: u32) -> Result<Vec<OutputEdge>, JobError> {
        let mut outs = Vec::new();
        for o in self.plan.outputs(self.graph, node, subtask) {
            let e = &self.graph.edges[o.edge];
            let targets = o
                .targets
                .iter()
                .map(|(to, channel)| self.exchange.sender(*to, *channel))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| JobError::Internal(e.to_string()))?;
            outs.push(OutputEdge::new(e.tag.clone(), e.partitioning.clone(), targets, self.graph.max_parallelism, self.graph.nodes[e.to].id.clone()));
        }
        Ok(outs)
    }

    fn start_source(&self, node: usize, subtask: u32, launched: &mut Launched) -> Result<(), JobError> {
        let n = &self.graph.nodes[node];
        let NodeKind::Source(spec) = &n.kind else { return Err(JobError::Internal(format!("'{}' is not a source", n.id))) };
        let connector = self.sources.get(&node).ok_or_else(|| JobError::Internal(format!("no connector for source '{}'", n.id)))?;
        let restored = match self.point {
            None => None,
            Some(p) if connector.rescalable() => Some(p.source_entries(&n.id).into_iter().map(|e| e.position.clone()).collect()),
            Some(p) => Some(p.source(&n.id, subtask, n.parallelism)?.map(|e| e.position.clone()).into_iter().collect()),
        };
        let source = connector.open(subtask, n.parallelism, restored)?;
        let checkpointing = self.checkpointing.as_ref().map(|ctx| {
            let (tx, rx) = mpsc::unbounded_channel();
            launched.barriers.push(tx);
            SourceCheckpointing::new(rx, ctx.clone(), &n.id, subtask, n.parallelism)
        });
        let out_of_orderness = spec.event_time().map(|et| et.max_out_of_orderness_ms as i64);
        let every = spec.event_time().and_then(|et| et.watermark_every).unwrap_or(self.graph.batch_size);
        let out = SourceOutput::new(self.outputs(node, subtask)?, self.graph.batch_size.min(every), out_of_orderness, self.metrics[node].clone());
        let ctx = SourceContext::new(&n.id, out, checkpointing, self.graph.max_record_bytes);
        launched.tasks.spawn(async move { source.run(ctx).await.map_err(JobError::from) });
        Ok(())
    }

    async fn chain(&self, members: &[usize], subtask: u32, (queue, channels): (Box<dyn InputQueue>, usize)) -> Result<ChainTask, JobError> {
        let setup = OperatorSetup { graph: self.graph, engine: self.engine, opts: self.opts, point: self.point, run_dir: self.run_dir };
        let mut ops = Vec::new();
        let mut all_finished = true;
        for &m in members {
            let node = &self.graph.nodes[m];
            let NodeKind::Operator { spec, .. } = &node.kind else { continue };
            let plugin = self.plugins.get(&m).cloned().ok_or_else(|| JobError::Internal(format!("plugin of '{}' not loaded", node.id)))?;
            let s = SubtaskSpec { spec, plugin, subtask, parallelism: node.parallelism };
            let (op, finished) = setup.start(s, self.outputs(m, subtask)?, self.metrics[m].clone(), true).await?;
            all_finished &= finished;
            ops.push(op);
        }
        let mut inputs = InputWatermarks::new(channels);
        if let Some(head) = ops.first() {
            inputs.restore(head.restored_watermark());
        }
        let channel_inputs = members.first().map(|&head| self.plan.channel_inputs(SubtaskId { node: head, subtask })).unwrap_or_default();
        Ok(ChainTask {
            ops,
            input: InputGate::new(queue, channels),
            channel_inputs,
            inputs,
            checkpointing: self.checkpointing.clone(),
            restored_finished: self.point.is_some() && all_finished,
            last_barrier: 0,
        })
    }

    fn sink(&self, node: usize, subtask: u32, (queue, channels): (Box<dyn InputQueue>, usize)) -> Result<SinkTask, JobError> {
        let n = &self.graph.nodes[node];
        let connector = self.sinks.get(&node).ok_or_else(|| JobError::Internal(format!("no connector for sink '{}'", n.id)))?;
        let sink = connector.open(subtask, self.point.and_then(|p| p.sink(&n.id, subtask)))?;
        Ok(SinkTask {
            id: n.id.clone(),
            subtask,
            sink,
            committer: connector.committer(),
            input: InputGate::new(queue, channels),
            inputs: InputWatermarks::new(channels),
            metrics: self.metrics[node].clone(),
            checkpointing: self.checkpointing.clone(),
        })
    }
}

fn take_input(
    inputs: &mut HashMap<SubtaskId, (Box<dyn InputQueue>, usize)>,
    node: usize,
    subtask: u32,
) -> Result<(Box<dyn InputQueue>, usize), JobError> {
    inputs.remove(&SubtaskId { node, subtask }).ok_or_else(|| JobError::Internal(format!("missing input queue of node {node} subtask {subtask}")))
}

/// A task report channel that ends at once (a run without checkpoints).
pub(crate) fn closed_reports() -> mpsc::UnboundedReceiver<TaskReport> {
    mpsc::unbounded_channel().1
}
