//! [`NetworkExchange`]: the exchange port across worker processes.
//!
//! Subtasks on the same worker talk through bounded in-memory queues, as in
//! `LocalExchange`. A channel to a subtask on another worker writes [`Frame::Data`] onto
//! the one connection between the two workers, after taking one credit of that channel;
//! the receiver gives the credit back ([`Frame::Credit`]) when its task takes the
//! message off its input queue. A channel therefore never has more than
//! `credits_per_channel` messages in flight, so backpressure crosses the network the way
//! it crosses a queue in memory, and a slow channel never blocks the others sharing its
//! connection.
//!
//! Any failure of any connection — closed, a malformed frame, no frame for
//! `peer_timeout` (heartbeats are sent every `heartbeat`) — fails the whole exchange:
//! every input queue ends (`None`, which tasks treat as a failure, never as the end of
//! their input) and every sender reports the downstream gone. A failed job restarts
//! whole from its last checkpoint, so nothing finer is needed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use rivulet_dataflow::exchange::LocalSender;
use rivulet_dataflow::{ChannelSender, DownstreamGone, Envelope, Exchange, ExchangeError, InputQueue, Message, SubtaskId};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::transport::{Stream, Transport};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::frame::{Frame, FrameCodec};
use crate::handshake::{ClusterToken, HandshakeError, WorkerId, handshake};

/// How the exchange behaves.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Messages a channel to another worker may have in flight.
    pub credits_per_channel: u32,
    /// Messages a subtask's queue of same-worker channels holds before senders wait.
    pub local_capacity: usize,
    /// How often an otherwise quiet connection sends a heartbeat.
    pub heartbeat: Duration,
    /// A connection with no frame for this long has failed.
    pub peer_timeout: Duration,
    /// How long connecting to every peer (dialling, accepting, handshakes) may take.
    pub connect_timeout: Duration,
    /// Plain TCP or TLS.
    pub transport: Transport,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            credits_per_channel: 4,
            local_capacity: 4,
            heartbeat: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            transport: Transport::default(),
        }
    }
}

/// Why the exchange could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A peer could not be reached or did not complete the handshake in time.
    #[error("worker {peer} at {addr}: {error}")]
    Connect {
        /// The peer.
        peer: WorkerId,
        /// Where it was dialled.
        addr: SocketAddr,
        /// Why.
        error: String,
    },
    /// Not every peer that should dial this worker did, in time.
    #[error("workers {0:?} did not connect within the timeout")]
    Missing(Vec<WorkerId>),
    /// Accepting connections failed.
    #[error("accepting connections: {0}")]
    Accept(std::io::Error),
}

/// What receiving subtasks' input queues get from connections: a message from a peer,
/// or the news that the exchange failed.
#[derive(Debug)]
enum Remote {
    Message(WorkerId, Envelope),
    Failed,
}

/// What went wrong with a connection to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFailure {
    /// The peer sent nothing (not even a heartbeat) for the peer timeout: it hangs, or
    /// the network between the two drops packets. The cause of a failure.
    Silent,
    /// The peer closed the connection: usually the echo of its own failure elsewhere.
    Closed,
    /// Reading or writing failed (reset, broken pipe).
    Io,
    /// The peer broke the protocol.
    Protocol,
}

/// The exchange's failure, once: the first reason wins.
#[derive(Debug, Default)]
struct Failure {
    failed: AtomicBool,
    reason: Mutex<Option<(String, LinkFailure)>>,
    notify: Notify,
}

/// One connection to a peer: its writer queue and the credit of each channel this
/// worker sends on through it.
#[derive(Debug)]
struct Link {
    writer: mpsc::UnboundedSender<Frame>,
    credits: Mutex<HashMap<(SubtaskId, u32), Arc<Semaphore>>>,
}

/// Shared between the exchange, its links' tasks, its queues and its senders.
#[derive(Debug)]
struct Shared {
    me: WorkerId,
    config: NetworkConfig,
    failure: Failure,
    links: BTreeMap<WorkerId, Arc<Link>>,
    /// Where remote messages for each receiving subtask of this worker go.
    remote_in: HashMap<SubtaskId, mpsc::UnboundedSender<Remote>>,
}

impl Shared {
    /// Fail the exchange (the first reason is kept): inputs end, senders give up.
    fn fail(&self, reason: String, kind: LinkFailure) {
        if self.failure.failed.swap(true, Ordering::SeqCst) {
            return;
        }
        match kind {
            // How a run's end looks from the peers of the first worker to be cancelled;
            // a worker that died is reported by the coordinator as lost.
            LinkFailure::Closed => tracing::debug!(worker = self.me, %reason, "the exchange ended: a peer closed its connection"),
            _ => tracing::warn!(worker = self.me, %reason, "the exchange failed"),
        }
        *self.failure.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some((reason, kind));
        for link in self.links.values() {
            for credits in link.credits.lock().unwrap_or_else(|p| p.into_inner()).values() {
                credits.close();
            }
        }
        for tx in self.remote_in.values() {
            let _ = tx.send(Remote::Failed);
        }
        self.failure.notify.notify_waiters();
    }
}

