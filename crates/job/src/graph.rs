//! Validation of a [`JobSpec`] into a logical dataflow DAG.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rivulet_dataflow::{NodeRole, Partitioning};

use crate::error::SpecError;
use crate::spec::{JobSpec, KeyBy, NamedInput, OperatorInputs, OperatorSpec, SinkSpec, SourceSpec, WindowKind, WindowSpec, resolve_path};

/// What a node is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum NodeKind {
    /// A built-in source.
    Source(SourceSpec),
    /// A Wasm operator; `plugin_path` is resolved against the spec's directory.
    Operator {
        /// The spec.
        spec: OperatorSpec,
        /// Resolved plugin path.
        plugin_path: PathBuf,
    },
    /// A built-in sink.
    Sink(SinkSpec),
}

impl NodeKind {
    /// The node's role.
    pub fn role(&self) -> NodeRole {
        match self {
            NodeKind::Source(_) => NodeRole::Source,
            NodeKind::Operator { .. } => NodeRole::Operator,
            NodeKind::Sink(_) => NodeRole::Sink,
        }
    }
}

/// A vertex of the job graph.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// Its id (`uid` for operators).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Parallel instances.
    pub parallelism: u32,
}

/// An edge: the main output (`tag = None`) or a side output of `from` into `to`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Edge {
    /// Upstream node index.
    pub from: usize,
    /// Side-output tag, if any.
    pub tag: Option<String>,
    /// Downstream node index.
    pub to: usize,
    /// Which input of `to` it feeds (the index of a named input; 0 otherwise).
    #[serde(default)]
    pub input: u32,
    /// Partitioning.
    pub partitioning: Partitioning,
}

/// A validated job: nodes in topological order and the edges between them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobGraph {
    /// Job name.
    pub name: String,
    /// Nodes, sources first, in topological order.
    pub nodes: Vec<Node>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// Key groups.
    pub max_parallelism: u16,
    /// Records per batch.
    pub batch_size: usize,
    /// The largest record a source may produce, in bytes.
    pub max_record_bytes: usize,
    /// Directory relative paths resolve against.
    pub base_dir: PathBuf,
}

impl JobGraph {
    /// Validate `spec`; `base_dir` is the directory of the spec file. `parallelism`
    /// overrides the spec's default operator parallelism.
    pub fn build(spec: &JobSpec, base_dir: &Path, parallelism: Option<u32>) -> Result<JobGraph, SpecError> {
        if spec.name.trim().is_empty() {
            return Err(SpecError::invalid("name", "must not be empty"));
        }
        crate::bounds::check(spec)?;
        if spec.sources.is_empty() {
            return Err(SpecError::invalid("sources", "a job needs at least one source"));
        }
        if spec.sinks.is_empty() {
            return Err(SpecError::invalid("sinks", "a job needs at least one sink"));
        }
        let batch_size = spec.batch_size.unwrap_or(1024);
        let nodes = nodes(spec, base_dir, parallelism.or(spec.parallelism).unwrap_or(1))?;
        let edges = edges(&nodes)?;
        let order = topological_order(&nodes, &edges)?;
        for (i, node) in nodes.iter().enumerate() {
            if node.kind.role() != NodeRole::Sink && !edges.iter().any(|e| e.from == i) {
                tracing::warn!(node = %node.id, "output is not consumed by any operator or sink");
            }
        }
        let remap: BTreeMap<usize, usize> = order.iter().enumerate().map(|(new, &old)| (old, new)).collect();
        let edges = edges.into_iter().map(|e| Edge { from: remap[&e.from], to: remap[&e.to], ..e }).collect();
        let nodes: Vec<Node> = order.iter().map(|&i| nodes[i].clone()).collect();
        let max_record_bytes = spec.max_record_bytes.unwrap_or(crate::bounds::DEFAULT_MAX_RECORD_BYTES) as usize;
        Ok(JobGraph {
            name: spec.name.clone(),
            nodes,
            edges,
            max_parallelism: spec.max_parallelism,
            batch_size,
            max_record_bytes,
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// Edges leaving node `i`.
    pub fn outputs(&self, i: usize) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.from == i)
    }

    /// Edges entering node `i`.
    pub fn inputs(&self, i: usize) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.to == i)
    }

    /// Indices of the nodes with `role`.
    pub fn nodes_with(&self, role: NodeRole) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().enumerate().filter(move |(_, n)| n.kind.role() == role).map(|(i, _)| i)
    }

    /// The operators' uids.
    pub fn operator_uids(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| if let NodeKind::Operator { spec, .. } = &n.kind { Some(spec.uid.as_str()) } else { None })
    }
}

