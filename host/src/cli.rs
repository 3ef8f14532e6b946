//! The `rivulet` command line: `run`, `validate`, `plugin inspect|upload|list`,
//! `savepoint inspect`, `server`, `job …`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use rivulet_checkpoint::CheckpointStorage;
use rivulet_job::{JobGraph, JobSpec, NodeKind, Params, RestartSpec, file_safe};
use rivulet_plugin::{Contract, Limits, PluginEngine};
use rivulet_runtime::{CheckpointOverrides, RestoreFrom, RunOptions, checkpoint_config, run_job_with_restarts};
use rivulet_state::BackendKind;

use crate::client;
use crate::scheduler::{self, SchedulerArgs, WorkerArgs};

/// Rivulet: stateful stream processing with WebAssembly operators.
#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Print the OpenAPI document as pretty JSON with a final newline.
fn openapi() -> anyhow::Result<()> {
    use utoipa::OpenApi as _;
    let doc = rivulet_api::ApiDoc::openapi().to_pretty_json()?;
    println!("{doc}");
    Ok(())
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
    /// Work with savepoints and checkpoints.
    Savepoint {
        /// Savepoint subcommand.
        #[command(subcommand)]
        command: SavepointCommand,
    },
    /// Run the server: REST API, web UI, plugin registry, many jobs, hot swap.
    Server(ServerRunArgs),
    /// Run tasks for a coordinator (`rivulet run --scheduler standalone`): register,
    /// heartbeat, run the subtasks it is given, exchange data with other workers.
    Worker(WorkerArgs),
    /// Print the server's OpenAPI document (the web UI's API types are generated from it).
    Openapi,
    /// Run a Nexmark benchmark query on the built-in generator and report its figures.
    Nexmark(crate::nexmark::NexmarkArgs),
    /// Manage jobs on a server.
    Job {
        /// Server connection.
        #[command(flatten)]
        server: client::ServerArgs,
        /// Job subcommand.
        #[command(subcommand)]
        command: client::JobCommand,
    },
}

/// `rivulet server` options.
#[derive(Debug, clap::Args)]
pub struct ServerRunArgs {
    /// Address to listen on. Anything but loopback requires --auth-token-file.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Where plugins, job metadata, checkpoints and state are kept.
    #[arg(long, default_value = "rivulet-server-data")]
    pub data_dir: PathBuf,
    /// A file of bearer tokens, one `ROLE TOKEN` per line (roles: viewer, operator,
    /// admin), or a single bare token (admin). Every route but /healthz needs one.
    #[arg(long)]
    pub auth_token_file: Option<PathBuf>,
    /// Largest plugin upload, in MiB.
    #[arg(long, default_value_t = 64)]
    pub max_plugin_mb: usize,
    /// Checkpoint interval of jobs whose spec sets none.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub checkpoint_interval: std::time::Duration,
    /// State backend of jobs that set none.
    #[arg(long, value_enum, default_value = "memory")]
    pub state_backend: BackendKind,
    /// A directory jobs may read and write files below, besides <data-dir>/files/
    /// (where their relative paths resolve). Repeatable.
    #[arg(long = "allow-path", value_name = "DIR")]
    pub allow_paths: Vec<PathBuf>,
    /// A host jobs' connectors may connect to: HOST, HOST:PORT, *.DOMAIN[:PORT] or
    /// [IPv6]:PORT. Repeatable; none by default.
    #[arg(long = "allow-connect", value_name = "HOST[:PORT]", value_parser = clap::value_parser!(rivulet_server::HostPattern))]
    pub allow_connect: Vec<rivulet_server::HostPattern>,
    /// An S3 bucket jobs may read and write (repeatable; `NAME` or `PREFIX*`; none by
    /// default). The S3 endpoint the server's environment names must be allowed with
    /// --allow-connect too.
    #[arg(long = "allow-bucket", value_name = "NAME", value_parser = clap::value_parser!(rivulet_server::BucketPattern))]
    pub allow_buckets: Vec<rivulet_server::BucketPattern>,
    /// Connections served at once (default: a quarter of the open-file limit, 8–1024;
    /// the rest is kept for jobs). At the cap a new connection replaces the one that has
    /// waited longest without a complete request; it waits only when all are busy.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Close a connection whose request headers take longer than this (idle or
    /// half-sent).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub header_timeout: std::time::Duration,
    /// Guest memory (MiB) the running jobs may be allowed in sum: each operator instance
    /// counts with its limits.memory_mb (default 256). Default: 3/4 of the machine's.
    #[arg(long)]
    pub guest_memory_mb: Option<u64>,
    /// Bytes of plugin uploads (MiB) the server receives and compiles at once, in sum;
    /// an upload that does not fit gets 503 and retries.
    #[arg(long, default_value_t = 256)]
    pub upload_buffer_mb: usize,
    /// Serve HTTPS with this certificate chain (PEM; needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM; needs --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where jobs' tasks run: in the server, on worker processes it starts, or on
    /// workers that join.
    #[command(flatten)]
    pub cluster: SchedulerArgs,
}

