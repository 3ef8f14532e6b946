//! `rivulet nexmark`: run one Nexmark query's job (`plugins-examples/nexmark/jobs/qN.yaml`)
//! on the built-in generator and report its throughput, CPU time and peak memory —
//! results to a blackhole sink (counted) unless `--output` names a directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use rivulet_checkpoint::CheckpointStorage;
use rivulet_job::{
    BadRecords, BlackholeSinkSpec, EventTimeSpec, FileFormat, FileSourceSpec, JobGraph, JobSpec, NexmarkEvent, OperatorInputs, OperatorSpec, Params, SinkSpec,
    SourceSpec, file_safe,
};
use rivulet_plugin::{Limits, PluginEngine};
use rivulet_runtime::{CheckpointOverrides, RunOptions, checkpoint_config, run_job};
use rivulet_state::BackendKind;

/// The queries there are jobs for.
pub const QUERIES: [&str; 10] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q9", "q11"];

/// `rivulet nexmark` options.
#[derive(Debug, clap::Args)]
pub struct NexmarkArgs {
    /// The query: q0, q1, q2, q3, q4, q5, q7, q8, q9 or q11.
    #[arg(long)]
    pub query: String,
    /// Events to generate (people, auctions and bids together).
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Events per second of event time (the reference's 10,000 by default).
    #[arg(long, default_value_t = 10_000)]
    pub event_rate: u64,
    /// Parallelism of the sources and operators.
    #[arg(long, default_value_t = 1)]
    pub parallelism: u32,
    /// State backend.
    #[arg(long, value_enum, default_value = "memory")]
    pub state_backend: BackendKind,
    /// Take an exactly-once checkpoint this often (`1s`); none without it.
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    /// Where checkpoints go (default: a fresh folder in the system temp dir, removed after).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Write the results as JSON lines to part files in this directory (default: a
    /// blackhole sink that only counts them).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Read the events from this JSON-lines file (the `nexmark` source's output, as
    /// `benchmarks/nexmark/events.yaml` writes it) instead of generating them: one file
    /// source, split by event kind by a filter stage per generator the job had.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The folder of the query jobs.
    #[arg(long, default_value = "plugins-examples/nexmark/jobs")]
    pub jobs: PathBuf,
    /// Print the figures as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Process CPU seconds (user + system, every thread) and peak resident memory in bytes
/// so far, from `/proc/self` (Linux; zeros elsewhere).
fn usage() -> (f64, u64) {
    // /proc counts CPU time in USER_HZ ticks, 100 per second on Linux.
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some((fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?) as f64 / 100.0)
        })
        .unwrap_or(0.0);
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()))
        .unwrap_or(0);
    (cpu, peak * 1024)
}

