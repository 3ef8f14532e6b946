//! The worker: registers with the coordinator, heartbeats with its runs' counters, caches
//! plugins by digest, and runs its share of each run over the network exchange until the
//! coordinator cancels it. When the coordinator's connection is lost every share stops
//! (the coordinator restarts the runs elsewhere) and the worker registers again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use rivulet_checkpoint::{CheckpointConfig, CheckpointStorage, Ledger};
use rivulet_dataflow::{Barrier, NodeMetrics};
use rivulet_job::NodeKind;
use rivulet_network::handshake::handshake;
use rivulet_network::{ClusterToken, LinkFailure, NetworkConfig, NetworkExchange, WorkerId};
use rivulet_plugin::{Limits, PluginEngine};
use rivulet_runtime::{JobError, PlacedRun, RemoteFailure, RestoreFrom, RunOptions, start_placed_tasks};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use crate::HANDSHAKE_TIMEOUT;
use crate::protocol::{COORDINATOR, Deployment, Frame, NodeTotals, RunId, ToCoordinator, ToWorker, UNREGISTERED, codec, decode, encode};

/// How a worker runs.
#[derive(Clone)]
pub struct WorkerConfig {
    /// The coordinator's cluster address, `HOST:PORT`.
    pub coordinator: String,
    /// The cluster's secret.
    pub token: ClusterToken,
    /// Task slots offered.
    pub slots: u32,
    /// Plugins, state and working files of this worker.
    pub data_dir: PathBuf,
    /// The host other workers reach this one's exchange ports at.
    pub advertise: String,
    /// The address exchange ports bind to.
    pub bind: IpAddr,
    /// A name for humans.
    pub name: String,
    /// The exchange's settings.
    pub network: NetworkConfig,
    /// The engine operators run in.
    pub engine: Arc<PluginEngine>,
    /// Wait between attempts to reach the coordinator.
    pub reconnect: Duration,
    /// The job this worker was made for (it runs only that job's tasks); `None`: any.
    pub pool: Option<String>,
}

impl std::fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("coordinator", &self.coordinator)
            .field("slots", &self.slots)
            .field("data_dir", &self.data_dir)
            .field("advertise", &self.advertise)
            .field("name", &self.name)
            .field("pool", &self.pool)
            .finish()
    }
}

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Its data directory is unusable.
    #[error("data directory {path}: {error}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Run a worker: register with the coordinator, run what it is given, and register
/// again whenever the connection is lost. Returns only on an unusable data directory.
pub async fn run_worker(config: WorkerConfig) -> Result<(), WorkerError> {
    let dir_error = |path: PathBuf| move |error| WorkerError::DataDir { path, error };
    let plugins = config.data_dir.join("plugins");
    std::fs::create_dir_all(&plugins).map_err(dir_error(plugins.clone()))?;
    let runs = config.data_dir.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
    std::fs::create_dir_all(&runs).map_err(dir_error(runs.clone()))?;
    // The highest coordinator epoch served: a deposed coordinator is refused.
    let mut epoch = 0;
    loop {
        match session(&config, &mut epoch).await {
            Ok(()) => tracing::warn!("worker: the coordinator closed the connection"),
            Err(e) => tracing::warn!(coordinator = %config.coordinator, "worker: {e}"),
        }
        tokio::time::sleep(config.reconnect).await;
    }
}

/// One run's share on this worker.
struct Share {
    metrics: Vec<Arc<NodeMetrics>>,
    barriers: Arc<Mutex<Vec<mpsc::UnboundedSender<Barrier>>>>,
    ledger: Arc<Ledger>,
    /// Between Prepare and Start.
    prepared: Option<(Box<Deployment>, TcpListener)>,
    task: Option<JoinHandle<()>>,
    run_dir: PathBuf,
}

