//! Part files: the two-phase-commit spool the file, Kafka and object-storage sinks share.
//!
//! A sink writes into a hidden part file (`.part-<subtask>-<seq>.inprogress`); at a
//! checkpoint barrier it closes and syncs it and records it *pending* in its transaction;
//! the sink's committer makes it visible (renames it, produces it to Kafka, uploads it)
//! once the checkpoint is complete. On recovery, pending files of the restored
//! checkpoint are committed and every other hidden file discarded. A part closed between
//! barriers (rolled by size or time) belongs to the next barrier, whatever its id.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rivulet_checkpoint::{SinkEntry, SinkTransaction};
use rivulet_dataflow::{Barrier, Batch, NodeRole};
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::sink::Sink;

/// A part file awaiting commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PendingFile {
    /// Hidden name (starts with `.`) while pending.
    pub hidden: String,
    /// Name once committed.
    pub visible: String,
}

/// What a part-file sink's transaction holds: its directory, the pending files, the next
/// sequence number, and whatever its committer needs (`extra`, flattened).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartFilesTxn<T> {
    /// The spool (or output) directory.
    pub dir: String,
    /// Files to make visible.
    pub pending: Vec<PendingFile>,
    /// Next part-file sequence number.
    pub next_seq: u64,
    /// The committer's own data.
    #[serde(flatten)]
    pub extra: T,
}

impl<T: serde::de::DeserializeOwned> PartFilesTxn<T> {
    /// Decode a sink's transaction.
    pub fn decode(t: &SinkTransaction) -> Result<Self, rivulet_checkpoint::CheckpointError> {
        t.decode()
    }
}

/// The extra data of a sink whose committer needs none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NoExtra {}

/// Whatever extra data a transaction has (for reading the common fields only).
pub(crate) type AnyExtra = serde_json::Map<String, serde_json::Value>;

/// The part-file sequence number a restored subtask continues from (0 without an entry).
pub(crate) fn next_seq_of(entry: Option<&SinkEntry>) -> u64 {
    entry.and_then(|e| PartFilesTxn::<AnyExtra>::decode(&e.transaction).ok()).map_or(0, |t| t.next_seq)
}

/// Rolling: when a part file is closed between barriers.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Roll {
    /// After this many bytes.
    pub bytes: Option<u64>,
    /// After this long.
    pub interval: Option<Duration>,
}

/// One subtask's spool of part files.
pub(crate) struct PartFiles {
    dir: PathBuf,
    subtask: u32,
    ext: &'static str,
    roll: Roll,
    written: u64,
    opened: Instant,
    current: Option<(String, std::io::BufWriter<std::fs::File>)>,
    /// Closed files not known to be committed: (file, barrier id that closed it).
    pending: Vec<(PendingFile, u64)>,
    next_seq: u64,
}

/// Why a part file could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    /// The part file could not be created.
    #[error("cannot create a part file: {0}")]
    Create(std::io::Error),
    /// A record of the batch does not decode.
    #[error("{0}")]
    Decode(rivulet_sdk::codec::DecodeError),
    /// Writing failed.
    #[error("write failed: {0}")]
    Write(std::io::Error),
    /// Closing (flush, sync) failed.
    #[error("cannot close part file: {0}")]
    Close(std::io::Error),
}

/// "Closed between barriers: belongs to the next barrier, whatever its id."
const NEXT_BARRIER: u64 = u64::MAX;

impl PartFiles {
    /// The spool of subtask `subtask` in `dir` (created), visible names ending in `.ext`.
    pub fn open(dir: &Path, subtask: u32, ext: &'static str, roll: Roll, next_seq: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(PartFiles { dir: dir.to_path_buf(), subtask, ext, roll, written: 0, opened: Instant::now(), current: None, pending: Vec::new(), next_seq })
    }

    /// The writer of the in-progress file (opened on first use).
    fn writer(&mut self) -> std::io::Result<&mut std::io::BufWriter<std::fs::File>> {
        if self.current.is_none() {
            let hidden = format!(".part-{}-{:06}.inprogress", self.subtask, self.next_seq);
            let f = std::fs::File::create(self.dir.join(&hidden))?;
            self.current = Some((hidden, std::io::BufWriter::with_capacity(1 << 16, f)));
            self.written = 0;
            self.opened = Instant::now();
        }
        match self.current.as_mut() {
            Some((_, w)) => Ok(w),
            None => Err(std::io::Error::other("no part file")),
        }
    }

