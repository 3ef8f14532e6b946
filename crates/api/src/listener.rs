//! Accepting connections so that clients cannot exhaust the server: at most
//! `max_connections` at once (well below the process's file-descriptor limit, which
//! jobs need for their files, sockets and state), and a connection whose request
//! headers do not arrive in time — an idle keep-alive or a half-sent request — is
//! closed. Bodies have their own deadline where handlers read them.
//!
//! At the cap, a new connection does not wait behind idle ones: the connection that has
//! waited longest without a complete request (idle since it was accepted or since its
//! last response, or still sending headers or a TLS handshake) is closed and the new one
//! is served at once. Only when every connection is busy with a request does a new one
//! wait, until one finishes its response or closes. A connection is busy from the moment
//! its request's headers are complete (hyper calls the service) until its response body
//! has been written (hyper drops it). A client that does not read its response is not
//! busy for ever: a connection whose response has been waiting to be written for longer
//! than [`SLOW_READER`] may be closed for a new one too, once no idle one is left.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How many connections the server serves at once, and how long it waits for headers.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once. At the cap a new connection replaces the one that
    /// has waited longest without a complete request; it waits only when all are busy.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, from the connection's start or the end of
    /// its previous response (and for a TLS handshake).
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// A quarter of the file descriptors the process may open (between 8 and 1024),
    /// leaving the rest to jobs; 10 s for headers.
    pub fn from_fd_limit() -> Self {
        ConnectionLimits { max_connections: (fd_limit() / 4).clamp(8, 1024) as usize, header_timeout: Duration::from_secs(10) }
    }
}

/// How long a response may wait for its client to read it before, at the cap, its
/// connection may be closed for a new one (a client that never reads would otherwise hold
/// its slot for ever).
pub const SLOW_READER: Duration = Duration::from_secs(30);

/// The soft limit on open file descriptors (1024 where it cannot be read).
fn fd_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct it is given and reads nothing else.
        #[allow(unsafe_code, reason = "reading the process's descriptor limit")]
        let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0;
        if read {
            return l.rlim_cur;
        }
    }
    1024
}

/// Serve `app` on `listener` within `limits` until the process ends; over TLS when
/// `tls` is given.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, tls: Option<tokio_rustls::TlsAcceptor>) {
    let registry = Arc::new(Registry::new(limits.max_connections.max(1)));
    let mut warned = false;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors (or a connection reset before it was accepted):
                // back off rather than spin; jobs keep what they hold.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Room for it: a free slot, else the longest-idle connection's, else wait until
        // a busy one finishes its response or closes (no more are accepted meanwhile).
        let conn = loop {
            let room = registry.room.notified();
            match registry.admit() {
                Admitted::Free(conn) => break conn,
                Admitted::Replacing(conn, idle_for) => {
                    if !warned {
                        warned = true;
                        tracing::warn!(
                            max = limits.max_connections,
                            "serving the most connections allowed: closing the longest-idle one for each new one (--max-connections)"
                        );
                    }
                    tracing::debug!(%peer, idle_ms = idle_for.as_millis() as u64, "closed an idle connection to serve a new one");
                    break conn;
                }
                Admitted::Full => {
                    if !warned {
                        warned = true;
                        tracing::warn!(max = limits.max_connections, "every connection is busy with a request; new ones wait (--max-connections)");
                    }
                    // Re-checked now and then: a response left unread turns its
                    // connection replaceable without anything being signalled.
                    let _ = tokio::time::timeout(Duration::from_secs(1), room).await;
                }
            }
        };
        let service = Tracked { inner: TowerToHyperService::new(app.clone()), conn: conn.clone() };
        let tls = tls.clone();
        tokio::spawn(async move {
            let close = conn.close.clone();
            let served = async {
                match tls {
                    None => serve_io(stream, service, limits).await,
                    Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_io(stream, service, limits).await,
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}")),
                        Err(_) => Err("TLS handshake timed out".to_owned()),
                    },
                }
            };
            tokio::select! {
                result = served => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection closed");
                    }
                }
                // Replaced by a new connection while idle: dropping the connection closes it.
                () = close.notified() => tracing::debug!(%peer, "idle connection closed for a new one"),
            }
            // The slot goes with `conn` (and `service`'s copy), dropped here.
            drop(conn);
        });
    }
}

