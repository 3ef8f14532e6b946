//! Line sinks: each record's value becomes one line, in part files of a directory or on
//! stdout.
//!
//! The file sink is exactly-once by two-phase commit. It writes into a hidden part file
//! (`.part-<subtask>-<seq>.inprogress`); at a checkpoint barrier it closes and syncs that
//! file and reports it *pending*; the coordinator renames it to its visible name
//! (`part-<subtask>-<seq>.jsonl`) once the checkpoint is complete. On recovery, pending
//! files of the restored checkpoint are committed and every other hidden file discarded.
//! The committed output is the set of visible files. Without checkpointing, files are
//! committed when the input ends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rivulet_sdk::RecordIter;

use crate::checkpoint::manifest::{PendingFile, SinkEntry};
use crate::checkpoint::{Barrier, SnapshotPart, TaskCheckpointing, TaskReport};
use crate::error::JobError;
use crate::runtime::{GateEvent, InputGate, InputWatermarks, Message, NodeMetrics};

/// Where a line sink writes.
#[derive(Debug, Clone)]
pub enum SinkTarget {
    /// A directory of part files.
    Dir(PathBuf),
    /// The process's stdout.
    Stdout,
    /// Straight to Kafka, at-least-once: produced as records come, flushed (every
    /// record acknowledged) at each barrier before the sink acknowledges it.
    KafkaDirect(super::kafka_sink::KafkaDirectTarget),
    /// Upserts into a PostgreSQL table, flushed at each barrier.
    Postgres(super::PostgresTarget),
}

/// A sink writing one line per record value.
pub struct LineSink {
    /// Sink id.
    pub id: String,
    /// Subtask index.
    pub subtask: u32,
    /// Destination.
    pub target: SinkTarget,
    /// Input, with barrier alignment.
    pub input: InputGate,
    /// Input channels (to know when all have ended).
    pub inputs: InputWatermarks,
    /// Counters.
    pub metrics: Arc<NodeMetrics>,
    /// Checkpointing, if the job checkpoints.
    pub checkpointing: Option<TaskCheckpointing>,
    /// Next part-file number (restored from a checkpoint).
    pub next_seq: u64,
    /// The last barrier processed.
    pub last_barrier: u64,
    /// A Kafka sink: the part files are a spool committed to Kafka.
    pub kafka: Option<super::KafkaCommitTarget>,
    /// An object-storage sink: the part files are a spool uploaded on commit.
    pub objects: Option<super::ObjectCommitTarget>,
    /// Roll to a new part file after this many bytes.
    pub roll_bytes: Option<u64>,
    /// Roll to a new part file after this long.
    pub roll_interval: Option<std::time::Duration>,
}

