//! The file sink: each record's value as one line in part files of a directory,
//! exactly-once by two-phase commit (see `part_files`): its commit step renames a
//! pending part file to its visible name; the committed output is the set of visible
//! files. Without checkpointing, files are committed when the input ends.

use std::path::PathBuf;
use std::sync::Arc;

use rivulet_checkpoint::{CheckpointError, Committer, SinkEntry, SinkTransaction};
use rivulet_dataflow::{NodeRole, blocking};
use rivulet_job::FileSinkSpec;

use crate::BoxFuture;
use crate::context::ConnectorContext;
use crate::error::ConnectorError;
use crate::part_files::{NoExtra, PartFileSink, PartFiles, PartFilesTxn, Roll, SpoolFormat, next_seq_of, prepare_dir};
use crate::sink::{Sink, SinkConnector};

/// `type: file` sinks.
pub(crate) struct FileSinkConnector {
    id: String,
    dir: PathBuf,
}

impl FileSinkConnector {
    pub(crate) fn new(spec: &FileSinkSpec, cx: &ConnectorContext) -> Self {
        FileSinkConnector { id: spec.id.clone(), dir: cx.resolve(&spec.path) }
    }

    fn err(&self, message: String) -> ConnectorError {
        ConnectorError::failed(NodeRole::Sink, &self.id, message)
    }
}

impl SinkConnector for FileSinkConnector {
    fn prepare<'a>(&'a self, restored: Option<&'a [SinkEntry]>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(
            async move { blocking(|| prepare_dir(&self.dir, restored)).map_err(|e| self.err(format!("cannot prepare {}: {e}", self.dir.display()))) },
        )
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(FileCommitter))
    }

    fn open(&self, subtask: u32, restored: Option<&SinkEntry>) -> Result<Box<dyn Sink>, ConnectorError> {
        let parts = PartFiles::open(&self.dir, subtask, "jsonl", Roll::default(), next_seq_of(restored))
            .map_err(|e| self.err(format!("cannot create {}: {e}", self.dir.display())))?;
        Ok(Box::new(PartFileSink::new(&self.id, parts, SpoolFormat::ValueLines, NoExtra {})))
    }
}

/// The committer of a part-file transaction without other commit data: the file sink's.
pub(crate) fn committer_for(transaction: &SinkTransaction) -> Option<Arc<dyn Committer>> {
    PartFilesTxn::<NoExtra>::decode(transaction).ok().map(|_| Arc::new(FileCommitter) as Arc<dyn Committer>)
}

/// Commits a file sink's part files: renames each pending file to its visible name
/// (idempotent: a file already renamed is fine).
struct FileCommitter;

impl Committer for FileCommitter {
    fn commit(&self, transaction: &SinkTransaction) -> Result<u64, CheckpointError> {
        let t: PartFilesTxn<NoExtra> = PartFilesTxn::decode(transaction)?;
        let dir = std::path::Path::new(&t.dir);
        let mut n = 0;
        for p in &t.pending {
            let (h, v) = (dir.join(&p.hidden), dir.join(&p.visible));
            if h.exists() {
                std::fs::rename(&h, &v).map_err(|e| CheckpointError::Local(format!("commit {} → {}: {e}", h.display(), v.display())))?;
                n += 1;
            } else if !v.exists() {
                return Err(CheckpointError::Corrupt { path: h.display().to_string(), reason: "pending sink file vanished before commit".into() });
            }
        }
        Ok(n)
    }

    fn verify(&self, transaction: &SinkTransaction) -> Result<(), CheckpointError> {
        let t: PartFilesTxn<NoExtra> = PartFilesTxn::decode(transaction)?;
        let dir = std::path::Path::new(&t.dir);
        for p in &t.pending {
            if !dir.join(&p.hidden).exists() && !dir.join(&p.visible).exists() {
                return Err(CheckpointError::Corrupt {
                    path: dir.join(&p.hidden).display().to_string(),
                    reason: "a pending sink file of this checkpoint is missing".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_dataflow::{Barrier, Batch, BatchBuilder, SnapshotKind};

    fn batch(values: &[&str]) -> Batch {
        let mut b = BatchBuilder::new();
        for v in values {
            b.push(None, v.as_bytes(), 0);
        }
        b.take()
    }

    fn visible(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn part_files_become_visible_only_when_committed_and_commits_repeat_harmlessly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cx = ConnectorContext { job: "j".into(), base_dir: dir.path().into(), data_dir: dir.path().into(), max_record_bytes: 1 << 20 };
        let conn = FileSinkConnector::new(&FileSinkSpec { id: "out".into(), inputs: vec![], path: "out".into() }, &cx);
        let mut sink = conn.open(0, None).expect("open");
        sink.write(&batch(&["a", "b"])).expect("write");
        let txn = sink.prepare_commit(Barrier { id: 1, kind: SnapshotKind::Checkpoint, stop: false, format: rivulet_dataflow::SnapshotFormat::Canonical }, None).expect("stage");
        let out = dir.path().join("out");
        assert!(visible(&out).is_empty(), "nothing is visible before the commit");
        let committer = conn.committer().expect("a transactional sink");
        committer.verify(&txn).expect("its files are there");
        assert_eq!(committer.commit(&txn).expect("commit"), 1);
        assert_eq!(committer.commit(&txn).expect("again"), 0, "a repeated commit changes nothing");
        assert_eq!(visible(&out), vec!["part-0-000000.jsonl"]);
        assert_eq!(std::fs::read_to_string(out.join("part-0-000000.jsonl")).expect("read"), "a\nb\n");
        sink.write(&batch(&["c"])).expect("write");
        let last = sink.finish(Some(1)).expect("finish");
        std::fs::remove_file(out.join(".part-0-000001.inprogress")).expect("lose the staged file");
        assert!(matches!(committer.verify(&last), Err(CheckpointError::Corrupt { .. })), "a missing pending file makes the snapshot unusable");
    }
}