/// Savepoint subcommands.
#[derive(Debug, Subcommand)]
pub enum SavepointCommand {
    /// Print what a savepoint or checkpoint holds: operators, plugins, state names and
    /// versions, key groups, timers, source positions, pending sink files.
    Inspect {
        /// The snapshot directory (`…/savepoints/sp-…` or `…/chk-…`, local or `s3://`).
        path: String,
        /// Also print every state entry.
        #[arg(long)]
        entries: bool,
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
    /// Upload a component to a server (validated there before it is stored).
    Upload {
        /// The `.wasm` component.
        file: PathBuf,
        /// Name to register it under (default: the file stem).
        #[arg(long)]
        name: Option<String>,
        /// Version.
        #[arg(long)]
        version: String,
        /// Server connection.
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// List a server's plugins.
    List {
        /// Server connection.
        #[command(flatten)]
        server: client::ServerArgs,
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
    /// Checkpoint location: a directory or `s3://bucket/prefix` (AWS_* variables for S3).
    /// Snapshots of the job go below `<location>/<job name>/`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub checkpoint_dir: Option<String>,
    /// Take a checkpoint this often (`200ms`, `5s`, `1m`).
    #[arg(long, value_parser = parse_duration)]
    pub checkpoint_interval: Option<std::time::Duration>,
    /// Abort a checkpoint that is not complete after this long.
    #[arg(long, value_parser = parse_duration)]
    pub checkpoint_timeout: Option<std::time::Duration>,
    /// Complete checkpoints to keep.
    #[arg(long)]
    pub checkpoints_retained: Option<usize>,
    /// Consecutive failed checkpoints tolerated before the job fails.
    #[arg(long)]
    pub tolerable_checkpoint_failures: Option<u32>,
    /// Upload whole RocksDB state at every checkpoint instead of only new SST files.
    #[arg(long)]
    pub full_checkpoints: bool,
    /// Start from `latest` (the newest complete checkpoint or savepoint under
    /// --checkpoint-dir; fresh when there is none) or a snapshot directory.
    #[arg(long, value_name = "latest|PATH")]
    pub restore: Option<String>,
    /// Drop state of operators the job no longer has instead of refusing to start.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// Stop with a savepoint once the sources have emitted this many records.
    #[arg(long, value_name = "N")]
    pub stop_with_savepoint_after_records: Option<u64>,
    /// Take a savepoint whenever this file appears (it is removed); SIGUSR1 does too.
    #[arg(long, value_name = "FILE")]
    pub savepoint_trigger_file: Option<PathBuf>,
    /// Restarts after a task failure (default: 3 with checkpointing, else 0).
    #[arg(long)]
    pub restart_attempts: Option<u32>,
    /// Delay before a restart (default 1s).
    #[arg(long, value_parser = parse_duration)]
    pub restart_delay: Option<std::time::Duration>,
    /// Where the tasks run: in this process, on worker processes it starts, or on
    /// workers that join.
    #[command(flatten)]
    pub cluster: SchedulerArgs,
}

/// Parse `200ms`, `5s`, `2m`, or a bare number of milliseconds.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "ms"),
    };
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a duration (try 200ms, 5s, 1m)"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1e3,
        "m" | "min" => n * 60e3,
        "h" => n * 3600e3,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s, m, h)")),
    };
    if !(ms > 0.0) {
        return Err(format!("'{s}' must be positive"));
    }
    Ok(std::time::Duration::from_micros((ms * 1e3) as u64))
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
    let cwd = std::env::current_dir().context("the working directory")?;
    let spec = JobSpec::from_file(&args.job, &Params::from_command_line(params, cwd))?;
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
    // --checkpoint-dir is typed in a shell (relative to its working directory); the
    // spec's checkpoint.dir, like every place in a spec, is relative to the spec's folder.
    let location = match (&args.checkpoint_dir, spec.checkpoint.as_ref().and_then(|c| c.dir.as_deref())) {
        (Some(flag), _) => Some(rivulet_checkpoint::Location::parse_from_cwd(flag)?),
        (None, Some(dir)) => Some(rivulet_checkpoint::Location::parse(dir, &std::path::absolute(&graph.base_dir)?)?),
        (None, None) => None,
    };
    let checkpoint = match &location {
        Some(loc) => {
            let storage = CheckpointStorage::open_location(loc)?.child(&file_safe(&graph.name));
            let flags = CheckpointOverrides {
                interval: args.checkpoint_interval,
                timeout: args.checkpoint_timeout,
                retain: args.checkpoints_retained,
                tolerable_failures: args.tolerable_checkpoint_failures,
                full: args.full_checkpoints,
            };
            Some(checkpoint_config(storage, spec.checkpoint.as_ref(), &flags, None))
        }
        None => {
            if args.checkpoint_interval.is_some() {
                bail!("--checkpoint-interval needs a checkpoint location (--checkpoint-dir)");
            }
            None
        }
    };
    let restore = match args.restore.as_deref() {
        None => RestoreFrom::Nothing,
        Some("latest") => {
            if checkpoint.is_none() {
                bail!("--restore latest needs --checkpoint-dir");
            }
            RestoreFrom::Latest
        }
        Some(p) => RestoreFrom::Path(p.to_owned()),
    };
    if args.stop_with_savepoint_after_records.is_some() && checkpoint.is_none() {
        bail!("--stop-with-savepoint-after-records needs --checkpoint-dir (savepoints go below it)");
    }
    let mut opts = RunOptions::new(
        args.state_backend.or(spec.state_backend).unwrap_or(BackendKind::Memory),
        args.data_dir.unwrap_or_else(|| std::env::temp_dir().join("rivulet-data")),
    );
    opts.progress = !args.quiet;
    opts.limits = Limits::default();
    opts.restore = restore;
    opts.allow_non_restored_state = args.allow_non_restored_state;
    opts.stop_with_savepoint_after_records = args.stop_with_savepoint_after_records;
    opts.savepoint_trigger_file = args.savepoint_trigger_file;
    opts.savepoint_on_signal = checkpoint.is_some();
    let default_attempts = if checkpoint.is_some() { 3 } else { 0 };
    opts.checkpoint = checkpoint;
    let restart = RestartSpec {
        attempts: args.restart_attempts.or(spec.restart.as_ref().map(|r| r.attempts)).unwrap_or(default_attempts),
        delay_ms: args.restart_delay.map(|d| d.as_millis() as u64).or(spec.restart.as_ref().map(|r| r.delay_ms)).unwrap_or(1000),
    };
    let engine = engine()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rivulet-worker").build()?;
    let report = runtime
        .block_on(async {
            if args.cluster.kube.kube_lease.is_some() {
                bail!("--kube-lease is for `rivulet server` (a coordinator that serves jobs)");
            }
            let cluster = scheduler::start(&args.cluster, &opts.data_dir, true, 0).await?;
            if let Some(c) = &cluster {
                opts.hosts = Some(Arc::new(c.cluster.clone()));
            }
            let result = run_job_with_restarts(&graph, &engine, &opts, Some(&restart)).await;
            // Workers made for the job (pods) go with it.
            if let Some(c) = &cluster {
                rivulet_runtime::TaskHosts::job_ended(&c.cluster, &graph.name).await;
            }
            anyhow::Ok(result?)
        })
        .with_context(|| format!("job '{}' failed", graph.name))?;
    // Failures the job recovered from are always reported, quiet or not.
    for f in &report.failures {
        eprintln!(
            "[rivulet] failure on attempt {}: operator {} plugin {}: {}",
            f.attempt,
            f.operator.as_deref().unwrap_or("-"),
            f.plugin.as_deref().unwrap_or("-"),
            f.reason
        );
    }
    if !args.quiet {
        for (id, reason) in &report.snapshot_failures {
            eprintln!("[rivulet] snapshot {id} failed: {reason}");
        }
        let checkpoints = report.snapshots.len();
        if let Some(sp) = &report.stopped_with_savepoint {
            eprintln!("[rivulet] job '{}' stopped with savepoint {sp}", graph.name);
        } else {
            eprintln!("[rivulet] job '{}' finished in {:.2}s ({checkpoints} snapshots)", graph.name, report.elapsed.as_secs_f64());
        }
        for n in &report.nodes {
            let late = if n.late > 0 { format!(", {} late", n.late) } else { String::new() };
            eprintln!("[rivulet]   {}: {} in, {} out{late}", n.id, n.records_in, n.records_out);
        }
    }
    if let Some(sp) = &report.stopped_with_savepoint {
        println!("{sp}");
    }
    Ok(())
}

