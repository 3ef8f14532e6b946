//! What a job's guests logged — SDK `log` calls and lines on stdout/stderr — kept in a
//! bounded buffer so the server can show them per job (`GET /v1/jobs/{id}/logs`).
//! Every line also goes to `tracing` (target `rivulet::guest`).

use std::collections::VecDeque;
use std::sync::Mutex;

/// Lines kept per job; older ones are dropped first.
pub const GUEST_LOG_LINES: usize = 2000;

/// One logged line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GuestLogLine {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Operator uid.
    pub operator: String,
    /// Subtask index.
    pub subtask: u32,
    /// `trace`, `debug`, `info`, `warn`, `error`, or `stdout` / `stderr`.
    pub level: String,
    /// The text.
    pub message: String,
}

/// A bounded buffer of guest log lines.
#[derive(Debug, Default)]
pub struct GuestLog {
    lines: Mutex<VecDeque<GuestLogLine>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl GuestLog {
    /// Append a line (dropping the oldest beyond [`GUEST_LOG_LINES`]).
    pub fn push(&self, operator: &str, subtask: u32, level: &str, message: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() >= GUEST_LOG_LINES {
            lines.pop_front();
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        lines.push_back(GuestLogLine {
            at_ms: crate::runtime::now_ms(),
            operator: operator.to_owned(),
            subtask,
            level: level.to_owned(),
            message: message.to_owned(),
        });
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<GuestLogLine> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Lines dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}