/// The query's job spec with its params filled and its sink made a blackhole unless
/// an output directory is given.
fn spec_of(args: &NexmarkArgs) -> Result<(JobSpec, PathBuf)> {
    if !QUERIES.contains(&args.query.as_str()) {
        bail!("--query {}: not one of {}", args.query, QUERIES.join(", "));
    }
    let path = args.jobs.join(format!("{}.yaml", args.query));
    let output = args.output.clone().unwrap_or_else(|| std::env::temp_dir().join("rivulet-nexmark-unused"));
    let params: BTreeMap<String, String> = [
        ("events", args.events.to_string()),
        ("event_rate", args.event_rate.to_string()),
        ("parallelism", args.parallelism.to_string()),
        ("output", output.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let cwd = std::env::current_dir().context("the working directory")?;
    let mut spec = JobSpec::from_file(&path, &Params::from_command_line(params, cwd))
        .with_context(|| format!("the {} job (run from the repository root, or give --jobs)", args.query))?;
    if args.output.is_none() {
        for sink in &mut spec.sinks {
            *sink = SinkSpec::Blackhole(BlackholeSinkSpec { id: sink.id().to_owned(), inputs: sink.inputs().to_vec() });
        }
    }
    if let Some(input) = &args.input {
        read_events_from(&mut spec, input, args.parallelism)?;
    }
    let base = path.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    Ok((spec, base))
}

/// Make `spec` read its events from `file`: its `nexmark` sources become operators
/// (same ids) that pass on the kinds they generated, fed by one file source.
fn read_events_from(spec: &mut JobSpec, file: &std::path::Path, parallelism: u32) -> Result<()> {
    let plugin = spec.operators.first().map(|o| o.plugin.clone()).context("the job has no operator")?;
    let mut filters = Vec::new();
    for s in &spec.sources {
        let SourceSpec::Nexmark(n) = s else { bail!("--input: the job has a source '{}' that is not a nexmark generator", s.id()) };
        let kinds = n.events.clone().unwrap_or_else(|| vec![NexmarkEvent::Person, NexmarkEvent::Auction, NexmarkEvent::Bid]);
        filters.push(OperatorSpec {
            uid: n.id.clone(),
            plugin: plugin.clone(),
            inputs: OperatorInputs::List(vec!["events".to_owned()]),
            key_by: None,
            parallelism: Some(parallelism),
            config: serde_json::json!({"stage": "filter", "events": kinds}),
            window: None,
            interval_join: None,
            broadcast_order: None,
            limits: None,
        });
    }
    let event_time = EventTimeSpec { field: Some("ts".to_owned()), max_out_of_orderness_ms: 0, watermark_every: None, idle_timeout_ms: None };
    spec.sources = vec![SourceSpec::File(FileSourceSpec {
        id: "events".to_owned(),
        path: std::fs::canonicalize(file).with_context(|| format!("--input {}", file.display()))?.display().to_string(),
        format: FileFormat::Jsonl,
        csv: None,
        bad_records: BadRecords::Fail,
        event_time: Some(event_time),
    })];
    filters.append(&mut spec.operators);
    spec.operators = filters;
    Ok(())
}

/// Run the query; print events/s, CPU seconds, events per CPU-second, peak RSS.
pub fn nexmark(args: NexmarkArgs) -> Result<()> {
    let started = Instant::now();
    let (spec, base) = spec_of(&args)?;
    let graph = JobGraph::build(&spec, &base, Some(args.parallelism))?;
    let scratch = tempfile_dir()?;
    let mut opts = RunOptions::new(args.state_backend, scratch.join("data"));
    opts.progress = false;
    opts.limits = Limits::default();
    if let Some(interval) = args.checkpoint_interval {
        let dir = args.checkpoint_dir.clone().unwrap_or_else(|| scratch.join("checkpoints"));
        let storage = CheckpointStorage::open(&dir.display().to_string())?.child(&file_safe(&graph.name));
        let flags = CheckpointOverrides { interval: Some(interval), ..CheckpointOverrides::default() };
        opts.checkpoint = Some(checkpoint_config(storage, None, &flags, None));
    }
    let engine = std::sync::Arc::new(PluginEngine::new(PluginEngine::default_cache_dir())?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rivulet-worker").build()?;
    let (cpu_before, _) = usage();
    let startup = started.elapsed();
    let report = runtime.block_on(run_job(&graph, &engine, &opts)).with_context(|| format!("nexmark {} failed", args.query))?;
    let (cpu_after, peak_rss) = usage();
    let _ = std::fs::remove_dir_all(&scratch);
    let seconds = report.elapsed.as_secs_f64().max(1e-9);
    let cpu = (cpu_after - cpu_before).max(1e-9);
    let results: u64 = report.nodes.iter().filter(|n| spec.sinks.iter().any(|s| s.id() == n.id)).map(|n| n.records_in).sum();
    let figures = serde_json::json!({
        "query": args.query,
        "events": args.events,
        "parallelism": args.parallelism,
        "state_backend": format!("{:?}", args.state_backend).to_lowercase(),
        "checkpoint_interval_ms": args.checkpoint_interval.map(|d| d.as_millis() as u64),
        "checkpoints": report.snapshots.len(),
        "results": results,
        "seconds": seconds,
        "events_per_second": args.events as f64 / seconds,
        "cpu_seconds": cpu,
        "events_per_cpu_second": args.events as f64 / cpu,
        "peak_rss_bytes": peak_rss,
        "startup_seconds": startup.as_secs_f64(),
    });
    if args.json {
        println!("{figures}");
    } else {
        println!(
            "nexmark {}: {} events in {:.2}s = {:.0} events/s; {:.2} CPU-s = {:.0} events per CPU-second; peak RSS {} MiB; {} results; {} checkpoints",
            args.query,
            args.events,
            seconds,
            args.events as f64 / seconds,
            cpu,
            args.events as f64 / cpu,
            peak_rss >> 20,
            results,
            report.snapshots.len()
        );
    }
    Ok(())
}

/// A fresh scratch folder for one run.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("rivulet-nexmark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