/// Every node of the spec, checked one by one, in spec order.
fn nodes(spec: &JobSpec, base_dir: &Path, default_par: u32) -> Result<Vec<Node>, SpecError> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut add = |at: String, node: Node| -> Result<(), SpecError> {
        if node.id.trim().is_empty() {
            return Err(SpecError::invalid(at, "id must not be empty"));
        }
        if node.id.contains('.') {
            return Err(SpecError::invalid(at, format!("id '{}' must not contain '.', which addresses side outputs", node.id)));
        }
        if nodes.iter().any(|n| n.id == node.id) {
            return Err(SpecError::invalid(at, format!("id '{}' is used twice", node.id)));
        }
        nodes.push(node);
        Ok(())
    };
    for (i, s) in spec.sources.iter().enumerate() {
        let at = format!("sources[{i}] (id '{}')", s.id());
        let p = s.parallelism();
        let (rate, event_rate) = match s {
            SourceSpec::Generator(g) => (g.rate, None),
            SourceSpec::Nexmark(n) => (n.rate, n.event_rate),
            _ => (None, None),
        };
        if rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(SpecError::invalid(format!("{at}.rate"), "must be a positive number of events per second"));
        }
        if event_rate.is_some_and(|r| !(r > 0.0 && r <= 1e6)) {
            return Err(SpecError::invalid(format!("{at}.event_rate"), "must be a positive number of events per second, at most 1000000"));
        }
        if let SourceSpec::Nexmark(n) = s
            && n.events.as_ref().is_some_and(Vec::is_empty)
        {
            return Err(SpecError::invalid(format!("{at}.events"), "must name at least one of person, auction, bid"));
        }
        add(at, Node { id: s.id().to_owned(), kind: NodeKind::Source(s.clone()), parallelism: p })?;
    }
    for (i, o) in spec.operators.iter().enumerate() {
        let at = format!("operators[{i}] (uid '{}')", o.uid);
        let p = o.parallelism.unwrap_or(default_par);
        if p == 0 || p > u32::from(spec.max_parallelism) {
            return Err(SpecError::invalid(at, format!("parallelism {p} must be between 1 and max_parallelism ({})", spec.max_parallelism)));
        }
        if o.plugin.trim().is_empty() {
            return Err(SpecError::invalid(format!("{at}.plugin"), "must name a .wasm component"));
        }
        check_key_by(&at, o.key_by.as_ref())?;
        check_inputs(&at, o)?;
        if let Some(w) = &o.window {
            if o.inputs.resolved(o.key_by.as_ref()).iter().any(|i| i.key_by.is_none()) {
                return Err(SpecError::invalid(format!("{at}.window"), "windows need keyed inputs (and no broadcast input): add `key_by`"));
            }
            check_window(&format!("{at}.window"), w)?;
        }
        let plugin_path = resolve_path(base_dir, &o.plugin);
        add(at, Node { id: o.uid.clone(), kind: NodeKind::Operator { spec: o.clone(), plugin_path }, parallelism: p })?;
    }
    for (i, s) in spec.sinks.iter().enumerate() {
        let at = format!("sinks[{i}] (id '{}')", s.id());
        add(at, Node { id: s.id().to_owned(), kind: NodeKind::Sink(s.clone()), parallelism: 1 })?;
    }
    Ok(nodes)
}

fn check_window(at: &str, w: &WindowSpec) -> Result<(), SpecError> {
    let positive = |v: Option<i64>, name: &str| -> Result<i64, SpecError> {
        match v {
            Some(x) if x > 0 => Ok(x),
            _ => Err(SpecError::invalid(format!("{at}.{name}"), format!("a {:?} window needs a positive `{name}`", w.kind))),
        }
    };
    match w.kind {
        WindowKind::Tumbling => {
            positive(w.size_ms, "size_ms")?;
        }
        WindowKind::Sliding => {
            let size = positive(w.size_ms, "size_ms")?;
            let slide = positive(w.slide_ms, "slide_ms")?;
            if slide > size {
                return Err(SpecError::invalid(at, "slide_ms must not exceed size_ms"));
            }
        }
        WindowKind::Session => {
            positive(w.gap_ms, "gap_ms")?;
        }
    }
    if w.allowed_lateness_ms < 0 {
        return Err(SpecError::invalid(format!("{at}.allowed_lateness_ms"), "must not be negative"));
    }
    Ok(())
}