/// Serve HTTP/1 on one connection.
async fn serve_io<I>(io: I, service: Tracked, limits: ConnectionLimits) -> Result<(), String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    http.serve_connection(TokioIo::new(io), service).await.map_err(|e| e.to_string())
}

/// The live connections: for each, whether it is serving a request or waiting for one,
/// and since when.
struct Registry {
    /// Connections served at once.
    max: usize,
    slots: Mutex<Slots>,
    /// Signalled when a connection closes or finishes a response: a new connection
    /// waiting for room may then be admitted.
    room: Notify,
}

#[derive(Default)]
struct Slots {
    next_id: u64,
    live: HashMap<u64, Slot>,
}

struct Slot {
    /// Requests being served (at most one with HTTP/1, but counted).
    in_flight: usize,
    /// When it last started waiting for a request (accepted, or its response ended).
    idle_since: Instant,
    /// Since when its response has been ready and waiting to be written (read by the
    /// client), if it is.
    writing_since: Option<Instant>,
    /// Notified to close it.
    close: Arc<Notify>,
}

/// The outcome of [`Registry::admit`].
enum Admitted {
    /// Below the cap.
    Free(Arc<Conn>),
    /// At the cap: the connection idle the longest (for so long) is being closed.
    Replacing(Arc<Conn>, Duration),
    /// Every connection is busy with a request.
    Full,
}

impl Registry {
    fn new(max: usize) -> Self {
        Registry { max, slots: Mutex::new(Slots::default()), room: Notify::new() }
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Make room for a new connection, closing at the cap the longest-idle one, else
    /// the one whose response has waited longest (over [`SLOW_READER`]) to be read.
    fn admit(self: &Arc<Self>) -> Admitted {
        let now = Instant::now();
        let mut slots = self.slots();
        let mut replaced = None;
        if slots.live.len() >= self.max {
            let idle = slots.live.iter().filter(|(_, s)| s.in_flight == 0).min_by_key(|(_, s)| s.idle_since).map(|(id, _)| *id);
            let unread = || {
                slots
                    .live
                    .iter()
                    .filter_map(|(id, s)| s.writing_since.filter(|w| now.saturating_duration_since(*w) > SLOW_READER).map(|w| (*id, w)))
                    .min_by_key(|(_, w)| *w)
                    .map(|(id, _)| id)
            };
            let Some(victim) = idle.or_else(unread).and_then(|id| slots.live.remove(&id)) else { return Admitted::Full };
            victim.close.notify_one();
            replaced = Some(now.saturating_duration_since(victim.writing_since.unwrap_or(victim.idle_since)));
        }
        let id = slots.next_id;
        slots.next_id += 1;
        let close = Arc::new(Notify::new());
        slots.live.insert(id, Slot { in_flight: 0, idle_since: now, writing_since: None, close: close.clone() });
        drop(slots);
        let conn = Arc::new(Conn { id, registry: self.clone(), close });
        match replaced {
            Some(idle) => Admitted::Replacing(conn, idle),
            None => Admitted::Free(conn),
        }
    }
}

/// A connection's place in the [`Registry`]; freed when dropped.
struct Conn {
    id: u64,
    registry: Arc<Registry>,
    /// Notified when the connection is to be closed (it was idle and a new one came).
    close: Arc<Notify>,
}

impl Conn {
    /// The connection serves a request until the guard is dropped.
    fn busy(self: &Arc<Self>) -> Busy {
        if let Some(slot) = self.registry.slots().live.get_mut(&self.id) {
            slot.in_flight += 1;
        }
        Busy { conn: self.clone() }
    }

