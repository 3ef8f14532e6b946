//! Line sinks: each record's value becomes one line of a file or of stdout.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rivulet_sdk::RecordIter;
use tokio::sync::mpsc;

use crate::error::JobError;
use crate::runtime::{Envelope, InputWatermarks, Message, NodeMetrics};

/// Where a line sink writes.
#[derive(Debug, Clone)]
pub enum SinkTarget {
    /// A file, created or truncated when the job starts.
    File(PathBuf),
    /// The process's stdout.
    Stdout,
}

/// A sink writing one line per record value.
pub struct LineSink {
    /// Sink id.
    pub id: String,
    /// Destination.
    pub target: SinkTarget,
    /// Input queue.
    pub rx: mpsc::Receiver<Envelope>,
    /// Input channels (to know when all have ended).
    pub inputs: InputWatermarks,
    /// Counters.
    pub metrics: Arc<NodeMetrics>,
}

impl LineSink {
    fn err(&self, message: String) -> JobError {
        JobError::Connector { node: "sink", id: self.id.clone(), message }
    }

    /// Write until every input has ended; then flush and sync.
    pub async fn run(mut self) -> Result<(), JobError> {
        let mut writer: Box<dyn Write + Send> = match &self.target {
            SinkTarget::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| self.err(format!("cannot create {}: {e}", dir.display())))?;
                }
                let f = std::fs::File::create(path).map_err(|e| self.err(format!("cannot create {}: {e}", path.display())))?;
                Box::new(std::io::BufWriter::with_capacity(1 << 16, f))
            }
            SinkTarget::Stdout => Box::new(std::io::LineWriter::new(std::io::stdout())),
        };
        while let Some(env) = self.rx.recv().await {
            match env.msg {
                Message::Batch(batch) => {
                    let mut n = 0;
                    for r in RecordIter::new(&batch) {
                        let r = r.map_err(|e| self.err(e.to_string()))?;
                        writer.write_all(r.value).and_then(|()| writer.write_all(b"\n")).map_err(|e| self.err(format!("write failed: {e}")))?;
                        n += 1;
                    }
                    self.metrics.records_in.fetch_add(n, Ordering::Relaxed);
                }
                Message::Watermark(wm) => {
                    self.inputs.watermark(env.channel, wm);
                    self.metrics.watermark.store(self.inputs.current(), Ordering::Relaxed);
                }
                Message::Idle => {
                    self.inputs.idle(env.channel);
                }
                Message::End => {
                    self.inputs.end(env.channel);
                    if self.inputs.all_ended() {
                        writer.flush().map_err(|e| self.err(format!("flush failed: {e}")))?;
                        drop(writer);
                        if let SinkTarget::File(path) = &self.target {
                            if let Ok(f) = std::fs::File::open(path) {
                                let _ = f.sync_all();
                            }
                        }
                        return Ok(());
                    }
                }
            }
        }
        Err(JobError::Internal(format!("sink '{}': input closed before end of input", self.id)))
    }
}