/// Named inputs, joins and broadcast settings that fit together.
fn check_inputs(at: &str, o: &OperatorSpec) -> Result<(), SpecError> {
    let inputs = o.inputs.resolved(o.key_by.as_ref());
    if inputs.len() > 255 {
        return Err(SpecError::invalid(format!("{at}.inputs"), "at most 255 named inputs"));
    }
    for i in &inputs {
        check_key_by(&format!("{at}.inputs.{}", i.name), i.key_by.as_ref())?;
        if i.name.is_empty() {
            return Err(SpecError::invalid(format!("{at}.inputs"), "an input name must not be empty"));
        }
        if i.broadcast && matches!(&o.inputs, OperatorInputs::Named(n) if n.iter().any(|n| n.name == i.name && n.key_by.is_some())) {
            return Err(SpecError::invalid(format!("{at}.inputs.{}", i.name), "a broadcast input reaches every subtask and has no `key_by`"));
        }
    }
    let broadcast = inputs.iter().filter(|i| i.broadcast).count();
    if broadcast > 0 && broadcast == inputs.len() {
        return Err(SpecError::invalid(format!("{at}.inputs"), "an operator needs at least one input that is not broadcast"));
    }
    if o.broadcast_order.is_some() && broadcast == 0 {
        return Err(SpecError::invalid(format!("{at}.broadcast_order"), "only operators with a broadcast input have a broadcast order"));
    }
    if let Some(j) = &o.interval_join {
        let at = format!("{at}.interval_join");
        if inputs.len() != 2 || broadcast > 0 {
            return Err(SpecError::invalid(at, "an interval join needs exactly two named inputs (left first, then right), neither broadcast"));
        }
        if inputs.iter().any(|i| i.key_by.is_none()) {
            return Err(SpecError::invalid(at, "an interval join pairs records of the same key: add `key_by`"));
        }
        if o.window.is_some() {
            return Err(SpecError::invalid(at, "an operator has either a `window` or an `interval_join`"));
        }
        if j.lower_ms > j.upper_ms {
            return Err(SpecError::invalid(at, format!("lower_ms ({}) must not exceed upper_ms ({})", j.lower_ms, j.upper_ms)));
        }
    }
    if o.window.is_some() && broadcast > 0 {
        return Err(SpecError::invalid(format!("{at}.window"), "a windowed operator cannot have broadcast inputs"));
    }
    Ok(())
}

/// The edges, from each consumer's `inputs`: hash-partitioned into keyed inputs,
/// broadcast into broadcast inputs, forward between equal parallelisms, rebalanced
/// otherwise.
fn edges(nodes: &[Node]) -> Result<Vec<Edge>, SpecError> {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut edges = Vec::new();
    for (to, node) in nodes.iter().enumerate() {
        let (inputs, at) = match &node.kind {
            NodeKind::Source(_) => continue,
            NodeKind::Operator { spec, .. } => (spec.inputs.resolved(spec.key_by.as_ref()), format!("operator '{}'.inputs", node.id)),
            NodeKind::Sink(s) => {
                let from = s.inputs().to_vec();
                (
                    vec![NamedInput { name: crate::spec::MAIN_INPUT.to_owned(), from, key_by: None, broadcast: false }],
                    format!("sink '{}'.inputs", node.id),
                )
            }
        };
        if inputs.is_empty() || inputs.iter().any(|i| i.from.is_empty()) {
            return Err(SpecError::invalid(at, "needs at least one input"));
        }
        for (index_of_input, named) in inputs.iter().enumerate() {
            let key_by = named.key_by.as_ref();
            for input in &named.from {
                let (name, tag) = match input.split_once('.') {
                    Some((n, t)) => (n, Some(t.to_owned())),
                    None => (input.as_str(), None),
                };
                let Some(&from) = index.get(name) else {
                    let known: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
                    return Err(SpecError::invalid(&at, format!("unknown input '{name}' (known: {})", known.join(", "))));
                };
                let upstream = &nodes[from];
                if let NodeKind::Sink(_) = upstream.kind {
                    return Err(SpecError::invalid(&at, format!("'{name}' is a sink and has no output")));
                }
                if let (Some(t), NodeKind::Source(s)) = (&tag, &upstream.kind)
                    && !s.side_outputs().contains(&t.as_str())
                {
                    return Err(SpecError::invalid(
                        &at,
                        format!("'{input}': only operators have side outputs (and Kafka sources their `dead-letter`)"),
                    ));
                }
                if tag.as_deref() == Some("") {
                    return Err(SpecError::invalid(&at, format!("'{input}': empty side-output tag")));
                }
                let partitioning = match key_by {
                    _ if named.broadcast => Partitioning::Broadcast,
                    Some(k) => Partitioning::Hash(k.selector()),
                    None if upstream.parallelism == node.parallelism => Partitioning::Forward,
                    None => Partitioning::Rebalance,
                };
                edges.push(Edge { from, tag, to, input: index_of_input as u32, partitioning });
            }
        }
    }
    Ok(edges)
}