impl Drop for Share {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let dir = self.run_dir.clone();
            // The tasks are gone once the aborted share is; then its files go.
            tokio::spawn(async move {
                let _ = t.await;
                let _ = tokio::fs::remove_dir_all(dir).await;
            });
        } else {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

fn totals(metrics: &[Arc<NodeMetrics>]) -> Vec<NodeTotals> {
    metrics
        .iter()
        .map(|m| NodeTotals {
            records_in: m.records_in.load(Ordering::Relaxed),
            records_out: m.records_out.load(Ordering::Relaxed),
            late: m.late_records.load(Ordering::Relaxed),
            watermark: m.watermark.load(Ordering::Relaxed),
            batches_in: m.batches_in.load(Ordering::Relaxed),
            dead_letters: m.dead_letters.load(Ordering::Relaxed),
            guest_ns: m.guest_ns.load(Ordering::Relaxed),
            backpressure_ns: m.backpressure_ns.load(Ordering::Relaxed),
            memory_bytes: m.memory_bytes.load(Ordering::Relaxed),
        })
        .collect()
}

/// Sends control messages to the coordinator.
#[derive(Clone)]
struct Outbox(mpsc::UnboundedSender<Bytes>);

impl Outbox {
    fn send(&self, m: &ToCoordinator) {
        if let Ok(b) = encode(&Frame::Message(m)) {
            let _ = self.0.send(b);
        }
    }
}

async fn session(config: &WorkerConfig, highest_epoch: &mut u64) -> Result<(), String> {
    let tcp = TcpStream::connect(&config.coordinator).await.map_err(|e| format!("connecting: {e}"))?;
    let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, config.network.transport.client(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS: {e}"))?;
    handshake(&mut stream, &config.token, UNREGISTERED, 0, Some(COORDINATOR), HANDSHAKE_TIMEOUT).await.map_err(|e| format!("handshake: {e}"))?;
    let (mut sink, mut frames) = Framed::new(stream, codec()).split();
    let register =
        ToCoordinator::Register { slots: config.slots, host: config.advertise.clone(), name: config.name.clone(), pool: config.pool.clone() };
    sink.send(encode(&Frame::Message(&register)).map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?;
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, frames.next()).await.map_err(|_| "no answer to the registration".to_owned())?;
    let bytes = first.ok_or("closed at registration")?.map_err(|e| e.to_string())?;
    let Frame::Message(ToWorker::Registered { worker, heartbeat_ms, timeout_ms, epoch }) =
        decode::<ToWorker>(bytes.freeze()).map_err(|e| e.to_string())?
    else {
        return Err("the coordinator did not answer the registration".into());
    };
    if epoch < *highest_epoch {
        return Err(format!("refusing a coordinator of epoch {epoch}: this worker served epoch {highest_epoch} (a deposed coordinator)"));
    }
    *highest_epoch = epoch;
    tracing::info!(worker, epoch, coordinator = %config.coordinator, "worker: registered");

    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let outbox = Outbox(tx);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if sink.send(b).await.is_err() {
                break;
            }
        }
    });
    let mut shares: HashMap<RunId, Share> = HashMap::new();
    let mut heartbeat = tokio::time::interval(Duration::from_millis(heartbeat_ms.max(10)));
    let silence = Duration::from_millis(timeout_ms.max(heartbeat_ms.saturating_mul(3)).max(100));
    let result = loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let runs = shares.iter().map(|(run, s)| (*run, totals(&s.metrics))).collect();
                outbox.send(&ToCoordinator::Heartbeat { runs });
            }
            frame = tokio::time::timeout(silence, frames.next()) => {
                let bytes = match frame {
                    // Cut off (a partition, a hung coordinator): its runs go elsewhere.
                    Err(_) => break Err(format!("nothing from the coordinator for {silence:?}")),
                    Ok(None) => break Ok(()),
                    Ok(Some(Err(e))) => break Err(format!("connection: {e}")),
                    Ok(Some(Ok(b))) => b,
                };
                match decode::<ToWorker>(bytes.freeze()) {
                    Ok(Frame::Plugin { digest, bytes }) => {
                        let path = config.data_dir.join("plugins").join(format!("{digest}.wasm"));
                        if !path.exists() {
                            let tmp = path.with_extension("part");
                            if let Err(e) = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &path)) {
                                tracing::warn!("worker: caching plugin {digest}: {e}");
                            }
                        }
                    }
                    Ok(Frame::Message(m)) => handle(config, worker, &outbox, &mut shares, m).await,
                    Err(e) => break Err(e.to_string()),
                }
            }
        }
    };
    writer.abort();
    if !shares.is_empty() {
        tracing::warn!(runs = shares.len(), "worker: lost the coordinator; stopping its runs");
    }
    drop(shares);
    result
}

