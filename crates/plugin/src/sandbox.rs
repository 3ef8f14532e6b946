//! The guest's sandboxed WASI: no preopens, environment, sockets or name lookup; stdout
//! and stderr into `tracing` (the tail of stderr kept for error messages); a frozen wall
//! clock, a counting monotonic clock and seeded randomness, so replays are exact.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::SeedableRng;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

use crate::guest_log::{GuestLog, GuestLogLevel};

/// Bytes of stderr kept for failure messages.
const TAIL_BYTES: usize = 4096;

/// A guest's stdout or stderr: each line goes to `tracing` and the job's log; the tail
/// is kept for errors.
#[derive(Clone)]
struct GuestOutput {
    uid: Arc<str>,
    subtask: u32,
    level: GuestLogLevel,
    tail: Arc<Mutex<Vec<u8>>>,
    log: Option<Arc<GuestLog>>,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        for line in String::from_utf8_lossy(buf).lines() {
            if !line.is_empty() {
                tracing::info!(target: "rivulet::guest", operator = %self.uid, stream = self.level.as_str(), "{line}");
                if let Some(log) = &self.log {
                    log.push(&self.uid, self.subtask, self.level, line);
                }
            }
        }
        if let Ok(mut tail) = self.tail.lock() {
            tail.extend_from_slice(buf);
            let excess = tail.len().saturating_sub(TAIL_BYTES);
            tail.drain(..excess);
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A wall clock stuck at the Unix epoch: guests get no real time.
struct FrozenWallClock;

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock that advances 1 µs per read: deterministic, yet never stands still.
#[derive(Default)]
struct CountingClock(AtomicU64);

impl HostMonotonicClock for CountingClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed)
    }
}

/// The sandboxed WASI context of one instance, and the shared tail of its stderr.
pub(crate) fn wasi(uid: &str, subtask: u32, log: Option<Arc<GuestLog>>) -> (WasiCtx, Arc<Mutex<Vec<u8>>>) {
    let uid: Arc<str> = Arc::from(uid);
    let stderr_tail = Arc::new(Mutex::new(Vec::new()));
    let stream = |level, tail| GuestOutput { uid: uid.clone(), subtask, level, tail, log: log.clone() };
    let mut wasi = WasiCtx::builder();
    wasi.stdout(stream(GuestLogLevel::Stdout, Arc::new(Mutex::new(Vec::new()))))
        .stderr(stream(GuestLogLevel::Stderr, stderr_tail.clone()))
        .wall_clock(FrozenWallClock)
        .monotonic_clock(CountingClock::default())
        .secure_random(rand::rngs::StdRng::seed_from_u64(0x5256_4c54))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(0x5256_4c55))
        .insecure_random_seed(0x5256_4c56)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    (wasi.build(), stderr_tail)
}
