//! What a job's guests logged — SDK `log` calls and lines on stdout/stderr — kept in a
//! bounded buffer so the server can show them per job (`GET /v1/jobs/{id}/logs`).
//! Every line also goes to `tracing` (target `rivulet::guest`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Lines kept per job; older ones are dropped first.
pub const GUEST_LOG_LINES: usize = 2000;

/// The level of an SDK log call, or the stream a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GuestLogLevel {
    /// `log` at trace level.
    Trace,
    /// `log` at debug level.
    Debug,
    /// `log` at info level.
    Info,
    /// `log` at warn level.
    Warn,
    /// `log` at error level.
    Error,
    /// A line on the guest's stdout.
    Stdout,
    /// A line on the guest's stderr.
    Stderr,
}

impl GuestLogLevel {
    /// The level's name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestLogLevel::Trace => "trace",
            GuestLogLevel::Debug => "debug",
            GuestLogLevel::Info => "info",
            GuestLogLevel::Warn => "warn",
            GuestLogLevel::Error => "error",
            GuestLogLevel::Stdout => "stdout",
            GuestLogLevel::Stderr => "stderr",
        }
    }
}

/// One logged line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct GuestLogLine {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Operator uid.
    pub operator: String,
    /// Subtask index.
    pub subtask: u32,
    /// The level, or the stream.
    pub level: GuestLogLevel,
    /// The text.
    pub message: String,
}

/// A bounded buffer of guest log lines.
#[derive(Debug, Default)]
pub struct GuestLog {
    lines: Mutex<VecDeque<GuestLogLine>>,
    dropped: AtomicU64,
}

impl GuestLog {
    /// Append a line (dropping the oldest beyond [`GUEST_LOG_LINES`]).
    pub fn push(&self, operator: &str, subtask: u32, level: GuestLogLevel, message: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() >= GUEST_LOG_LINES {
            lines.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        lines.push_back(GuestLogLine {
            at_ms: rivulet_dataflow::now_ms(),
            operator: operator.to_owned(),
            subtask,
            level,
            message: message.to_owned(),
        });
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<GuestLogLine> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Lines dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_keeps_the_newest_lines() {
        let log = GuestLog::default();
        for i in 0..GUEST_LOG_LINES + 5 {
            log.push("op", 0, GuestLogLevel::Info, &i.to_string());
        }
        let lines = log.lines();
        assert_eq!(lines.len(), GUEST_LOG_LINES);
        assert_eq!(lines[0].message, "5");
        assert_eq!(log.dropped(), 5);
    }
}