async fn handle(config: &WorkerConfig, worker: WorkerId, outbox: &Outbox, shares: &mut HashMap<RunId, Share>, m: ToWorker) {
    match m {
        ToWorker::Registered { .. } | ToWorker::Alive => {}
        ToWorker::Prepare { run, deployment } => match prepare(config, run, deployment).await {
            Ok((share, port)) => {
                shares.insert(run, share);
                outbox.send(&ToCoordinator::Ready { run, port });
            }
            Err(failure) => outbox.send(&ToCoordinator::Refused { run, failure }),
        },
        ToWorker::Start { run, peers } => {
            let Some(share) = shares.get_mut(&run) else { return };
            let Some((deployment, listener)) = share.prepared.take() else { return };
            let ctx = ShareRun {
                worker,
                run,
                deployment,
                listener,
                peers,
                config: config.clone(),
                metrics: share.metrics.clone(),
                barriers: share.barriers.clone(),
                ledger: share.ledger.clone(),
                run_dir: share.run_dir.clone(),
                outbox: outbox.clone(),
            };
            share.task = Some(tokio::spawn(run_share(ctx)));
        }
        ToWorker::Barrier { run, barrier } => {
            if let Some(share) = shares.get(&run) {
                for b in share.barriers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    let _ = b.send(barrier);
                }
            }
        }
        ToWorker::Completed { run, id } => {
            if let Some(share) = shares.get(&run) {
                share.ledger.complete(id);
            }
        }
        ToWorker::Cancel { run } => {
            shares.remove(&run);
        }
    }
}

/// Get ready for a run: its plugins are here, its exchange port is bound.
async fn prepare(config: &WorkerConfig, run: RunId, mut deployment: Box<Deployment>) -> Result<(Share, u16), RemoteFailure> {
    let refuse = |reason: String| RemoteFailure { reason, secondary: false, restartable: true, operator: None, plugin: None };
    for (node, digest) in &deployment.plugins {
        let path = config.data_dir.join("plugins").join(format!("{digest}.wasm"));
        if !path.exists() {
            return Err(refuse(format!("plugin {digest} was not received")));
        }
        if let Some(NodeKind::Operator { plugin_path, .. }) = deployment.graph.nodes.get_mut(*node).map(|n| &mut n.kind) {
            // Under its own file name too: a plugin's name (in failures, logs and
            // metrics) is its file's stem, as on the coordinator.
            let stem = plugin_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
            let named = config.data_dir.join("plugins").join(digest).join(format!("{stem}.wasm"));
            if !named.exists() {
                let linked = named.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::hard_link(&path, &named));
                if linked.is_err() {
                    std::fs::copy(&path, &named).map_err(|e| refuse(format!("plugin {digest}: {e}")))?;
                }
            }
            *plugin_path = named;
        }
    }
    let listener =
        TcpListener::bind(SocketAddr::new(config.bind, 0)).await.map_err(|e| refuse(format!("binding an exchange port on {}: {e}", config.bind)))?;
    let port = listener.local_addr().map_err(|e| refuse(e.to_string()))?.port();
    let metrics = deployment.graph.nodes.iter().map(|n| Arc::new(NodeMetrics::new(&n.id))).collect();
    let share = Share {
        metrics,
        barriers: Arc::new(Mutex::new(Vec::new())),
        ledger: Arc::new(Ledger::default()),
        prepared: Some((deployment, listener)),
        task: None,
        run_dir: config.data_dir.join("runs").join(format!("run-{run}")),
    };
    Ok((share, port))
}

/// What a started share needs.
struct ShareRun {
    worker: WorkerId,
    run: RunId,
    deployment: Box<Deployment>,
    listener: TcpListener,
    peers: std::collections::BTreeMap<WorkerId, SocketAddr>,
    config: WorkerConfig,
    metrics: Vec<Arc<NodeMetrics>>,
    barriers: Arc<Mutex<Vec<mpsc::UnboundedSender<Barrier>>>>,
    ledger: Arc<Ledger>,
    run_dir: PathBuf,
    outbox: Outbox,
}

/// Run the share's tasks; report `Finished`; then keep the exchange open until the
/// coordinator cancels the run (other workers may still be reading from it).
async fn run_share(ctx: ShareRun) {
    let failure = match run_tasks(&ctx).await {
        Ok((failure, exchange)) => {
            // A failed share closes its connections at once (its peers see an echo, not
            // a silent peer); a finished one keeps them open until the coordinator's
            // Cancel, as other workers may still be reading what it sent.
            let exchange = if failure.is_some() { None } else { Some(exchange) };
            ctx.outbox.send(&ToCoordinator::Finished { run: ctx.run, totals: totals(&ctx.metrics), failure });
            std::future::pending::<()>().await;
            drop(exchange);
            return;
        }
        Err(f) => f,
    };
    tracing::warn!(run = ctx.run, "worker: the share could not start: {}", failure.reason);
    ctx.outbox.send(&ToCoordinator::Finished { run: ctx.run, totals: totals(&ctx.metrics), failure: Some(failure) });
}