    /// Its response is ready: from now on it waits for the client to read it.
    fn writing(&self) {
        if let Some(slot) = self.registry.slots().live.get_mut(&self.id) {
            slot.writing_since.get_or_insert_with(Instant::now);
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Absent when it was replaced (the room was taken then).
        if self.registry.slots().live.remove(&self.id).is_some() {
            self.registry.room.notify_one();
        }
    }
}

/// A request being served on a connection: from the complete headers to the end of
/// the response body.
struct Busy {
    conn: Arc<Conn>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let registry = &self.conn.registry;
        let idle = match registry.slots().live.get_mut(&self.conn.id) {
            Some(slot) => {
                slot.in_flight = slot.in_flight.saturating_sub(1);
                if slot.in_flight == 0 {
                    slot.idle_since = Instant::now();
                    slot.writing_since = None;
                }
                slot.in_flight == 0
            }
            None => false,
        };
        if idle {
            // It may now make room for a connection waiting at the cap.
            registry.room.notify_one();
        }
    }
}

/// The router, marking its connection busy while a request is served.
struct Tracked {
    inner: TowerToHyperService<Router>,
    conn: Arc<Conn>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = hyper::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let busy = self.conn.busy();
        let conn = self.conn.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            conn.writing();
            Ok(response.map(|body| Body::new(BusyBody { body, _busy: busy })))
        })
    }
}

/// A response body that keeps its connection busy until hyper has written it.
struct BusyBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admitted) -> Option<Arc<Conn>> {
        match a {
            Admitted::Free(c) | Admitted::Replacing(c, _) => Some(c),
            Admitted::Full => None,
        }
    }

    fn live(registry: &Registry) -> Vec<u64> {
        let mut ids: Vec<u64> = registry.slots().live.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let registry = Arc::new(Registry::new(2));
        let a = admitted(registry.admit()).expect("a");
        std::thread::sleep(Duration::from_millis(2));
        let b = admitted(registry.admit()).expect("b");
        // `a` waited longest: the third replaces it.
        let c = admitted(registry.admit()).expect("c");
        assert_eq!(live(&registry), vec![b.id, c.id], "the longest-idle connection was closed");
        // Busy connections are never closed; with all busy a new one waits.
        let _busy_b = b.busy();
        let busy_c = c.busy();
        assert!(matches!(registry.admit(), Admitted::Full));
        // The end of a response makes its connection idle (and replaceable) again.
        drop(busy_c);
        let d = admitted(registry.admit()).expect("d");
        assert_eq!(live(&registry), vec![b.id, d.id]);
        // A closed connection frees its slot.
        drop(d);
        assert_eq!(live(&registry), vec![b.id]);
        drop(a);
        assert_eq!(live(&registry), vec![b.id], "a replaced connection held no slot");
    }

    /// A client that never reads its response does not hold its slot for ever: once no
    /// idle connection is left, the one whose response has waited longest past
    /// SLOW_READER is closed; a request still being handled never is.
    #[test]
    fn a_response_left_unread_makes_its_connection_replaceable() {
        let registry = Arc::new(Registry::new(2));
        let handling = admitted(registry.admit()).expect("handling");
        let _handling_busy = handling.busy();
        let reader = admitted(registry.admit()).expect("reader");
        let _reader_busy = reader.busy();
        reader.writing();
        assert!(matches!(registry.admit(), Admitted::Full), "a response written just now is not slow");
        let long_ago = Instant::now().checked_sub(SLOW_READER + Duration::from_secs(1)).expect("instant");
        registry.slots().live.get_mut(&reader.id).expect("slot").writing_since = Some(long_ago);
        let next = admitted(registry.admit()).expect("the unread response's connection makes room");
        assert_eq!(live(&registry), vec![handling.id, next.id]);
        let _next_busy = next.busy();
        assert!(matches!(registry.admit(), Admitted::Full), "a request being handled is never closed");
    }
}
