//! Where a job's tasks run (`--scheduler`), and the `rivulet worker` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rivulet_cluster::{Cluster, ClusterConfig, ClusterTls, ClusterToken, NetworkConfig, ProcessWorkers, Transport, WorkerConfig};
use rivulet_kubernetes::{KubeWorkers, Leadership, WorkerPods};

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
    /// On worker pods this process creates for each job with the Kubernetes API (and
    /// deletes when the job ends); they join at --cluster-listen.
    Kubernetes,
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
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// TLS on cluster connections (coordinator and workers alike): with all three files,
/// every control and exchange connection is mutually authenticated TLS; certificates
/// are signed by the CA and name `rivulet-cluster` (a DNS subject alternative name).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// This process's certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cluster_tls_key", "cluster_tls_ca"])]
    pub cluster_tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cluster_tls_cert", "cluster_tls_ca"])]
    pub cluster_tls_key: Option<PathBuf>,
    /// The CA certificate that signs every member's (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cluster_tls_cert", "cluster_tls_key"])]
    pub cluster_tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// Plain TCP, or TLS from the three files.
    fn transport(&self) -> Result<Transport> {
        let (Some(cert), Some(key), Some(ca)) = (&self.cluster_tls_cert, &self.cluster_tls_key, &self.cluster_tls_ca) else {
            return Ok(Transport::default());
        };
        let read = |f: &PathBuf| std::fs::read(f).with_context(|| format!("reading {}", f.display()));
        let tls = ClusterTls::from_pem(&read(cert)?, &read(key)?, &read(ca)?).context("cluster TLS")?;
        Ok(Transport::tls(tls))
    }

    /// The same flags for a worker this process starts.
    fn worker_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (flag, f) in
            [("--cluster-tls-cert", &self.cluster_tls_cert), ("--cluster-tls-key", &self.cluster_tls_key), ("--cluster-tls-ca", &self.cluster_tls_ca)]
        {
            if let Some(f) = f {
                a.push(format!("{flag}={}", std::path::absolute(f).unwrap_or_else(|_| f.clone()).display()));
            }
        }
        a
    }
}

/// Options of the `kubernetes` scheduler and of coordinator leadership by a Lease. The
/// API server and credentials come from `$KUBECONFIG` (or `~/.kube/config`), else from
/// the pod's service account.
#[derive(Debug, clap::Args)]
pub struct KubeArgs {
    /// The namespace of worker pods and the lease (default: the configuration's, in a pod
    /// its own).
    #[arg(long, value_name = "NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// The image worker pods run (kubernetes scheduler: required).
    #[arg(long, value_name = "IMAGE")]
    pub kube_worker_image: Option<String>,
    /// Where worker pods reach this coordinator's cluster port (a Service; default
    /// rivulet-cluster:PORT with the port of --cluster-listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub kube_coordinator_address: Option<String>,
    /// What worker pods belong to, KIND/NAME (deployment, statefulset or pod): deleting
    /// it deletes them.
    #[arg(long, value_name = "KIND/NAME")]
    pub kube_owner: Option<String>,
    /// A Secret of type kubernetes.io/tls (`tls.crt`, `tls.key`, `ca.crt`) mounted into
    /// worker pods for cluster TLS (with the --cluster-tls-* flags).
    #[arg(long, value_name = "NAME")]
    pub kube_tls_secret: Option<String>,
    /// The Secret with the cluster token (key `cluster-token`) mounted into worker pods.
    #[arg(long, value_name = "NAME", default_value = "rivulet-tokens")]
    pub kube_token_secret: String,
    /// A Secret whose keys become worker pods' environment (e.g. AWS_* for S3).
    #[arg(long, value_name = "NAME")]
    pub kube_worker_env_secret: Option<String>,
    /// CPU of each worker pod (request and limit).
    #[arg(long, value_name = "QUANTITY", default_value = "1")]
    pub kube_worker_cpu: String,
    /// Memory of each worker pod (request and limit).
    #[arg(long, value_name = "QUANTITY", default_value = "1Gi")]
    pub kube_worker_memory: String,
    /// Hold this Lease to act as the coordinator (high availability: a standby waits for
    /// it; losing it stops this process). Server only.
    #[arg(long, value_name = "NAME")]
    pub kube_lease: Option<String>,
    /// How long the lease lasts past each renewal, seconds (at least 4): a dead
    /// coordinator's successor takes over after about this long.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub kube_lease_duration: u64,
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
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Run only this job's tasks (the kubernetes scheduler's pods are made per job).
    #[arg(long, value_name = "JOB")]
    pub pool: Option<String>,
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

/// Take the coordinator lease `--kube-lease` names (waiting as a standby while another
/// coordinator holds it); `None` without the flag.
pub async fn lead(args: &SchedulerArgs) -> Result<Option<Leadership>> {
    let Some(name) = &args.kube.kube_lease else { return Ok(None) };
    let client = rivulet_kubernetes::client().await?;
    let namespace = args.kube.kube_namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let identity = match std::env::var("POD_NAME") {
        Ok(pod) => pod,
        Err(_) => format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "coordinator".into()), std::process::id()),
    };
    eprintln!("[rivulet] taking the coordinator lease {namespace}/{name} as {identity}");
    let held = Leadership::acquire(client, &namespace, name, &identity, Duration::from_secs(args.kube.kube_lease_duration)).await?;
    eprintln!("[rivulet] coordinator lease {namespace}/{name} held (epoch {})", held.epoch);
    Ok(Some(held))
}

