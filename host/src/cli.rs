//! The `rivulet` command line: `run`, `validate`, `plugin inspect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::job::{JobGraph, JobSpec, NodeKind};
use crate::plugin::{Limits, PluginEngine, WORLD};
use crate::runtime::{RunOptions, run_job};
use crate::state::BackendKind;

/// Rivulet: stateful stream processing with WebAssembly operators.
#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job to completion (bounded inputs) or until interrupted.
    Run(RunArgs),
    /// Check a job spec and its plugins without running it.
    Validate(SpecArgs),
    /// Work with plugin components.
    Plugin {
        /// Plugin subcommand.
        #[command(subcommand)]
        command: PluginCommand,
    },
}

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a component's world check, imports, exports, size and digest.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
}

/// A job spec and its parameters.
#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    /// The job spec (YAML or JSON).
    pub job: PathBuf,
    /// Fill `${NAME}` in the spec: `--param NAME=VALUE` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Default parallelism of operators (overrides the spec's).
    #[arg(long)]
    pub parallelism: Option<u32>,
}

/// `rivulet run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// State backend (default: the spec's, else memory).
    #[arg(long, value_enum)]
    pub state_backend: Option<BackendKind>,
    /// Directory for RocksDB state (default: a `rivulet-data` folder in the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Don't print progress on stderr.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_params(raw: &[String]) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?}: expected NAME=VALUE");
        };
        params.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(params)
}

fn load_graph(args: &SpecArgs) -> Result<(JobSpec, JobGraph)> {
    let params = parse_params(&args.params)?;
    let spec = JobSpec::from_file(&args.job, &params)?;
    let base = args.job.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    let graph = JobGraph::build(&spec, &base, args.parallelism)?;
    Ok((spec, graph))
}

fn engine() -> Result<Arc<PluginEngine>> {
    Ok(PluginEngine::new(PluginEngine::default_cache_dir())?)
}

fn run(args: RunArgs) -> Result<()> {
    let (spec, graph) = load_graph(&args.spec)?;
    let opts = RunOptions {
        state_backend: args.state_backend.or(spec.state_backend).unwrap_or(BackendKind::Memory),
        data_dir: args.data_dir.unwrap_or_else(|| std::env::temp_dir().join("rivulet-data")),
        progress: !args.quiet,
        limits: Limits::default(),
    };
    let engine = engine()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rivulet-worker").build()?;
    let report = runtime.block_on(run_job(&graph, &engine, &opts)).with_context(|| format!("job '{}' failed", graph.name))?;
    if !args.quiet {
        eprintln!("[rivulet] job '{}' finished in {:.2}s", graph.name, report.elapsed.as_secs_f64());
        for (id, r_in, r_out, late) in &report.nodes {
            let late = if *late > 0 { format!(", {late} late") } else { String::new() };
            eprintln!("[rivulet]   {id}: {r_in} in, {r_out} out{late}");
        }
    }
    Ok(())
}

fn validate(args: SpecArgs) -> Result<()> {
    let (_, graph) = load_graph(&args)?;
    let engine = engine()?;
    for node in &graph.nodes {
        if let NodeKind::Operator { plugin_path, spec } = &node.kind {
            let p = engine.load_file(plugin_path).with_context(|| format!("operator '{}'", spec.uid))?;
            println!("operator {} → plugin {} ({} bytes), parallelism {}", spec.uid, p.label(), p.size, node.parallelism);
        }
    }
    println!("job '{}' is valid: {} nodes, {} edges", graph.name, graph.nodes.len(), graph.edges.len());
    Ok(())
}

fn inspect(file: &Path) -> Result<()> {
    let engine = engine()?;
    let p = engine.load_file(file)?;
    println!("file:    {}", file.display());
    println!("world:   {WORLD} (matches)");
    println!("size:    {} bytes", p.size);
    println!("digest:  {}", p.digest);
    println!("imports:");
    for i in &p.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &p.exports {
        println!("  {e}");
    }
    Ok(())
}

/// Entry point: parse arguments, set up logging, run, map errors to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIVULET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rivulet::guest=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate(args) => validate(args),
        Command::Plugin { command: PluginCommand::Inspect { file } } => inspect(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