    /// Append each record's value as one line (JSON lines); rolls the file when due.
    fn write_value_lines(&mut self, batch: &Batch) -> Result<(), SpoolError> {
        let mut bytes = 0u64;
        let w = self.writer().map_err(SpoolError::Create)?;
        for r in batch.records() {
            let r = r.map_err(SpoolError::Decode)?;
            w.write_all(r.value).and_then(|()| w.write_all(b"\n")).map_err(SpoolError::Write)?;
            bytes += r.value.len() as u64 + 1;
        }
        self.wrote(bytes).map_err(SpoolError::Close)
    }

    /// Append the batch's records as they are encoded (key, value, timestamp), after
    /// checking they decode (a malformed batch fails now, not at commit); rolls the file
    /// when due.
    fn write_records(&mut self, batch: &Batch) -> Result<(), SpoolError> {
        if let Some(Err(e)) = batch.records().find(Result::is_err) {
            return Err(SpoolError::Decode(e));
        }
        let w = self.writer().map_err(SpoolError::Create)?;
        w.write_all(batch.as_slice()).map_err(SpoolError::Write)?;
        self.wrote(batch.as_slice().len() as u64).map_err(SpoolError::Close)
    }

    /// Count `bytes` written into the current file, and roll it if it is due.
    fn wrote(&mut self, bytes: u64) -> std::io::Result<()> {
        self.written += bytes;
        if self.current.is_some()
            && (self.roll.bytes.is_some_and(|b| self.written >= b) || self.roll.interval.is_some_and(|t| self.opened.elapsed() >= t))
        {
            self.close(NEXT_BARRIER)?;
        }
        Ok(())
    }

    /// Close the in-progress file (flushed and synced) and make it pending.
    fn close(&mut self, barrier_id: u64) -> std::io::Result<()> {
        if let Some((hidden, mut w)) = self.current.take() {
            w.flush()?;
            w.get_ref().sync_all()?;
            let visible = format!("part-{}-{:06}.{}", self.subtask, self.next_seq, self.ext);
            self.next_seq += 1;
            self.pending.push((PendingFile { hidden, visible }, barrier_id));
        }
        Ok(())
    }

    /// Barrier `id`: files rolled since the last barrier belong to it, files of completed
    /// snapshots (up to `committed`) are forgotten, the current file is closed.
    pub fn barrier(&mut self, id: u64, committed: Option<u64>) -> Result<(), SpoolError> {
        for (_, b) in self.pending.iter_mut().filter(|(_, b)| *b == NEXT_BARRIER) {
            *b = id;
        }
        self.forget_committed(committed);
        self.close(id).map_err(SpoolError::Close)
    }

    /// End of input: close the current file (it belongs to the final checkpoint).
    pub fn finish(&mut self, committed: Option<u64>) -> Result<(), SpoolError> {
        self.close(NEXT_BARRIER).map_err(SpoolError::Close)?;
        self.forget_committed(committed);
        Ok(())
    }

    fn forget_committed(&mut self, committed: Option<u64>) {
        if let Some(done) = committed {
            self.pending.retain(|(_, id)| *id > done);
        }
    }

    /// The transaction: pending files and where to continue, plus the committer's data.
    pub fn transaction<T: Serialize>(&self, extra: &T) -> Result<SinkTransaction, rivulet_checkpoint::CheckpointError> {
        SinkTransaction::encode(&PartFilesTxn {
            dir: self.dir.display().to_string(),
            pending: self.pending.iter().map(|(p, _)| p.clone()).collect(),
            next_seq: self.next_seq,
            extra,
        })
    }
}

/// How a part-file sink writes records into its spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpoolFormat {
    /// Each record's value as one line (the file sink's output; JSON lines to upload).
    ValueLines,
    /// Records as encoded, keys and timestamps kept (to produce to Kafka).
    Records,
}

/// A sink whose output is part files committed after the checkpoint: the file sink, and
/// the Kafka and object sinks' spools. `extra` is what its committer needs besides the
/// files (where to produce, where to upload).
pub(crate) struct PartFileSink<E> {
    id: String,
    parts: PartFiles,
    format: SpoolFormat,
    extra: E,
}

impl<E: Serialize + Send> PartFileSink<E> {
    /// Sink `id`'s subtask spool `parts`.
    pub fn new(id: &str, parts: PartFiles, format: SpoolFormat, extra: E) -> Self {
        PartFileSink { id: id.to_owned(), parts, format, extra }
    }

