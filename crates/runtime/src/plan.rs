//! The physical plan: a job graph turned into tasks and channels, without running
//! anything. Pure, so chaining and wiring are unit-tested here.
//!
//! - **Chaining**: an operator joins its producer's task when the producer is an
//!   operator of the same parallelism whose only output is a forward main-output edge
//!   into it, and that edge is its only input (as Flink chains). A chain runs in one
//!   task: no channel hop between its members.
//! - **Tasks**: one per source subtask, per chain subtask (head first), per sink subtask.
//! - **Channels**: every task that receives (chain heads, sinks) has one input queue;
//!   each (edge, upstream subtask, downstream subtask) pair that carries records is one
//!   channel of it, numbered per receiver. A forward edge connects subtask i to subtask
//!   i only; hash and rebalance edges connect every pair.

use std::collections::{BTreeMap, BTreeSet};

use rivulet_checkpoint::TaskKey;
use rivulet_dataflow::{NodeRole, Partitioning, SubtaskId};
use rivulet_job::{JobGraph, NodeKind};

/// A task of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// One subtask of a source.
    Source {
        /// Node index.
        node: usize,
        /// Subtask index.
        subtask: u32,
    },
    /// One subtask of a chain of operators.
    Chain {
        /// Node indices, head first; each one's main output feeds the next.
        members: Vec<usize>,
        /// Subtask index.
        subtask: u32,
    },
    /// One subtask of a sink.
    Sink {
        /// Node index.
        node: usize,
        /// Subtask index.
        subtask: u32,
    },
}

impl Task {
    /// Its subtask index.
    pub fn subtask(&self) -> u32 {
        match self {
            Task::Source { subtask, .. } | Task::Chain { subtask, .. } | Task::Sink { subtask, .. } => *subtask,
        }
    }

    /// The nodes it runs (one, or a chain's members).
    pub fn nodes(&self) -> &[usize] {
        match self {
            Task::Source { node, .. } | Task::Sink { node, .. } => std::slice::from_ref(node),
            Task::Chain { members, .. } => members,
        }
    }

    /// The subtask whose input queue the task reads (`None` for a source).
    pub fn receiver(&self) -> Option<SubtaskId> {
        match self {
            Task::Source { .. } => None,
            Task::Chain { members, subtask } => members.first().map(|&node| SubtaskId { node, subtask: *subtask }),
            Task::Sink { node, subtask } => Some(SubtaskId { node: *node, subtask: *subtask }),
        }
    }
}

/// One output edge of one subtask, as wired: the edge and, per downstream subtask it
/// reaches, the channel index at that receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPlan {
    /// Index of the edge in the graph.
    pub edge: usize,
    /// (receiving subtask, channel index there), in downstream subtask order.
    pub targets: Vec<(SubtaskId, usize)>,
}

/// Tasks and channels of a job.
#[derive(Debug, Clone)]
pub struct PhysicalPlan {
    /// Every task.
    pub tasks: Vec<Task>,
    chained_into: Vec<Option<usize>>,
    input_channels: BTreeMap<SubtaskId, usize>,
    channel: BTreeMap<(usize, u32, u32), usize>,
    /// Per receiver, the input (of the receiving operator) each of its channels feeds.
    channel_input: BTreeMap<SubtaskId, Vec<u32>>,
}