/// The exchange of one worker for one attempt of a job.
#[derive(Debug)]
pub struct NetworkExchange {
    shared: Arc<Shared>,
    /// Which worker runs each receiving subtask.
    placement: HashMap<SubtaskId, WorkerId>,
    /// Same-worker senders of each local receiving subtask (until sealed).
    local: Mutex<HashMap<SubtaskId, mpsc::Sender<Envelope>>>,
    /// The remote half of each local receiving subtask's input, until `input` takes it.
    remote_rx: Mutex<HashMap<SubtaskId, mpsc::UnboundedReceiver<Remote>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for NetworkExchange {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl NetworkExchange {
    /// Connect worker `me` to each of `peers` (their exchange addresses) for `attempt`
    /// of a job, accepting the connections of lower-numbered peers on `listener` and
    /// dialling the higher-numbered ones. `placement` says which worker runs each
    /// receiving subtask of the job.
    pub async fn connect(
        config: NetworkConfig,
        me: WorkerId,
        token: ClusterToken,
        attempt: u64,
        listener: &TcpListener,
        peers: BTreeMap<WorkerId, SocketAddr>,
        placement: HashMap<SubtaskId, WorkerId>,
    ) -> Result<NetworkExchange, NetworkError> {
        let deadline = tokio::time::Instant::now() + config.connect_timeout;
        let dial = peers.iter().filter(|(id, _)| **id > me).map(|(id, addr)| dial(*id, *addr, &token, me, attempt, &config, deadline));
        let expected: Vec<WorkerId> = peers.keys().copied().filter(|id| *id < me).collect();
        let (dialled, accepted) =
            tokio::join!(futures::future::try_join_all(dial), accept(listener, &expected, &token, me, attempt, &config, deadline));
        let mut streams: Vec<(WorkerId, Stream)> = dialled?;
        streams.extend(accepted?);

        let mut remote_in = HashMap::new();
        let mut remote_rx = HashMap::new();
        for (to, worker) in &placement {
            if *worker == me {
                let (tx, rx) = mpsc::unbounded_channel();
                remote_in.insert(*to, tx);
                remote_rx.insert(*to, rx);
            }
        }
        let mut links = BTreeMap::new();
        let mut halves = Vec::new();
        for (peer, stream) in streams {
            let (tx, rx) = mpsc::unbounded_channel();
            links.insert(peer, Arc::new(Link { writer: tx, credits: Mutex::new(HashMap::new()) }));
            halves.push((peer, stream, rx));
        }
        let shared = Arc::new(Shared { me, config, failure: Failure::default(), links, remote_in });
        let mut tasks = Vec::new();
        for (peer, stream, frames) in halves {
            let (read, write) = tokio::io::split(stream);
            tasks.push(tokio::spawn(write_loop(shared.clone(), peer, FramedWrite::new(write, FrameCodec::default()), frames)));
            tasks.push(tokio::spawn(read_loop(shared.clone(), peer, FramedRead::new(read, FrameCodec::default()))));
        }
        Ok(NetworkExchange { shared, placement, local: Mutex::new(HashMap::new()), remote_rx: Mutex::new(remote_rx), tasks })
    }

    /// Why the exchange failed, once it has.
    pub fn failure(&self) -> Option<String> {
        self.failure_kind().map(|(reason, _)| reason)
    }

    /// Why the exchange failed and what kind of failure it was, once it has.
    pub fn failure_kind(&self) -> Option<(String, LinkFailure)> {
        self.shared.failure.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Wait until the exchange fails; returns why.
    pub async fn failed(&self) -> String {
        loop {
            let notified = self.shared.failure.notify.notified();
            if let Some(reason) = self.failure() {
                return reason;
            }
            notified.await;
        }
    }
}

async fn dial(
    peer: WorkerId,
    addr: SocketAddr,
    token: &ClusterToken,
    me: WorkerId,
    attempt: u64,
    config: &NetworkConfig,
    deadline: tokio::time::Instant,
) -> Result<(WorkerId, Stream), NetworkError> {
    let failed = |error: String| NetworkError::Connect { peer, addr, error };
    // The peer may not listen yet: retry until the deadline.
    let tcp = loop {
        match TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() + Duration::from_millis(50) < deadline => {
                tracing::debug!(peer, %addr, error = %e, "peer not reachable yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(1));
    let mut stream = tokio::time::timeout(left, config.transport.client(tcp))
        .await
        .map_err(|_| failed("TLS handshake timed out".into()))?
        .map_err(|e| failed(format!("TLS: {e}")))?;
    handshake(&mut stream, token, me, attempt, Some(peer), left.min(config.connect_timeout)).await.map_err(|e| failed(e.to_string()))?;
    Ok((peer, stream))
}

async fn accept(
    listener: &TcpListener,
    expected: &[WorkerId],
    token: &ClusterToken,
    me: WorkerId,
    attempt: u64,
    config: &NetworkConfig,
    deadline: tokio::time::Instant,
) -> Result<Vec<(WorkerId, Stream)>, NetworkError> {
    let mut got: BTreeMap<WorkerId, Stream> = BTreeMap::new();
    while got.len() < expected.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (tcp, from) = match tokio::time::timeout(left, listener.accept()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(NetworkError::Accept(e)),
            Err(_) => return Err(NetworkError::Missing(expected.iter().copied().filter(|id| !got.contains_key(id)).collect())),
        };
        let mut stream =
            match tokio::time::timeout(config.connect_timeout.min(left.max(Duration::from_millis(1))), config.transport.server(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(%from, error = %e, "refused a connection (TLS)");
                    continue;
                }
                Err(_) => continue,
            };
        match handshake(&mut stream, token, me, attempt, None, config.connect_timeout.min(left.max(Duration::from_millis(1)))).await {
            Ok(peer) if expected.contains(&peer.id) && !got.contains_key(&peer.id) => {
                got.insert(peer.id, stream);
            }
            Ok(peer) => tracing::warn!(peer = peer.id, %from, "refused a connection from a worker this one does not expect"),
            Err(e @ (HandshakeError::BadProof(_) | HandshakeError::Protocol | HandshakeError::StaleAttempt { .. })) => {
                tracing::warn!(%from, error = %e, "refused a connection");
            }
            Err(e) => tracing::debug!(%from, error = %e, "a connection failed its handshake"),
        }
    }
    Ok(got.into_iter().collect())
}

/// Write the link's frames; a heartbeat whenever nothing was written for a beat.
async fn write_loop(
    shared: Arc<Shared>,
    peer: WorkerId,
    mut out: FramedWrite<WriteHalf<Stream>, FrameCodec>,
    mut frames: mpsc::UnboundedReceiver<Frame>,
) {
    let beat = shared.config.heartbeat;
    loop {
        if shared.failure.failed.load(Ordering::SeqCst) {
            return;
        }
        let next = tokio::select! {
            f = frames.recv() => f,
            () = tokio::time::sleep(beat) => Some(Frame::Heartbeat),
            () = shared.failure.notify.notified() => None,
        };
        let Some(frame) = next else { return };
        let mut result = out.feed(frame).await;
        // Whatever else is queued goes out in the same write.
        while result.is_ok()
            && let Ok(more) = frames.try_recv()
        {
            result = out.feed(more).await;
        }
        if let Err(e) = result.and(out.flush().await) {
            shared.fail(format!("writing to worker {peer}: {e}"), LinkFailure::Io);
            return;
        }
    }
}

/// Read the link's frames: messages into the receiving subtasks' queues, credit to the
/// senders; fail the exchange when the connection closes, breaks or goes quiet.
async fn read_loop(shared: Arc<Shared>, peer: WorkerId, mut input: FramedRead<ReadHalf<Stream>, FrameCodec>) {
    let timeout = shared.config.peer_timeout;
    loop {
        if shared.failure.failed.load(Ordering::SeqCst) {
            return;
        }
        let frame = tokio::select! {
            f = tokio::time::timeout(timeout, input.next()) => f,
            () = shared.failure.notify.notified() => return,
        };
        let frame = match frame {
            Err(_) => return shared.fail(format!("worker {peer} sent nothing for {timeout:?}"), LinkFailure::Silent),
            Ok(None) => return shared.fail(format!("worker {peer} closed the connection"), LinkFailure::Closed),
            Ok(Some(Err(e))) => return shared.fail(format!("reading from worker {peer}: {e}"), LinkFailure::Io),
            Ok(Some(Ok(f))) => f,
        };
        match frame {
            Frame::Heartbeat => {}
            Frame::Data { to, channel, msg } => match shared.remote_in.get(&to) {
                Some(tx) => {
                    let _ = tx.send(Remote::Message(peer, Envelope { channel: channel as usize, msg }));
                }
                None => return shared.fail(format!("worker {peer} sent a message for {to:?}, which does not run here"), LinkFailure::Protocol),
            },
            Frame::Credit { to, channel, grant } => {
                let credits = shared.links.get(&peer).and_then(|l| l.credits.lock().unwrap_or_else(|p| p.into_inner()).get(&(to, channel)).cloned());
                match credits {
                    Some(c) => c.add_permits(grant as usize),
                    None => {
                        return shared.fail(format!("worker {peer} granted credit on a channel this worker never sent on"), LinkFailure::Protocol);
                    }
                }
            }
        }
    }
}

/// A subtask's input: same-worker channels (bounded) and other workers' (credited).
#[derive(Debug)]
struct NetInput {
    to: SubtaskId,
    shared: Arc<Shared>,
    local: Option<mpsc::Receiver<Envelope>>,
    remote: mpsc::UnboundedReceiver<Remote>,
    failed: bool,
    /// Which half is polled first next time (fairness).
    remote_first: bool,
}

impl NetInput {
    fn poll_remote(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        match self.remote.poll_recv(cx) {
            Poll::Ready(Some(Remote::Message(peer, env))) => {
                if let Some(link) = self.shared.links.get(&peer) {
                    let _ = link.writer.send(Frame::Credit { to: self.to, channel: env.channel as u32, grant: 1 });
                }
                Poll::Ready(Some(env))
            }
            Poll::Ready(Some(Remote::Failed) | None) => {
                self.failed = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_local(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        let Some(local) = &mut self.local else { return Poll::Pending };
        match local.poll_recv(cx) {
            Poll::Ready(Some(env)) => Poll::Ready(Some(env)),
            // Every same-worker sender is gone; other workers may still send.
            Poll::Ready(None) => {
                self.local = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl InputQueue for NetInput {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        if self.failed {
            return Poll::Ready(None);
        }
        self.remote_first = !self.remote_first;
        let first = if self.remote_first { self.poll_remote(cx) } else { self.poll_local(cx) };
        if first.is_ready() {
            return first;
        }
        let second = if self.remote_first { self.poll_local(cx) } else { self.poll_remote(cx) };
        if second.is_ready() {
            return second;
        }
        // No peer can send to a subtask that has no remote channel: once its local
        // senders are gone, its input has ended.
        if self.local.is_none() && self.shared.links.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// A channel to a subtask on another worker.
#[derive(Debug)]
struct RemoteSender {
    to: SubtaskId,
    channel: u32,
    link: Arc<Link>,
    credits: Arc<Semaphore>,
}

impl ChannelSender for RemoteSender {
    fn send(&self, msg: Message) -> rivulet_dataflow::exchange::SendFuture<'_> {
        Box::pin(async move {
            // Closed when the exchange fails.
            self.credits.acquire().await.map_err(|_| DownstreamGone)?.forget();
            self.link.writer.send(Frame::Data { to: self.to, channel: self.channel, msg }).map_err(|_| DownstreamGone)
        })
    }
}

impl Exchange for NetworkExchange {
    fn input(&self, to: SubtaskId, _channels: usize) -> Box<dyn InputQueue> {
        let (tx, rx) = mpsc::channel(self.shared.config.local_capacity.max(1));
        self.local.lock().unwrap_or_else(|p| p.into_inner()).insert(to, tx);
        let remote = self.remote_rx.lock().unwrap_or_else(|p| p.into_inner()).remove(&to).unwrap_or_else(|| {
            // A subtask the placement does not put here: it can only hear from this worker.
            let (_tx, rx) = mpsc::unbounded_channel();
            rx
        });
        Box::new(NetInput { to, shared: self.shared.clone(), local: Some(rx), remote, failed: false, remote_first: false })
    }

    fn sender(&self, to: SubtaskId, channel: usize) -> Result<Box<dyn ChannelSender>, ExchangeError> {
        let worker = *self.placement.get(&to).ok_or(ExchangeError::NoInput(to))?;
        if worker == self.shared.me {
            let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            let tx = local.get(&to).ok_or(ExchangeError::NoInput(to))?;
            return Ok(Box::new(LocalSender::new(tx.clone(), channel)));
        }
        let link = self.shared.links.get(&worker).ok_or(ExchangeError::NoInput(to))?.clone();
        let channel = u32::try_from(channel).map_err(|_| ExchangeError::NoInput(to))?;
        let credits = Arc::new(Semaphore::new(self.shared.config.credits_per_channel.max(1) as usize));
        if self.shared.failure.failed.load(Ordering::SeqCst) {
            credits.close();
        }
        link.credits.lock().unwrap_or_else(|p| p.into_inner()).insert((to, channel), credits.clone());
        Ok(Box::new(RemoteSender { to, channel, link, credits }))
    }

    fn seal(&self) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