/// Get a sink directory ready for a run. Hidden in-progress files are discarded (no
/// complete checkpoint needs them: the restored one's were committed before). Visible
/// part files are the committed output: a fresh start (`keep_below: None`) removes them
/// all (a job owns its output directory); a restore keeps those the snapshot covers —
/// sequence numbers below its `next_seq` per subtask — and removes later ones, which a
/// newer checkpoint committed (restoring an older checkpoint rolls its output back too).
pub fn prepare_sink_dir(dir: &Path, keep_below: Option<&dyn Fn(u32) -> u64>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let remove = if name.starts_with(".part-") {
            true
        } else if let Some(rest) = name.strip_prefix("part-") {
            match keep_below {
                None => true,
                Some(keep) => {
                    let mut it = rest.trim_end_matches(".jsonl").split('-');
                    match (it.next().and_then(|s| s.parse::<u32>().ok()), it.next().and_then(|s| s.parse::<u64>().ok())) {
                        (Some(sub), Some(seq)) => seq >= keep(sub),
                        _ => false,
                    }
                }
            }
        } else {
            false
        };
        if remove {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

struct PartWriter {
    dir: PathBuf,
    subtask: u32,
    /// Bytes in the current file and when it was opened (rolling).
    written: u64,
    opened: std::time::Instant,
    current: Option<(String, std::io::BufWriter<std::fs::File>)>,
    /// Closed files not known to be committed: (file, barrier id that closed it).
    pending: Vec<(PendingFile, u64)>,
    next_seq: u64,
}

impl PartWriter {
    fn writer(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::fs::File>> {
        if self.current.is_none() {
            let hidden = format!(".part-{}-{:06}.inprogress", self.subtask, self.next_seq);
            let f = std::fs::File::create(self.dir.join(&hidden))?;
            self.current = Some((hidden, std::io::BufWriter::with_capacity(1 << 16, f)));
            self.written = 0;
            self.opened = std::time::Instant::now();
        }
        match self.current.as_mut() {
            Some((_, w)) => Ok(w),
            None => Err(std::io::Error::other("no part file")),
        }
    }

    /// Close the in-progress file (flushed and synced) and make it pending.
    fn close(&mut self, barrier_id: u64) -> std::io::Result<()> {
        if let Some((hidden, mut w)) = self.current.take() {
            w.flush()?;
            w.get_ref().sync_all()?;
            let visible = format!("part-{}-{:06}.jsonl", self.subtask, self.next_seq);
            self.next_seq += 1;
            self.pending.push((PendingFile { hidden, visible }, barrier_id));
        }
        Ok(())
    }

    fn entry(&self, id: &str, finished: bool, kafka: Option<&super::KafkaCommitTarget>, objects: Option<&super::ObjectCommitTarget>) -> SinkEntry {
        SinkEntry {
            id: id.to_owned(),
            subtask: self.subtask,
            dir: self.dir.display().to_string(),
            pending: self.pending.iter().map(|(p, _)| p.clone()).collect(),
            next_seq: self.next_seq,
            finished,
            kafka: kafka.cloned(),
            objects: objects.cloned(),
        }
    }
}

impl LineSink {
    fn err(&self, message: String) -> JobError {
        JobError::Connector { node: "sink", id: self.id.clone(), message }
    }

    /// Write until every input has ended (or a stop barrier); commit as described above.
    pub async fn run(mut self) -> Result<(), JobError> {
        let mut parts = match &self.target {
            SinkTarget::Dir(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| self.err(format!("cannot create {}: {e}", dir.display())))?;
                Some(PartWriter {
                    dir: dir.clone(),
                    subtask: self.subtask,
                    written: 0,
                    opened: std::time::Instant::now(),
                    current: None,
                    pending: Vec::new(),
                    next_seq: self.next_seq,
                })
            }
            SinkTarget::Stdout | SinkTarget::KafkaDirect(_) | SinkTarget::Postgres(_) => None,
        };
        let mut stdout: Box<dyn Write + Send> = match &self.target {
            SinkTarget::KafkaDirect(t) => Box::new(super::kafka_sink::KafkaLineWriter::new(t).map_err(|e| self.err(e.to_string()))?),
            SinkTarget::Postgres(t) => {
                let t = t.clone();
                Box::new(crate::runtime::blocking(|| super::postgres::PostgresLineWriter::new(&t)).map_err(|e| self.err(e))?)
            }
            _ => Box::new(std::io::LineWriter::new(std::io::stdout())),
        };
        while let Some(ev) = self.input.next().await {
            let env = match ev {
                GateEvent::Aligned(b) => {
                    if parts.is_none() {
                        // Everything before the barrier is out (acknowledged, for Kafka).
                        crate::runtime::blocking(|| stdout.flush()).map_err(|e| self.err(format!("flush failed: {e}")))?;
                    }
                    self.on_barrier(b, parts.as_mut())?;
                    if b.stop {
                        return Ok(());
                    }
                    continue;
                }
                GateEvent::Message(env) => env,
            };
            match env.msg {
                Message::Batch(batch) => {
                    let mut n = 0;
                    let mut bytes = 0u64;
                    let w: &mut dyn Write = match parts.as_mut() {
                        Some(p) => p.writer().map_err(|e| self.err(format!("cannot create a part file: {e}")))?,
                        None => &mut stdout,
                    };
                    for r in RecordIter::new(&batch) {
                        let r = r.map_err(|e| JobError::Connector { node: "sink", id: self.id.clone(), message: e.to_string() })?;
                        w.write_all(r.value).and_then(|()| w.write_all(b"\n")).map_err(|e| JobError::Connector {
                            node: "sink",
                            id: self.id.clone(),
                            message: format!("write failed: {e}"),
                        })?;
                        n += 1;
                        bytes += r.value.len() as u64 + 1;
                    }
                    self.metrics.records_in.fetch_add(n, Ordering::Relaxed);
                    if let Some(p) = parts.as_mut() {
                        p.written += bytes;
                    }
                    // Rolling: a part closed between barriers belongs to the next checkpoint.
                    if let Some(p) = parts.as_mut()
                        && p.current.is_some()
                        && (self.roll_bytes.is_some_and(|b| p.written >= b) || self.roll_interval.is_some_and(|t| p.opened.elapsed() >= t))
                    {
                        // Its barrier is the next one, whatever its id (it is set there).
                        crate::runtime::blocking(|| p.close(u64::MAX)).map_err(|e| self.err(format!("cannot close part file: {e}")))?;
                    }
                }
                Message::Watermark(wm) => {
                    self.inputs.watermark(env.channel, wm);
                    self.metrics.watermark.store(self.inputs.current(), Ordering::Relaxed);
                }
                Message::Idle => {
                    self.inputs.idle(env.channel);
                }
                Message::Barrier(_) => {}
                Message::End => {
                    self.inputs.end(env.channel);
                    if self.inputs.all_ended() {
                        stdout.flush().map_err(|e| self.err(format!("flush failed: {e}")))?;
                        return self.finish(parts);
                    }
                }
            }
        }
        Err(JobError::Internal(format!("sink '{}': input closed before end of input", self.id)))
    }

    fn on_barrier(&mut self, b: Barrier, parts: Option<&mut PartWriter>) -> Result<(), JobError> {
        self.last_barrier = b.id;
        let Some(ctx) = &self.checkpointing else {
            return Ok(());
        };
        let entry = match parts {
            Some(p) => {
                // Files rolled since the last barrier belong to this one.
                for (_, id) in p.pending.iter_mut().filter(|(_, id)| *id == u64::MAX) {
                    *id = b.id;
                }
                // Files closed at a barrier whose (or a later) checkpoint completed are committed.
                if let Some(done) = ctx.ledger.max_complete() {
                    p.pending.retain(|(_, id)| *id > done);
                }
                crate::runtime::blocking(|| p.close(b.id)).map_err(|e| self.err(format!("cannot close part file: {e}")))?;
                p.entry(&self.id, false, self.kafka.as_ref(), self.objects.as_ref())
            }
            None => SinkEntry { id: self.id.clone(), subtask: self.subtask, dir: String::new(), pending: Vec::new(), next_seq: 0, finished: false, kafka: None, objects: None },
        };
        let _ = ctx.reports.send(TaskReport::Ack { id: b.id, part: SnapshotPart::Sink(entry) });
        Ok(())
    }

    fn finish(&mut self, parts: Option<PartWriter>) -> Result<(), JobError> {
        let Some(mut p) = parts else {
            if let Some(ctx) = &self.checkpointing {
                let entry =
                    SinkEntry { id: self.id.clone(), subtask: self.subtask, dir: String::new(), pending: Vec::new(), next_seq: 0, finished: true, kafka: None, objects: None };
                let _ = ctx.reports.send(TaskReport::Finished { part: SnapshotPart::Sink(entry), after: self.last_barrier });
            }
            return Ok(());
        };
        p.close(u64::MAX).map_err(|e| self.err(format!("cannot close part file: {e}")))?;
        match &self.checkpointing {
            // The final checkpoint commits (so a crash now cannot duplicate output).
            Some(ctx) => {
                if let Some(done) = ctx.ledger.max_complete() {
                    p.pending.retain(|(_, id)| *id > done);
                }
                let _ = ctx.reports.send(TaskReport::Finished { part: SnapshotPart::Sink(p.entry(&self.id, true, self.kafka.as_ref(), self.objects.as_ref())), after: self.last_barrier });
            }
            None => {
                let entry = p.entry(&self.id, true, self.kafka.as_ref(), self.objects.as_ref());
                crate::checkpoint::commit_pending(&[entry]).map_err(|e| self.err(e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// Feed `buf` into the line being assembled in `line`, calling `each` on every complete
/// line (the sink writes one value per line; writers that take records split them
/// again here).
pub(super) fn split_lines(line: &mut Vec<u8>, buf: &[u8], mut each: impl FnMut(&mut Vec<u8>) -> std::io::Result<()>) -> std::io::Result<()> {
    for chunk in buf.split_inclusive(|b| *b == b'\n') {
        match chunk.strip_suffix(b"\n") {
            Some(body) => {
                line.extend_from_slice(body);
                each(line)?;
                line.clear();
            }
            None => line.extend_from_slice(chunk),
        }
    }
    Ok(())
}