impl PhysicalPlan {
    /// Plan `graph`.
    pub fn new(graph: &JobGraph) -> Self {
        let chained_into = chaining(graph);
        let mut input_channels: BTreeMap<SubtaskId, usize> = BTreeMap::new();
        let mut channel = BTreeMap::new();
        let mut channel_input: BTreeMap<SubtaskId, Vec<u32>> = BTreeMap::new();
        for (to, node) in graph.nodes.iter().enumerate() {
            if node.kind.role() == NodeRole::Source || chained_into[to].is_some() {
                continue;
            }
            for t in 0..node.parallelism {
                input_channels.insert(SubtaskId { node: to, subtask: t }, 0);
            }
            for (ei, e) in graph.edges.iter().enumerate().filter(|(_, e)| e.to == to) {
                for t in 0..node.parallelism {
                    for s in 0..graph.nodes[e.from].parallelism {
                        if e.partitioning == Partitioning::Forward && s != t {
                            continue;
                        }
                        let receiver = SubtaskId { node: to, subtask: t };
                        let count = input_channels.entry(receiver).or_insert(0);
                        channel.insert((ei, s, t), *count);
                        *count += 1;
                        channel_input.entry(receiver).or_default().push(e.input);
                    }
                }
            }
        }
        let mut tasks = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            match node.kind.role() {
                NodeRole::Source => tasks.extend((0..node.parallelism).map(|subtask| Task::Source { node: i, subtask })),
                NodeRole::Operator if chained_into[i].is_none() => {
                    let mut members = vec![i];
                    while let Some(next) = (0..graph.nodes.len()).find(|&j| chained_into[j] == members.last().copied()) {
                        members.push(next);
                    }
                    tasks.extend((0..node.parallelism).map(|subtask| Task::Chain { members: members.clone(), subtask }));
                }
                NodeRole::Operator => {}
                NodeRole::Sink => tasks.extend((0..node.parallelism).map(|subtask| Task::Sink { node: i, subtask })),
            }
        }
        PhysicalPlan { tasks, chained_into, input_channels, channel, channel_input }
    }

    /// For each channel into `id`, which input of the receiving operator it feeds.
    pub fn channel_inputs(&self, id: SubtaskId) -> Vec<u32> {
        self.channel_input.get(&id).cloned().unwrap_or_default()
    }

    /// The operator `node` runs in the task of (is chained into), if any.
    pub fn chained_into(&self, node: usize) -> Option<usize> {
        self.chained_into[node]
    }

    /// Where each task runs given workers with `slots` slots each (in worker order): the
    /// worker's index per task, in task order. Slots are shared as in Flink: slot `s`
    /// holds subtask `s` of every task, so a job needs as many slots as its largest
    /// parallelism; slots are numbered round-robin over the workers (the first slot of
    /// each worker, then the second, …) so a job spreads over every worker. With fewer
    /// slots than subtasks, slots take several subtasks each (`s mod slots`). `None`
    /// when there are no slots at all.
    pub fn placement(&self, slots: &[u32]) -> Option<Vec<usize>> {
        let mut order = Vec::new();
        for round in 0..slots.iter().copied().max().unwrap_or(0) {
            order.extend(slots.iter().enumerate().filter(|(_, n)| **n > round).map(|(w, _)| w));
        }
        if order.is_empty() {
            return None;
        }
        Some(self.tasks.iter().map(|t| order[t.subtask() as usize % order.len()]).collect())
    }

    /// The number of channels into `id` (0 if it does not receive).
    pub fn input_channels(&self, id: SubtaskId) -> usize {
        self.input_channels.get(&id).copied().unwrap_or(0)
    }

    /// The output edges leaving subtask `subtask` of `node` through channels (edges into
    /// an operator chained to it are not: records reach it inside the task).
    pub fn outputs(&self, graph: &JobGraph, node: usize, subtask: u32) -> Vec<OutputPlan> {
        let mut outs = Vec::new();
        for (ei, e) in graph.edges.iter().enumerate().filter(|(_, e)| e.from == node) {
            if self.chained_into[e.to] == Some(e.from) {
                continue;
            }
            let targets = (0..graph.nodes[e.to].parallelism)
                .filter_map(|t| self.channel.get(&(ei, subtask, t)).map(|&c| (SubtaskId { node: e.to, subtask: t }, c)))
                .collect();
            outs.push(OutputPlan { edge: ei, targets });
        }
        outs
    }

    /// The tasks' parts every snapshot needs (chained operators are parts of their own).
    pub fn snapshot_parts(&self, graph: &JobGraph) -> BTreeSet<TaskKey> {
        let mut keys = BTreeSet::new();
        for task in &self.tasks {
            let (nodes, subtask): (&[usize], u32) = match task {
                Task::Source { node, subtask } | Task::Sink { node, subtask } => (std::slice::from_ref(node), *subtask),
                Task::Chain { members, subtask } => (members, *subtask),
            };
            for &n in nodes {
                let node = &graph.nodes[n];
                let id = match &node.kind {
                    NodeKind::Operator { spec, .. } => spec.uid.clone(),
                    _ => node.id.clone(),
                };
                keys.insert(TaskKey { role: node.kind.role(), id, subtask });
            }
        }
        keys
    }
}

