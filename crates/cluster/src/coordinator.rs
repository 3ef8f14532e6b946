//! The coordinator's side: the registry of workers (one control connection each, slots
//! and the runs holding them); [`run`] runs a job's subtasks on them (the task hosts).

mod run;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use rivulet_checkpoint::TaskReport;
use rivulet_dataflow::NodeMetrics;
use rivulet_job::NodeKind;
use rivulet_network::WorkerId;
use rivulet_network::handshake::handshake;
use rivulet_runtime::plan::Task;
use rivulet_runtime::{JobError, RemoteFailure, RemoteRun, StartFuture, StartedTasks, TaskHosts, receivers_by_host};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::codec::Framed;

use crate::protocol::{COORDINATOR, Deployment, Frame, NodeTotals, RunId, ToCoordinator, ToWorker, UNREGISTERED, codec, decode, encode};
use crate::{ClusterConfig, HANDSHAKE_TIMEOUT};

/// How long a resource manager may take to answer for workers (the call, not the
/// workers' start: runs wait for those in `slots_wait`).
const PROVISION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The coordinator's registry of workers; a [`TaskHosts`] that runs jobs on them.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("addr", &self.inner.addr).finish()
    }
}

struct Inner {
    config: ClusterConfig,
    addr: SocketAddr,
    workers: Mutex<BTreeMap<WorkerId, WorkerEntry>>,
    /// Signalled when a worker registers or is lost.
    changed: Notify,
    next_worker: AtomicU32,
    next_run: AtomicU64,
}

struct WorkerEntry {
    name: String,
    host: String,
    slots: u32,
    registered: Instant,
    heartbeat: Instant,
    /// Control frames to the worker.
    tx: mpsc::UnboundedSender<Bytes>,
    /// Each run's share on this worker.
    runs: HashMap<RunId, RunShare>,
    /// Plugins (digests) already sent.
    plugins: HashSet<String>,
    /// The job it was made for (it runs only that job's tasks); `None`: any job's.
    pool: Option<String>,
}

/// A run's share on one worker.
struct RunShare {
    /// The run's events from this worker.
    events: mpsc::UnboundedSender<RunEvent>,
    /// Tasks it runs there.
    tasks: usize,
    /// Slots it holds there (one per subtask index placed there, at most the worker's).
    slots: u32,
}

impl WorkerEntry {
    /// Slots no run holds.
    fn free_slots(&self) -> u32 {
        self.slots.max(1).saturating_sub(self.runs.values().map(|r| r.slots).sum())
    }

    /// Whether it may run `job`'s tasks.
    fn serves(&self, job: &str) -> bool {
        self.pool.as_deref().is_none_or(|p| p == job)
    }
}

/// A registered worker, as `GET /v1/workers` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkerView {
    /// Its id (given at registration; a worker that reconnects gets a new one).
    pub id: WorkerId,
    /// Its name (host or pod name).
    pub name: String,
    /// The host its exchange ports are reachable at.
    pub host: String,
    /// Task slots.
    pub slots: u32,
    /// Runs it has a share of.
    pub runs: usize,
    /// Tasks it runs.
    pub tasks: usize,
    /// Slots no run holds.
    pub free_slots: u32,
    /// The job it was made for (a pod of the `kubernetes` scheduler); `None`: any job's.
    pub pool: Option<String>,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// Seconds since it registered.
    pub registered_s: f64,
}

/// What a worker says about one run.
#[derive(Debug)]
enum RunEvent {
    Ready(u16),
    Refused(RemoteFailure),
    Totals(Vec<NodeTotals>),
    Report(TaskReport),
    Finished { totals: Vec<NodeTotals>, failure: Option<RemoteFailure> },
    Lost(String),
}