fn savepoint_inspect(path: &str, entries: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let text = runtime.block_on(rivulet_checkpoint::inspect(path, entries, &rivulet_job::secrets::redact_json))?;
    print!("{text}");
    Ok(())
}

fn server(args: ServerRunArgs) -> Result<()> {
    let mut config = rivulet_api::ServerConfig::new(args.data_dir);
    config.listen = args.listen;
    config.max_plugin_bytes = args.max_plugin_mb.saturating_mul(1 << 20);
    config.checkpoint_interval = args.checkpoint_interval;
    config.state_backend = args.state_backend;
    config.allow_paths = args.allow_paths;
    config.allow_connect = args.allow_connect;
    config.allow_buckets = args.allow_buckets;
    if let Some(n) = args.max_connections {
        config.connections.max_connections = n.max(1);
    }
    config.connections.header_timeout = args.header_timeout;
    if let Some(mb) = args.guest_memory_mb {
        config.guest_memory_mb = mb;
    }
    config.upload_buffer_bytes = args.upload_buffer_mb.saturating_mul(1 << 20);
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(rivulet_api::TlsFiles { cert, key }),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    if let Some(f) = &args.auth_token_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading the token file {}", f.display()))?;
        let tokens = rivulet_api::Tokens::parse(&text).map_err(|e| anyhow::anyhow!("the token file {}: {e}", f.display()))?;
        config.auth = Some(tokens);
    }
    let engine = engine()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rivulet-server").build()?;
    let served = runtime.block_on(async {
        // A standby coordinator waits here for the lease, before it reads the jobs or
        // binds any port; losing the lease stops the process at once (the successor
        // resumes the jobs from their checkpoints).
        let mut leadership = scheduler::lead(&args.cluster).await?;
        let epoch = leadership.as_ref().map_or(0, |l| l.epoch);
        let running = scheduler::start(&args.cluster, &config.data_dir, false, epoch).await?;
        config.cluster = running.as_ref().map(|r| r.cluster.clone());
        match leadership.take() {
            None => rivulet_api::serve(config, engine).await?,
            Some(mut l) => {
                tokio::select! {
                    served = rivulet_api::serve(config, engine) => {
                        served?;
                        // Stopped (SIGTERM: a rolling update; SIGINT), the jobs' graceful
                        // shutdown recorded: give the lease up, then go (jobs resume on the
                        // successor from their checkpoints). No await between the release
                        // and the exit.
                        eprintln!("[rivulet] releasing the coordinator lease {} and exiting", l.name);
                        l.release().await;
                        std::process::exit(0);
                    }
                    () = l.lost() => {
                        // No graceful shutdown: a successor may be starting; nothing more may
                        // be committed or told to workers from here.
                        eprintln!("error: lost the coordinator lease {} (epoch {}): stepping down", l.name, l.epoch);
                        std::process::exit(1);
                    }
                }
            }
        }
        drop(running);
        anyhow::Ok(())
    });
    // After a graceful shutdown the jobs' tasks may still run (they resume from their
    // checkpoints on the next start): exit promptly rather than wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(())
}