/// For each node, the operator it is chained into.
fn chaining(graph: &JobGraph) -> Vec<Option<usize>> {
    let mut chained_into = vec![None; graph.nodes.len()];
    for (to, node) in graph.nodes.iter().enumerate() {
        if node.kind.role() != NodeRole::Operator {
            continue;
        }
        let ins: Vec<_> = graph.inputs(to).collect();
        if let [e] = ins.as_slice() {
            let from = e.from;
            if e.partitioning == Partitioning::Forward
                && e.tag.is_none()
                && graph.outputs(from).count() == 1
                && graph.nodes[from].kind.role() == NodeRole::Operator
                && graph.nodes[from].parallelism == node.parallelism
            {
                chained_into[to] = Some(from);
            }
        }
    }
    chained_into
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_job::JobSpec;
    use std::path::Path;

    fn plan(yaml: &str) -> (JobGraph, PhysicalPlan) {
        let spec = JobSpec::parse(yaml, "t.yaml", &Default::default()).expect("spec");
        let graph = JobGraph::build(&spec, Path::new("."), None).expect("graph");
        let plan = PhysicalPlan::new(&graph);
        (graph, plan)
    }

    fn idx(g: &JobGraph, id: &str) -> usize {
        g.nodes.iter().position(|n| n.id == id).expect("node")
    }

    #[test]
    fn forward_operators_of_equal_parallelism_chain_into_one_task() {
        let (g, p) = plan(
            "name: j\nparallelism: 2\nsources:\n  - {id: s, type: generator, count: 1, parallelism: 2}\n\
             operators:\n  - {uid: a, plugin: a.wasm, inputs: [s]}\n  - {uid: b, plugin: b.wasm, inputs: [a]}\n  - {uid: c, plugin: c.wasm, inputs: [b]}\n\
             sinks:\n  - {id: o, type: stdout, inputs: [c]}\n",
        );
        let (a, b, c) = (idx(&g, "a"), idx(&g, "b"), idx(&g, "c"));
        assert_eq!(
            (p.chained_into(a), p.chained_into(b), p.chained_into(c)),
            (None, Some(a), Some(b)),
            "a source never heads a chain with operators"
        );
        let chains: Vec<_> = p.tasks.iter().filter(|t| matches!(t, Task::Chain { .. })).collect();
        assert_eq!(chains, vec![&Task::Chain { members: vec![a, b, c], subtask: 0 }, &Task::Chain { members: vec![a, b, c], subtask: 1 }]);
        // s → a is forward: subtask i feeds subtask i only, through one channel each.
        assert_eq!(p.input_channels(SubtaskId { node: a, subtask: 0 }), 1);
        assert_eq!(p.outputs(&g, idx(&g, "s"), 1), vec![OutputPlan { edge: 0, targets: vec![(SubtaskId { node: a, subtask: 1 }, 0)] }]);
        // Inside the chain no channel; c (p2) → o (p1) is rebalanced over both subtasks.
        assert!(p.outputs(&g, a, 0).is_empty());
        let o = idx(&g, "o");
        assert_eq!(p.input_channels(SubtaskId { node: o, subtask: 0 }), 2);
        assert_eq!(p.outputs(&g, c, 1)[0].targets, vec![(SubtaskId { node: o, subtask: 0 }, 1)]);
        assert_eq!(p.snapshot_parts(&g).len(), 2 + 3 * 2 + 1);
    }

    #[test]
    fn named_inputs_number_their_channels_and_broadcast_inputs_reach_every_subtask() {
        let (g, p) = plan(
            "name: j\nsources:\n  - {id: tx, type: generator, count: 1, parallelism: 2}\n  - {id: rules, type: generator, count: 1}\n\
             operators:\n  - {uid: r, plugin: r.wasm, key_by: {field: key}, parallelism: 3,\n     inputs: {transactions: [tx], rules: {from: [rules], broadcast: true}}}\n\
             sinks:\n  - {id: o, type: stdout, inputs: [r]}\n",
        );
        let r = idx(&g, "r");
        assert_eq!(p.chained_into(r), None);
        for t in 0..3 {
            let id = SubtaskId { node: r, subtask: t };
            // Two channels from tx (hash), one from rules (broadcast), in edge order.
            assert_eq!(p.channel_inputs(id), vec![0, 0, 1]);
        }
        let rules_out = p.outputs(&g, idx(&g, "rules"), 0);
        assert_eq!(rules_out[0].targets.len(), 3, "the broadcast edge reaches every subtask");
        assert_eq!(g.edges[rules_out[0].edge].partitioning, Partitioning::Broadcast);
    }

    #[test]
    fn placement_shares_slots_by_subtask_index_and_spreads_over_workers() {
        let (_, p) = plan(
            "name: j\nsources:\n  - {id: s, type: generator, count: 1, parallelism: 3}\n\
             operators:\n  - {uid: k, plugin: k.wasm, inputs: [s], key_by: {field: key}, parallelism: 4}\n\
             sinks:\n  - {id: o, type: stdout, inputs: [k]}\n",
        );
        // Three workers with 2, 1 and 2 slots: slots in order w0, w1, w2, w0, w2.
        let at = p.placement(&[2, 1, 2]).expect("slots");
        let by_task: Vec<(u32, usize)> = p.tasks.iter().map(Task::subtask).zip(at.iter().copied()).collect();
        for (subtask, worker) in &by_task {
            assert_eq!(*worker, [0, 1, 2, 0, 2][*subtask as usize], "subtask {subtask}");
        }
        // Fewer slots than subtasks: they wrap.
        let one = p.placement(&[1]).expect("slots");
        assert!(one.iter().all(|w| *w == 0));
        assert_eq!(p.placement(&[]), None);
        assert_eq!(p.placement(&[0, 0]), None);
    }

    #[test]
    fn keyed_fan_out_and_side_outputs_break_chains_and_wire_every_pair() {
        let (g, p) = plan(
            &[
                "name: j",
                "sources:",
                "  - {id: s, type: generator, count: 1, parallelism: 2}",
                "operators:",
                "  - {uid: a, plugin: a.wasm, inputs: [s], parallelism: 2}",
                "  - {uid: k, plugin: k.wasm, inputs: [a], key_by: {field: key}, parallelism: 3}",
                "  - {uid: x, plugin: x.wasm, inputs: [k], parallelism: 3}",
                "  - {uid: y, plugin: y.wasm, inputs: [k], parallelism: 3}",
                "sinks:",
                "  - {id: o, type: stdout, inputs: [x, y, k.late]}",
            ]
            .join("\n"),
        );
        let (a, k, x, y) = (idx(&g, "a"), idx(&g, "k"), idx(&g, "x"), idx(&g, "y"));
        assert_eq!(p.chained_into(k), None, "a hash edge is a channel");
        assert_eq!((p.chained_into(x), p.chained_into(y)), (None, None), "k has three outputs: nothing chains to it");
        // a (p2) → k (p3) by key: every pair, 2 channels into each k subtask.
        for t in 0..3 {
            assert_eq!(p.input_channels(SubtaskId { node: k, subtask: t }), 2);
        }
        assert_eq!(p.outputs(&g, a, 1)[0].targets.len(), 3);
        // k's side output `late` reaches the sink on its own edge.
        let outs = p.outputs(&g, k, 0);
        assert_eq!(outs.len(), 3);
        assert!(outs.iter().any(|o| g.edges[o.edge].tag.as_deref() == Some("late")));
        assert_eq!(p.input_channels(SubtaskId { node: idx(&g, "o"), subtask: 0 }), 9);
        let sources = p.tasks.iter().filter(|t| matches!(t, Task::Source { .. })).count();
        assert_eq!(sources, 2);
    }
}