/// Keep the first failure, unless it is an echo and `f` a cause.
fn prefer(failure: &mut Option<RemoteFailure>, f: RemoteFailure) {
    if failure.as_ref().is_none_or(|old| old.secondary && !f.secondary) {
        *failure = Some(f);
    }
}

fn run_options(d: &Deployment, data_dir: PathBuf) -> Result<RunOptions, RemoteFailure> {
    let mut opts = RunOptions::new(d.state_backend, data_dir);
    opts.limits = Limits { memory_bytes: d.memory_bytes, call_timeout: Duration::from_millis(d.call_timeout_ms) };
    opts.checkpoint = match &d.checkpoint_root {
        Some(root) => {
            let storage = CheckpointStorage::open(root).map_err(|e| RemoteFailure::from(&JobError::from(e)))?;
            let mut c = CheckpointConfig::new(storage);
            c.incremental = d.incremental;
            Some(c)
        }
        None => None,
    };
    opts.restore = d.restore.clone().map(RestoreFrom::Path).unwrap_or_default();
    opts.attempt = d.attempt;
    opts.allow_non_restored_state = d.allow_non_restored_state;
    Ok(opts)
}

/// Connect the exchange, start the placed tasks, forward their reports, and wait for
/// them: the first failure (a cause before an echo) and the exchange to hold open.
async fn run_tasks(ctx: &ShareRun) -> Result<(Option<RemoteFailure>, NetworkExchange), RemoteFailure> {
    let d = &ctx.deployment;
    let opts = run_options(d, ctx.config.data_dir.join("data"))?;
    let exchange = NetworkExchange::connect(
        ctx.config.network.clone(),
        ctx.worker,
        ctx.config.token.clone(),
        ctx.run,
        &ctx.listener,
        ctx.peers.clone(),
        d.receiver_map(),
    )
    .await
    .map_err(|e| RemoteFailure::lost(format!("exchange: {e}")))?;
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let started = start_placed_tasks(PlacedRun {
        graph: &d.graph,
        engine: &ctx.config.engine,
        opts: &opts,
        exchange: &exchange,
        tasks: &d.tasks,
        reports: opts.checkpoint.as_ref().map(|_| reports_tx),
        ledger: ctx.ledger.clone(),
        metrics: &ctx.metrics,
        run_dir: ctx.run_dir.clone(),
    })
    .await
    .map_err(|e| RemoteFailure::from(&e))?;
    *ctx.barriers.lock().unwrap_or_else(|p| p.into_inner()) = started.barriers;
    let mut tasks = started.tasks;
    let mut failure: Option<RemoteFailure> = None;
    let mut exchange_failed = false;
    loop {
        tokio::select! {
            Some(report) = reports.recv() => ctx.outbox.send(&ToCoordinator::Report { run: ctx.run, report }),
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    prefer(&mut failure, RemoteFailure::from(&e));
                    tasks.abort_all();
                }
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => {
                    prefer(&mut failure, RemoteFailure::from(&JobError::Internal(format!("a task panicked: {e}"))));
                    tasks.abort_all();
                }
            },
            // The tasks may not notice (a source between records): stop them.
            _ = exchange.failed(), if !exchange_failed => {
                exchange_failed = true;
                tasks.abort_all();
            }
        }
    }
    // Tasks cut off by the exchange report echoes (a downstream task gone, an input
    // closed); the exchange's own failure says whether a peer was the cause.
    if let Some((reason, kind)) = exchange.failure_kind() {
        // A silent peer (hung, or cut off by the network) is a cause; a peer that closed
        // its connection echoes a failure elsewhere.
        let f = RemoteFailure { secondary: kind != LinkFailure::Silent, ..RemoteFailure::lost(format!("exchange: {reason}")) };
        prefer(&mut failure, f);
    }
    // Uploads may outlive their tasks: their reports (a stop-with-savepoint's last one
    // among them) go out before `Finished`, as the coordinator waits for them.
    if failure.is_none() {
        while let Some(report) = reports.recv().await {
            ctx.outbox.send(&ToCoordinator::Report { run: ctx.run, report });
        }
    } else {
        while let Ok(report) = reports.try_recv() {
            ctx.outbox.send(&ToCoordinator::Report { run: ctx.run, report });
        }
    }
    Ok((failure, exchange))
}
