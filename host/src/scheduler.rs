//! Where a job's tasks run (`--scheduler`), and the `rivulet worker` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rivulet_cluster::{Cluster, ClusterConfig, ClusterToken, NetworkConfig, ProcessWorkers, WorkerConfig};

/// The environment variable that carries the cluster token.
pub const TOKEN_ENV: &str = "RIVULET_CLUSTER_TOKEN";

/// Where tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    /// In this process (the default).
    Embedded,
    /// On worker processes this process starts on this machine (and restarts when they die).
    Process,
    /// On workers started by anyone, joining at --cluster-listen with the cluster token.
    Standalone,
}

/// Scheduler options of `rivulet run`.
#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// Where the job's tasks run.
    #[arg(long, value_enum, default_value = "embedded")]
    pub scheduler: Scheduler,
    /// Workers: started (process) or waited for before the job starts (standalone).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Task slots of each worker the process scheduler starts.
    #[arg(long, default_value_t = 1)]
    pub slots_per_worker: u32,
    /// Where workers connect (standalone: required; process: a free loopback port).
    #[arg(long, value_name = "HOST:PORT")]
    pub cluster_listen: Option<SocketAddr>,
    /// A file holding the cluster token (else $RIVULET_CLUSTER_TOKEN; the process
    /// scheduler makes one up).
    #[arg(long, value_name = "FILE")]
    pub cluster_token_file: Option<PathBuf>,
}

/// `rivulet worker` options.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The coordinator's cluster address.
    #[arg(long, value_name = "HOST:PORT")]
    pub coordinator: String,
    /// Task slots offered.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// Plugins, state and working files.
    #[arg(long, default_value = "rivulet-worker-data")]
    pub data_dir: PathBuf,
    /// The host other workers reach this one at.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise: String,
    /// The address exchange ports bind to (default: the advertised host if it is an
    /// address, else all interfaces).
    #[arg(long)]
    pub bind: Option<std::net::IpAddr>,
    /// A name for humans (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// A file holding the cluster token (else $RIVULET_CLUSTER_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub cluster_token_file: Option<PathBuf>,
    /// Exit when the parent process does (the process scheduler's workers).
    #[arg(long, hide = true)]
    pub exit_with_parent: bool,
}

fn token_text(file: Option<&PathBuf>) -> Result<Option<String>> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(f).with_context(|| format!("reading the cluster token file {}", f.display()))?;
        return Ok(Some(t.trim().to_owned()));
    }
    Ok(std::env::var(TOKEN_ENV).ok().map(|t| t.trim().to_owned()))
}

fn token(text: &str) -> Result<ClusterToken> {
    ClusterToken::new(text).map_err(|e| anyhow::anyhow!("cluster token: {e}"))
}

/// A fresh random token (the process scheduler's own workers get it in their environment).
fn fresh_token() -> Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("random bytes for a cluster token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A running cluster: the coordinator's registry and the workers it started.
pub struct Running {
    /// The registry (the run's task hosts).
    pub cluster: Cluster,
    /// The process scheduler's workers (killed when dropped).
    pub _workers: Option<ProcessWorkers>,
}

/// Start the cluster `args` asks for (none for `embedded`) and wait for its workers
/// (standalone: only when `wait_standalone`; a server serves meanwhile).
pub async fn start(args: &SchedulerArgs, data_dir: &std::path::Path, wait_standalone: bool) -> Result<Option<Running>> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    match args.scheduler {
        Scheduler::Embedded => Ok(None),
        Scheduler::Process => {
            let text = match token_text(args.cluster_token_file.as_ref())? {
                Some(t) => t,
                None => fresh_token()?,
            };
            let listen = args.cluster_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let cluster = Cluster::start(listen, ClusterConfig::new(token(&text)?)).await.with_context(|| format!("cluster port {listen}"))?;
            let program = std::env::current_exe().context("this program's path")?;
            let coordinator = cluster.addr().to_string();
            let base = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()).join("workers");
            let slots = args.slots_per_worker.max(1);
            let workers = ProcessWorkers::start(
                program,
                args.workers,
                |i| {
                    let dir = base.join(format!("worker-{i}"));
                    let mut a: Vec<String> = ["worker", "--coordinator", &coordinator, "--advertise", "127.0.0.1", "--exit-with-parent"].map(String::from).into();
                    a.extend(["--slots".into(), slots.to_string(), "--data-dir".into(), dir.display().to_string(), "--name".into(), format!("worker-{i}")]);
                    a
                },
                &[(TOKEN_ENV.to_owned(), text)],
                Duration::from_millis(200),
            );
            wait(&cluster, args.workers).await?;
            Ok(Some(Running { cluster, _workers: Some(workers) }))
        }
        Scheduler::Standalone => {
            let Some(listen) = args.cluster_listen else { bail!("--scheduler standalone needs --cluster-listen HOST:PORT") };
            let Some(text) = token_text(args.cluster_token_file.as_ref())? else {
                bail!("--scheduler standalone needs a cluster token: --cluster-token-file or ${TOKEN_ENV}")
            };
            let cluster = Cluster::start(listen, ClusterConfig::new(token(&text)?)).await.with_context(|| format!("cluster port {listen}"))?;
            if wait_standalone {
                eprintln!("[rivulet] waiting for {} workers at {}", args.workers, cluster.addr());
                wait(&cluster, args.workers).await?;
            } else {
                eprintln!("[rivulet] workers join at {}", cluster.addr());
            }
            Ok(Some(Running { cluster, _workers: None }))
        }
    }
}

async fn wait(cluster: &Cluster, n: usize) -> Result<()> {
    if !cluster.wait_for_workers(n, Duration::from_secs(120)).await {
        bail!("only {} of {n} workers registered within 120 s", cluster.workers().len());
    }
    eprintln!("[rivulet] {n} workers registered at {}", cluster.addr());
    Ok(())
}

/// `rivulet worker`: run tasks for a coordinator until killed.
pub fn worker(args: WorkerArgs, engine: Arc<rivulet_plugin::PluginEngine>) -> Result<()> {
    let Some(text) = token_text(args.cluster_token_file.as_ref())? else {
        bail!("a worker needs the cluster token: --cluster-token-file or ${TOKEN_ENV}")
    };
    let bind = args.bind.or_else(|| args.advertise.parse().ok()).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let name = args.name.clone().unwrap_or_else(|| format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()), std::process::id()));
    let config = WorkerConfig {
        coordinator: args.coordinator.clone(),
        token: token(&text)?,
        slots: args.slots.max(1),
        data_dir: args.data_dir.clone(),
        advertise: args.advertise.clone(),
        bind,
        name,
        network: NetworkConfig::default(),
        engine,
        reconnect: Duration::from_millis(500),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rivulet-worker").build()?;
    runtime.block_on(async move {
        if args.exit_with_parent {
            let parent = std::os::unix::process::parent_id();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if std::os::unix::process::parent_id() != parent {
                        eprintln!("[rivulet] worker: the coordinator process is gone; exiting");
                        std::process::exit(0);
                    }
                }
            });
        }
        rivulet_cluster::run_worker(config).await
    })?;
    Ok(())
}
