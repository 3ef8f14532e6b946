//! Idle connections must not starve the server: at `--max-connections` the connection
//! that has waited longest without a complete request is closed for a new one, so idle
//! sockets (and a client that keeps reopening them) cannot keep `/healthz` waiting; a
//! connection busy with a request is never closed for that.
//!
//! The header timeout is set long (60 s) so that closing slow connections by timeout —
//! what the server did before — cannot be what lets the requests through. Times are
//! checked only against generous bounds; the attack's real figures are measured by hand
//! (docs/benchmarks.md).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::Server;

/// The address of a server started as `http://127.0.0.1:PORT`.
fn addr(srv: &Server) -> SocketAddr {
    srv.url.trim_start_matches("http://").parse().expect("the server's address")
}

/// One `GET /healthz` on a new connection: the status line and how long it took.
fn healthz(addr: SocketAddr, within: Duration) -> Result<(String, Duration), String> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, within).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(within)).map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| format!("no answer after {:?}: {e}", start.elapsed()))?;
    let text = String::from_utf8_lossy(&answer);
    Ok((text.lines().next().unwrap_or_default().to_owned(), start.elapsed()))
}

/// Whether the server has closed this (idle) socket.
fn closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let r = s.peek(&mut buf);
    let _ = s.set_nonblocking(false);
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// A client that holds `n` idle sockets and reopens each one the server closes, until
/// stopped; counts the reopenings.
fn reopener(addr: SocketAddr, n: usize, stop: Arc<AtomicBool>, reopened: Arc<AtomicUsize>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut socks: Vec<Option<TcpStream>> = (0..n).map(|_| TcpStream::connect(addr).ok()).collect();
        while !stop.load(Ordering::Relaxed) {
            for s in &mut socks {
                if s.as_ref().is_none_or(closed) {
                    *s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok();
                    reopened.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

#[test]
fn idle_sockets_and_a_reopening_client_do_not_starve_healthz() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(&dir.path().join("data"), None, &["--max-connections", "16", "--header-timeout", "60s"]);
    let addr = addr(&srv);

    // Three times the cap in idle sockets that never send a byte, and a client that
    // keeps 24 more open, reopening each one the server closes.
    let idle: Vec<TcpStream> = (0..48).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicUsize::new(0));
    let attacker = reopener(addr, 24, stop.clone(), reopened.clone());
    std::thread::sleep(Duration::from_millis(500));

    let mut results = Vec::new();
    for _ in 0..10 {
        results.push(healthz(addr, Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().expect("the reopening client");

    let ok = results.iter().filter(|r| matches!(r, Ok((line, took)) if line.contains(" 200 ") && *took < Duration::from_secs(5))).count();
    assert_eq!(ok, 10, "/healthz calls that succeeded within 5 s: {results:?}\n{}", srv.log_text());
    // They got through because idle connections were closed for them (the header
    // timeout is far away), and the reopening client kept coming back.
    let closed_idle = idle.iter().filter(|s| closed(s)).count();
    assert!(closed_idle > 0, "no idle socket was closed");
    assert!(reopened.load(Ordering::Relaxed) > 0, "the server never closed the reopening client's sockets");
}

#[test]
fn a_connection_busy_with_a_request_is_not_closed_for_a_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = Server::start(&dir.path().join("data"), None, &["--max-connections", "2", "--header-timeout", "60s"]);
    let addr = addr(&srv);

    // A request whose headers are complete and whose body is still coming: busy.
    let mut busy = TcpStream::connect(addr).expect("connect");
    busy.write_all(b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"spec\": ")
        .expect("send the headers and part of the body");
    std::thread::sleep(Duration::from_millis(300));

    // Idle sockets beyond the cap, then /healthz: idle ones make room, the busy one stays.
    let idle: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (line, _) = healthz(addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("/healthz: {e}\n{}", srv.log_text()));
    assert!(line.contains(" 200 "), "{line}");
    assert!(idle.iter().filter(|s| closed(s)).count() >= 5, "idle sockets were closed to make room");

    // The busy request still gets its answer (a 4xx for the broken spec) once its body
    // is complete.
    busy.write_all(b"\"x\"}       ").expect("the rest of the body");
    busy.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut answer = [0u8; 64];
    let n = busy.read(&mut answer).unwrap_or_else(|e| panic!("the busy request got no answer: {e}\n{}", srv.log_text()));
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 4"), "the busy connection was closed or failed: {text:?}");
}