/// Kahn's algorithm, stable for nodes without dependencies; a cycle is an error naming
/// its members.
fn topological_order(nodes: &[Node], edges: &[Edge]) -> Result<Vec<usize>, SpecError> {
    let n = nodes.len();
    let mut indeg = vec![0usize; n];
    for e in edges {
        indeg[e.to] += 1;
    }
    let mut order = Vec::with_capacity(n);
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    ready.reverse();
    while let Some(i) = ready.pop() {
        order.push(i);
        for e in edges.iter().filter(|e| e.from == i) {
            indeg[e.to] -= 1;
            if indeg[e.to] == 0 {
                ready.push(e.to);
            }
        }
    }
    if order.len() != n {
        let cyclic: Vec<&str> = (0..n).filter(|i| !order.contains(i)).map(|i| nodes[i].id.as_str()).collect();
        return Err(SpecError::invalid("operators", format!("the graph has a cycle through {}", cyclic.join(" → "))));
    }
    Ok(order)
}

fn check_key_by(at: &str, k: Option<&KeyBy>) -> Result<(), SpecError> {
    match k {
        Some(KeyBy::RecordKey(s)) if s != "record_key" => {
            Err(SpecError::invalid(format!("{at}.key_by"), format!("'{s}' is not a key selector: use `record_key` or `{{field: NAME}}`")))
        }
        Some(KeyBy::Field { field }) if field.is_empty() => Err(SpecError::invalid(format!("{at}.key_by.field"), "must not be empty")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_dataflow::KeySelector;

    fn graph(yaml: &str) -> Result<JobGraph, SpecError> {
        let spec = JobSpec::parse(yaml, "t.yaml", &crate::Params::default())?;
        JobGraph::build(&spec, Path::new("."), None)
    }

    const BASE: &str = "name: j\nsources:\n  - {id: s, type: file, path: in, format: text}\n";

    #[test]
    fn fan_out_and_union_are_accepted() {
        let g = graph(&format!(
            "{BASE}operators:\n  - {{uid: a, plugin: a.wasm, inputs: [s]}}\n  - {{uid: b, plugin: b.wasm, inputs: [s]}}\n  - {{uid: c, plugin: c.wasm, inputs: [a, b], key_by: record_key, parallelism: 2}}\nsinks:\n  - {{id: o, type: stdout, inputs: [c, a.late]}}\n"
        ))
        .expect("valid");
        assert_eq!(g.nodes.len(), 5);
        assert_eq!(g.edges.len(), 6);
        let c = g.nodes.iter().position(|n| n.id == "c").expect("c");
        assert!(g.inputs(c).all(|e| e.partitioning == Partitioning::Hash(KeySelector::RecordKey)));
        let o = g.nodes.iter().position(|n| n.id == "o").expect("o");
        assert!(g.inputs(o).any(|e| e.partitioning == Partitioning::Rebalance), "c (p2) → o (p1) is rebalanced");
        assert!(g.inputs(o).any(|e| e.tag.as_deref() == Some("late") && e.partitioning == Partitioning::Forward));
        assert_eq!(g.nodes_with(NodeRole::Source).collect::<Vec<_>>(), vec![0], "sources come first");
    }

    #[test]
    fn errors_name_the_part() {
        let e =
            graph(&format!("{BASE}operators:\n  - {{uid: a, plugin: a.wasm, inputs: [nope]}}\nsinks:\n  - {{id: o, type: stdout, inputs: [a]}}\n"))
                .expect_err("unknown input");
        assert!(e.to_string().contains("operator 'a'.inputs") && e.to_string().contains("nope"), "{e}");
        let e = graph(&format!("{BASE}operators:\n  - {{uid: a, plugin: a.wasm, inputs: [b]}}\n  - {{uid: b, plugin: b.wasm, inputs: [a]}}\nsinks:\n  - {{id: o, type: stdout, inputs: [a]}}\n"))
            .expect_err("cycle");
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = graph(&format!("{BASE}operators:\n  - {{uid: a, plugin: a.wasm, inputs: [s], window: {{type: tumbling, size_ms: 10}}}}\nsinks:\n  - {{id: o, type: stdout, inputs: [a]}}\n"))
            .expect_err("window without key");
        assert!(e.to_string().contains("key_by"), "{e}");
        let e = graph(&format!("{BASE}operators:\n  - {{uid: s, plugin: a.wasm, inputs: [s]}}\nsinks:\n  - {{id: o, type: stdout, inputs: [s]}}\n"))
            .expect_err("dup");
        assert!(e.to_string().contains("used twice"), "{e}");
        let e =
            graph(&format!("{BASE}sinks:\n  - {{id: o, type: stdout, inputs: [s.dead-letter]}}\n")).expect_err("file sources have no side outputs");
        assert!(e.to_string().contains("only operators have side outputs"), "{e}");
        let ok = graph(
            "name: j\nsources:\n  - {id: k, type: kafka, bootstrap_servers: b, topic: t}\nsinks:\n  - {id: o, type: stdout, inputs: [k.dead-letter]}\n",
        );
        assert!(ok.is_ok(), "a Kafka source's dead letters: {ok:?}");
    }
}