fn validate(args: SpecArgs) -> Result<()> {
    let (_, graph) = load_graph(&args)?;
    let engine = engine()?;
    for node in &graph.nodes {
        if let NodeKind::Operator { plugin_path, spec } = &node.kind {
            let p = engine.load_file(plugin_path).with_context(|| format!("operator '{}'", spec.uid))?;
            println!("operator {} → plugin {} ({} bytes, {}), parallelism {}", spec.uid, p.label(), p.size, p.contract, node.parallelism);
        }
    }
    println!("job '{}' is valid: {} nodes, {} edges", graph.name, graph.nodes.len(), graph.edges.len());
    Ok(())
}

fn inspect(file: &Path) -> Result<()> {
    let engine = engine()?;
    let p = engine.load_file(file)?;
    println!("file:    {}", file.display());
    let latest = if p.contract == Contract::ALL[0] { "the newest" } else { "an older one; the host still runs it" };
    println!("targets: {} ({}, {latest})", p.contract, p.contract.world());
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
    // The client explains an untrusted server certificate itself (client.rs): the
    // verifier's own error line would only repeat it.
    let filter = tracing_subscriber::EnvFilter::try_from_env("RIVULET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rivulet::guest=info,rustls_platform_verifier=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Nexmark(args) => crate::nexmark::nexmark(args),
        Command::Validate(args) => validate(args),
        Command::Plugin { command: PluginCommand::Inspect { file } } => inspect(&file),
        Command::Savepoint { command: SavepointCommand::Inspect { path, entries } } => savepoint_inspect(&path, entries),
        Command::Plugin { command: PluginCommand::Upload { file, name, version, server } } => client::plugin_upload(&server, &file, name, &version),
        Command::Plugin { command: PluginCommand::List { server } } => client::plugin_list(&server),
        Command::Job { server, command } => client::job(&server, command),
        Command::Server(args) => server(args),
        Command::Openapi => openapi(),
        Command::Worker(args) => engine().and_then(|e| scheduler::worker(args, e)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
