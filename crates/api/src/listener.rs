//! Accepting connections so that clients cannot exhaust the server: at most
//! `max_connections` at once (well below the process's file-descriptor limit, which
//! jobs need for their files, sockets and state), and a connection whose request
//! headers do not arrive in time — an idle keep-alive or a half-sent request — is
//! closed. Bodies have their own deadline where handlers read them.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many connections the server serves at once, and how long it waits for headers.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, from the connection's start or the end of
    /// its previous response.
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// A quarter of the file descriptors the process may open (between 8 and 1024),
    /// leaving the rest to jobs; 10 s for headers.
    pub fn from_fd_limit() -> Self {
        ConnectionLimits { max_connections: (fd_limit() / 4).clamp(8, 1024) as usize, header_timeout: Duration::from_secs(10) }
    }
}

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

/// Serve `app` on `listener` within `limits` until the process ends.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut warned = false;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
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
        if permits.available_permits() == 0 && !warned {
            warned = true;
            tracing::warn!(max = limits.max_connections, "serving the most connections allowed; more wait (--max-connections)");
        }
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}