/// Start the cluster `args` asks for (none for `embedded`) and wait for its workers
/// (standalone: only when `wait_standalone`; a server serves meanwhile). `epoch` is the
/// coordinator's leadership term (0 without a lease).
pub async fn start(args: &SchedulerArgs, data_dir: &std::path::Path, wait_standalone: bool, epoch: u64) -> Result<Option<Running>> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let transport = args.tls.transport()?;
    let config = |text: &str| -> Result<ClusterConfig> {
        let mut c = ClusterConfig::new(token(text)?);
        c.epoch = epoch;
        c.transport = transport.clone();
        Ok(c)
    };
    match args.scheduler {
        Scheduler::Embedded => Ok(None),
        Scheduler::Process => {
            let text = match token_text(args.cluster_token_file.as_ref())? {
                Some(t) => t,
                None => fresh_token()?,
            };
            let listen = args.cluster_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
            let cluster = Cluster::start(listen, config(&text)?).await.with_context(|| format!("cluster port {listen}"))?;
            let program = std::env::current_exe().context("this program's path")?;
            let coordinator = cluster.addr().to_string();
            let base = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf()).join("workers");
            let slots = args.slots_per_worker.max(1);
            let workers = ProcessWorkers::start(
                program,
                args.workers,
                |i| {
                    let dir = base.join(format!("worker-{i}"));
                    let mut a: Vec<String> =
                        ["worker", "--coordinator", &coordinator, "--advertise", "127.0.0.1", "--exit-with-parent"].map(String::from).into();
                    a.extend([
                        "--slots".into(),
                        slots.to_string(),
                        "--data-dir".into(),
                        dir.display().to_string(),
                        "--name".into(),
                        format!("worker-{i}"),
                    ]);
                    a.extend(args.tls.worker_args());
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
            let cluster = Cluster::start(listen, config(&text)?).await.with_context(|| format!("cluster port {listen}"))?;
            if wait_standalone {
                eprintln!("[rivulet] waiting for {} workers at {}", args.workers, cluster.addr());
                wait(&cluster, args.workers).await?;
            } else {
                eprintln!("[rivulet] workers join at {}", cluster.addr());
            }
            Ok(Some(Running { cluster, _workers: None }))
        }
        Scheduler::Kubernetes => {
            let Some(listen) = args.cluster_listen else {
                bail!("--scheduler kubernetes needs --cluster-listen HOST:PORT (where worker pods connect)")
            };
            let Some(text) = token_text(args.cluster_token_file.as_ref())? else {
                bail!("--scheduler kubernetes needs the cluster token: --cluster-token-file or ${TOKEN_ENV} (the same as in --kube-token-secret)")
            };
            let Some(image) = args.kube.kube_worker_image.clone() else { bail!("--scheduler kubernetes needs --kube-worker-image") };
            let client = rivulet_kubernetes::client().await?;
            let namespace = args.kube.kube_namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
            let owner = match &args.kube.kube_owner {
                Some(o) => Some(KubeWorkers::owner(&client, &namespace, o).await?),
                None => None,
            };
            let pods = WorkerPods {
                namespace: namespace.clone(),
                image,
                coordinator: args.kube.kube_coordinator_address.clone().unwrap_or_else(|| format!("rivulet-cluster:{}", listen.port())),
                slots: args.slots_per_worker.max(1),
                token_secret: args.kube.kube_token_secret.clone(),
                owner,
                cpu: args.kube.kube_worker_cpu.clone(),
                memory: args.kube.kube_worker_memory.clone(),
                env_secret: args.kube.kube_worker_env_secret.clone(),
                tls_secret: args.kube.kube_tls_secret.clone(),
            };
            if transport.is_tls() && pods.tls_secret.is_none() {
                bail!("cluster TLS with --scheduler kubernetes needs --kube-tls-secret (the pods' certificates)");
            }
            if !transport.is_tls() && pods.tls_secret.is_some() {
                bail!("--kube-tls-secret makes worker pods speak TLS: give this coordinator --cluster-tls-cert, -key and -ca too");
            }
            let mut c = config(&text)?;
            // Pods are scheduled, pulled and started before they join.
            c.slots_wait = Duration::from_secs(300);
            c.provisioner = Some(Arc::new(KubeWorkers::new(client, pods)));
            let cluster = Cluster::start(listen, c).await.with_context(|| format!("cluster port {listen}"))?;
            eprintln!("[rivulet] worker pods in namespace {namespace} join at {}", cluster.addr());
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
    let name =
        args.name.clone().unwrap_or_else(|| format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()), std::process::id()));
    let config = WorkerConfig {
        coordinator: args.coordinator.clone(),
        token: token(&text)?,
        slots: args.slots.max(1),
        data_dir: args.data_dir.clone(),
        advertise: args.advertise.clone(),
        bind,
        name,
        network: NetworkConfig { transport: args.tls.transport()?, ..NetworkConfig::default() },
        engine,
        reconnect: Duration::from_millis(500),
        pool: args.pool.clone(),
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