impl Cluster {
    /// Listen for workers on `listen` (port 0: any free port).
    pub async fn start(listen: SocketAddr, config: ClusterConfig) -> std::io::Result<Cluster> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            config,
            addr,
            workers: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            next_worker: AtomicU32::new(1),
            next_run: AtomicU64::new(1),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                let Some(inner) = weak.upgrade() else { return };
                tokio::spawn(async move {
                    if let Err(e) = serve(inner, stream).await {
                        tracing::warn!(%peer, "worker connection: {e}");
                    }
                });
            }
        });
        tracing::info!(%addr, "cluster: listening for workers");
        Ok(Cluster { inner })
    }

    /// Where workers connect.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The registered workers.
    pub fn workers(&self) -> Vec<WorkerView> {
        let now = Instant::now();
        self.inner
            .lock()
            .iter()
            .map(|(id, w)| WorkerView {
                id: *id,
                name: w.name.clone(),
                host: w.host.clone(),
                slots: w.slots,
                runs: w.runs.len(),
                tasks: w.runs.values().map(|r| r.tasks).sum(),
                free_slots: w.free_slots(),
                pool: w.pool.clone(),
                heartbeat_age_s: now.duration_since(w.heartbeat).as_secs_f64(),
                registered_s: now.duration_since(w.registered).as_secs_f64(),
            })
            .collect()
    }

    /// Wait until at least `n` workers are registered (false after `timeout`).
    pub async fn wait_for_workers(&self, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.inner.changed.notified();
            if self.inner.lock().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.inner.lock().len() >= n;
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<WorkerId, WorkerEntry>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send `msg` to `worker`; false when it is gone.
    fn send(&self, worker: WorkerId, msg: &ToWorker) -> bool {
        let Ok(bytes) = encode(&Frame::Message(msg)) else { return false };
        self.lock().get(&worker).is_some_and(|w| w.tx.send(bytes).is_ok())
    }

    /// Wait for free slots for `needed` subtasks of `job` on the workers that serve it:
    /// those workers with their free slots, in id order. Past the wait, the free slots
    /// there are (several subtasks each), or else every slot of those workers shared with
    /// the runs holding them; an error when no worker serves the job.
    async fn slots_for(&self, job: &str, needed: u32) -> Result<Vec<(WorkerId, u32, String)>, JobError> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.config.slots_wait;
        loop {
            let changed = self.changed.notified();
            let (free, all): (Vec<_>, Vec<_>) = {
                let registry = self.lock();
                let serving = || registry.iter().filter(|(_, w)| w.serves(job));
                (
                    serving().filter(|(_, w)| w.free_slots() > 0).map(|(id, w)| (*id, w.free_slots(), w.host.clone())).collect(),
                    serving().map(|(id, w)| (*id, w.slots.max(1), w.host.clone())).collect(),
                )
            };
            let slots: u32 = free.iter().map(|(_, s, _)| *s).sum();
            if slots >= needed {
                return Ok(free);
            }
            if tokio::time::Instant::now() >= deadline {
                if all.is_empty() {
                    return Err(JobError::NoSlots { needed, waited_ms: started.elapsed().as_millis() as u64 });
                }
                if free.is_empty() {
                    tracing::warn!(job, needed, "cluster: no free slots; the job shares slots held by other runs");
                    return Ok(all);
                }
                tracing::warn!(job, needed, slots, "cluster: fewer free slots than subtasks; slots run several subtasks each");
                return Ok(free);
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }
}

/// One worker's control connection: handshake, registration, then its messages until it
/// closes or falls silent; its runs are then told it is lost.
async fn serve(inner: Arc<Inner>, tcp: TcpStream) -> Result<(), String> {
    let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, inner.config.transport.server(tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS: {e}"))?;
    let peer = handshake(&mut stream, &inner.config.token, COORDINATOR, 0, None, HANDSHAKE_TIMEOUT).await.map_err(|e| e.to_string())?;
    if peer.id != UNREGISTERED {
        return Err(format!("a peer presenting id {} on the control port (workers register first)", peer.id));
    }
    let (mut sink, mut frames) = Framed::new(stream, codec()).split();
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, frames.next()).await.map_err(|_| "no registration in time".to_owned())?;
    let bytes = first.ok_or("closed before registering")?.map_err(|e| e.to_string())?;
    let Frame::Message(ToCoordinator::Register { slots, host, name, pool }) = decode::<ToCoordinator>(bytes.freeze()).map_err(|e| e.to_string())?
    else {
        return Err("the first message was not a registration".into());
    };
    let id = inner.next_worker.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let registered = ToWorker::Registered {
        worker: id,
        heartbeat_ms: inner.config.heartbeat.as_millis() as u64,
        timeout_ms: inner.config.worker_timeout.as_millis() as u64,
        epoch: inner.config.epoch,
    };
    let _ = tx.send(encode(&Frame::Message(&registered)).map_err(|e| e.to_string())?);
    let now = Instant::now();
    inner.lock().insert(
        id,
        WorkerEntry {
            name: name.clone(),
            host,
            slots,
            registered: now,
            heartbeat: now,
            tx,
            runs: HashMap::new(),
            plugins: HashSet::new(),
            pool: pool.clone(),
        },
    );
    inner.changed.notify_waiters();
    tracing::info!(worker = id, %name, slots, pool = %pool.as_deref().unwrap_or("-"), "cluster: worker registered");
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if sink.send(b).await.is_err() {
                break;
            }
        }
    });
    let reason = loop {
        let next = match tokio::time::timeout(inner.config.worker_timeout, frames.next()).await {
            Err(_) => break format!("no heartbeat for {:?}", inner.config.worker_timeout),
            Ok(None) => break "connection closed".to_owned(),
            Ok(Some(Err(e))) => break format!("connection: {e}"),
            Ok(Some(Ok(b))) => b,
        };
        match decode::<ToCoordinator>(next.freeze()) {
            Ok(Frame::Message(m)) => handle(&inner, id, m),
            Ok(Frame::Plugin { .. }) => break "sent a plugin frame".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    writer.abort();
    let runs = inner.lock().remove(&id).map(|w| w.runs).unwrap_or_default();
    inner.changed.notify_waiters();
    tracing::warn!(worker = id, %name, "cluster: worker lost: {reason}");
    for share in runs.values() {
        let _ = share.events.send(RunEvent::Lost(reason.clone()));
    }
    Ok(())
}

fn handle(inner: &Inner, worker: WorkerId, m: ToCoordinator) {
    let mut workers = inner.lock();
    let Some(w) = workers.get_mut(&worker) else { return };
    w.heartbeat = Instant::now();
    let to_run = |run: RunId, e: RunEvent| {
        if let Some(share) = w.runs.get(&run) {
            let _ = share.events.send(e);
        }
    };
    match m {
        ToCoordinator::Register { .. } => {}
        ToCoordinator::Heartbeat { runs } => {
            if let Ok(alive) = encode(&Frame::Message(&ToWorker::Alive)) {
                let _ = w.tx.send(alive);
            }
            for (run, totals) in runs {
                to_run(run, RunEvent::Totals(totals));
            }
        }
        ToCoordinator::Ready { run, port } => to_run(run, RunEvent::Ready(port)),
        ToCoordinator::Refused { run, failure } => to_run(run, RunEvent::Refused(failure)),
        ToCoordinator::Report { run, report } => to_run(run, RunEvent::Report(report)),
        ToCoordinator::Finished { run, totals, failure } => to_run(run, RunEvent::Finished { totals, failure }),
    }
}
