//! Graceful shutdown. SIGTERM or SIGINT (ctrl-c) stops the server accepting connections
//! and records, durably, that its active jobs were stopped by a shutdown and not by a
//! crash ([`JobManager::shut_down`]), so the next start resumes them from their latest
//! checkpoints without counting the restart toward crash-loop suspension. The jobs'
//! runs are not waited for (the process exits promptly): what they did since their
//! latest checkpoint is redone on the next start, as after a crash.

use std::future::Future;

use rivulet_server::JobManager;

/// A future that resolves (with the signal's name) when the process is asked to stop:
/// SIGTERM or SIGINT. The handlers are installed by this call, not when the future is
/// first polled, so a signal that arrives while the server still starts (resuming its
/// jobs) is not lost; from here on neither signal kills the process at once.
pub(crate) fn signal() -> std::io::Result<impl Future<Output = &'static str> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            "ctrl-c"
        })
    }
}

/// Run `serving` until `shutdown` resolves; then stop serving (no connection is
/// accepted any more) and record the graceful shutdown of `jobs`.
pub(crate) async fn serve_until(serving: impl Future<Output = ()>, shutdown: impl Future<Output = &'static str>, jobs: &JobManager) {
    tokio::select! {
        () = serving => {}
        signal = shutdown => {
            eprintln!("[rivulet] {signal}: shutting down gracefully; running jobs resume from their latest checkpoints on the next start");
            tracing::info!(signal, "graceful shutdown");
            jobs.shut_down();
        }
    }
}