    fn err(&self, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::failed(NodeRole::Sink, &self.id, e.to_string())
    }
}

impl<E: Serialize + Send> Sink for PartFileSink<E> {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        match self.format {
            SpoolFormat::ValueLines => self.parts.write_value_lines(batch),
            SpoolFormat::Records => self.parts.write_records(batch),
        }
        .map_err(|e| self.err(e))
    }

    fn prepare_commit(&mut self, barrier: Barrier, committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        self.parts.barrier(barrier.id, committed).map_err(|e| self.err(e))?;
        self.parts.transaction(&self.extra).map_err(|e| self.err(e))
    }

    fn finish(&mut self, committed: Option<u64>) -> Result<SinkTransaction, ConnectorError> {
        self.parts.finish(committed).map_err(|e| self.err(e))?;
        self.parts.transaction(&self.extra).map_err(|e| self.err(e))
    }
}

/// Get a part-file directory ready for a run. Hidden in-progress files are discarded (no
/// complete checkpoint needs them: the restored one's were committed before). Visible
/// part files are the committed output: a fresh start (`restored: None`) removes them
/// all (a job owns its output directory); a restore keeps those the snapshot covers —
/// sequence numbers below its `next_seq` per subtask — and removes later ones, which a
/// newer checkpoint committed (restoring an older checkpoint rolls its output back too).
pub(crate) fn prepare_dir(dir: &Path, restored: Option<&[SinkEntry]>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let remove = if name.starts_with(".part-") {
            true
        } else if name.starts_with("part-") {
            match (restored, part_number(&name)) {
                (None, _) => true,
                (Some(entries), Some((sub, seq))) => seq >= next_seq_of(entries.iter().find(|e| e.subtask == sub)),
                (Some(_), None) => false,
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

/// (subtask, sequence number) of a visible part name `part-<subtask>-<seq>.<ext>`.
pub(crate) fn part_number(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix("part-")?;
    let stem = rest.split('.').next()?;
    let (sub, seq) = stem.split_once('-')?;
    Some((sub.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sub: u32, txn: SinkTransaction) -> SinkEntry {
        SinkEntry { id: "s".into(), subtask: sub, finished: false, transaction: txn }
    }

    #[test]
    fn parts_roll_close_at_barriers_and_forget_what_is_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = PartFiles::open(dir.path(), 0, "jsonl", Roll { bytes: Some(10), interval: None }, 0).expect("open");
        let mut b = rivulet_dataflow::BatchBuilder::new();
        b.push(None, b"0123456789ab", 0);
        p.write_value_lines(&b.take()).expect("write and roll");
        b.push(None, b"x", 0);
        p.write_value_lines(&b.take()).expect("write");
        p.barrier(5, None).expect("barrier");
        let t: PartFilesTxn<AnyExtra> = PartFilesTxn::decode(&p.transaction(&NoExtra {}).expect("txn")).expect("decode");
        assert_eq!(t.pending.iter().map(|f| f.visible.as_str()).collect::<Vec<_>>(), vec!["part-0-000000.jsonl", "part-0-000001.jsonl"]);
        assert_eq!(t.next_seq, 2);
        p.barrier(6, Some(5)).expect("barrier");
        let t: PartFilesTxn<AnyExtra> = PartFilesTxn::decode(&p.transaction(&NoExtra {}).expect("txn")).expect("decode");
        assert!(t.pending.is_empty(), "checkpoint 5 committed both, and nothing was written since");
    }

    #[test]
    fn preparing_keeps_what_the_snapshot_covers() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["part-0-000000.jsonl", "part-0-000001.jsonl", "part-1-000000.jsonl", ".part-0-000002.inprogress", "other.txt"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let p = PartFiles::open(dir.path(), 0, "jsonl", Roll::default(), 1).expect("open");
        let restored = [entry(0, p.transaction(&NoExtra {}).expect("txn"))];
        prepare_dir(dir.path(), Some(&restored)).expect("prepare");
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("e").file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, vec!["other.txt", "part-0-000000.jsonl"], "subtask 1 had no entry: its parts came after the snapshot");
        prepare_dir(dir.path(), None).expect("fresh");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        assert_eq!(part_number("part-3-000042.parquet"), Some((3, 42)));
    }
}
