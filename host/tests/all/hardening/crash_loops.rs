//! Graceful restarts are not crashes: a server stopped with SIGTERM or SIGINT records
//! that its jobs were stopped by a shutdown, exits promptly and successfully, and the
//! next start resumes them without counting toward crash-loop suspension. Deaths that
//! are not graceful (`kill -9`) still count
//! (`server::a_server_that_keeps_dying_soon_after_resuming_a_job_suspends_it`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::signal;
use crate::server::{Server, TOKEN};

/// Wait until job `id`'s sink has received records in its current run.
fn wait_output(srv: &Server, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while srv.sink_in(id) == 0 {
        assert!(Instant::now() < deadline, "job {id} makes no progress: {:#}\n{}", srv.job(id), srv.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop `srv` with `sig`; it must exit successfully within a few seconds, saying so.
fn stop_gracefully(srv: &mut Server, sig: &str) {
    assert!(signal(sig, srv.child.id()), "kill {sig}");
    let status = srv.exit_within(Duration::from_secs(10)).unwrap_or_else(|| panic!("{sig} did not stop the server in 10 s:\n{}", srv.log_text()));
    assert!(status.success(), "{sig}: {status}\n{}", srv.log_text());
    assert!(srv.log_text().contains("shutting down gracefully"), "{}", srv.log_text());
}

/// Start the server again on `data`; the job is running, with `quick_resumes` as given.
fn restart(data: &std::path::Path, id: &str, quick_resumes: u32, what: &str) -> (Server, Value) {
    let srv = Server::start(data, Some(TOKEN), &[]);
    let v = srv.job(id);
    assert_eq!(v["status"], "running", "{what}: {v:#}\n{}", srv.log_text());
    assert_eq!(v["quick_resumes"], quick_resumes, "{what}: {v:#}");
    assert!(v.get("shut_down_gracefully").is_none(), "{what}: {v:#}");
    (srv, v)
}

#[test]
fn graceful_restarts_resume_the_job_and_never_count_toward_a_crash_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (mut srv, id) = crate::server::server_with_an_endless_job(&data);

    // More restarts in a row, each soon after resuming the job, than a crash loop allows
    // (three): every one graceful, so the job is resumed each time and never suspended.
    let signals = ["-TERM", "-TERM", "-INT", "-TERM", "-TERM"];
    for (round, sig) in signals.iter().enumerate() {
        wait_output(&srv, &id);
        stop_gracefully(&mut srv, sig);
        (srv, _) = restart(&data, &id, 0, &format!("graceful restart {} ({sig})", round + 1));
    }
    wait_output(&srv, &id);
    let (_, history) = srv.get(&format!("/v1/jobs/{id}/history"));
    let events = history.as_array().expect("history");
    let kinds: Vec<&str> = events.iter().filter_map(|h| h["kind"].as_str()).collect();
    assert_eq!(kinds, ["submitted", "resumed", "resumed", "resumed", "resumed", "resumed"], "{history:#}");
    assert!(events[1..].iter().all(|h| h["detail"].as_str().is_some_and(|d| d.contains("graceful shutdown"))), "{history:#}");

    // Deaths that are not graceful still count...
    for round in 1..=2 {
        srv.kill9();
        (srv, _) = restart(&data, &id, round, &format!("kill -9 {round}"));
    }
    // ...and a graceful shutdown resets their count: the next start does not add to it.
    stop_gracefully(&mut srv, "-TERM");
    (srv, _) = restart(&data, &id, 0, "a graceful restart after two kill -9s");
    wait_output(&srv, &id);
    // A crash loop then needs four kills again (as after a submission), not one or two.
    for round in 1..=3 {
        srv.kill9();
        (srv, _) = restart(&data, &id, round, &format!("kill -9 {round} after the graceful restart"));
    }
    srv.kill9();
    let srv = Server::start(&data, Some(TOKEN), &[]);
    let v = srv.job(&id);
    assert_eq!(v["status"], "suspended", "{v:#}");
}
