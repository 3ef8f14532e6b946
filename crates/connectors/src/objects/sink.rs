//! The object sink: part files spooled locally (see `part_files`) and uploaded —
//! converted to Parquet if asked — when the checkpoint covering them completes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rivulet_checkpoint::{CheckpointError, CheckpointStorage, Committer, SinkEntry, SinkTransaction};
use rivulet_dataflow::{NodeRole, blocking};
use rivulet_job::{ObjectFormat, ObjectSinkSpec};
use serde::{Deserialize, Serialize};

use super::parquet::jsonl_to_parquet;
use crate::BoxFuture;
use crate::context::ConnectorContext;
use crate::error::ConnectorError;
use crate::part_files::{PartFileSink, PartFiles, PartFilesTxn, Roll, SpoolFormat, next_seq_of, part_number, prepare_dir};
use crate::sink::{Sink, SinkConnector};

/// Where an object sink's part files are committed (kept in its transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectCommitTarget {
    /// Location URL.
    url: String,
    /// Format.
    format: ObjectFormat,
}

/// The committer's part of the sink's transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Target {
    objects: ObjectCommitTarget,
}

/// `type: objects` sinks.
pub(crate) struct ObjectSinkConnector {
    id: String,
    target: ObjectCommitTarget,
    spool: PathBuf,
    roll: Roll,
}

impl ObjectSinkConnector {
    pub(crate) fn new(spec: &ObjectSinkSpec, cx: &ConnectorContext) -> Self {
        ObjectSinkConnector {
            id: spec.id.clone(),
            target: ObjectCommitTarget { url: cx.location(&spec.url), format: spec.format },
            spool: cx.spool_dir("object-spool", &spec.id, spec.spool_dir.as_deref()),
            roll: Roll { bytes: Some(spec.roll_size_bytes.unwrap_or(64 << 20)), interval: spec.roll_interval_ms.map(Duration::from_millis) },
        }
    }

    fn err(&self, message: String) -> ConnectorError {
        ConnectorError::failed(NodeRole::Sink, &self.id, message)
    }

    /// A fresh run removes every part object of the location; a restore removes those a
    /// later checkpoint committed (sequence numbers at or past the restored ones).
    async fn prepare_location(&self, restored: Option<&[SinkEntry]>) -> Result<(), CheckpointError> {
        let store = CheckpointStorage::open(&self.target.url)?;
        for (name, _) in store.list("").await? {
            let Some((sub, seq)) = part_number(&name) else { continue };
            let keep_below = restored.map(|entries| next_seq_of(entries.iter().find(|e| e.subtask == sub)));
            if keep_below.is_none_or(|keep| seq >= keep) {
                store.delete(&name).await?;
            }
        }
        Ok(())
    }
}

impl SinkConnector for ObjectSinkConnector {
    fn prepare<'a>(&'a self, restored: Option<&'a [SinkEntry]>) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async move {
            self.prepare_location(restored).await.map_err(|e| self.err(format!("cannot prepare {}: {e}", self.target.url)))?;
            blocking(|| prepare_dir(&self.spool, restored)).map_err(|e| self.err(format!("cannot prepare {}: {e}", self.spool.display())))
        })
    }

    fn committer(&self) -> Option<Arc<dyn Committer>> {
        Some(Arc::new(ObjectCommitter))
    }

    fn open(&self, subtask: u32, restored: Option<&SinkEntry>) -> Result<Box<dyn Sink>, ConnectorError> {
        let parts = PartFiles::open(&self.spool, subtask, "jsonl", self.roll, next_seq_of(restored))
            .map_err(|e| self.err(format!("cannot create {}: {e}", self.spool.display())))?;
        Ok(Box::new(PartFileSink::new(&self.id, parts, SpoolFormat::ValueLines, Target { objects: self.target.clone() })))
    }
}

/// The committer of a transaction with an object-storage target: the object sink's.
pub(crate) fn committer_for(transaction: &SinkTransaction) -> Option<Arc<dyn Committer>> {
    PartFilesTxn::<Target>::decode(transaction).ok().map(|_| Arc::new(ObjectCommitter) as Arc<dyn Committer>)
}

/// Uploads an object sink's pending spool files (converted if Parquet), then removes
/// them: an upload is one PUT, and the same part always becomes the same object, so a
/// repeated commit rewrites identical bytes.
struct ObjectCommitter;

impl Committer for ObjectCommitter {
    fn commit(&self, transaction: &SinkTransaction) -> Result<u64, CheckpointError> {
        let t: PartFilesTxn<Target> = PartFilesTxn::decode(transaction)?;
        let dir = Path::new(&t.dir);
        let todo: Vec<_> = t.pending.iter().filter(|p| dir.join(&p.hidden).exists()).collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let store = CheckpointStorage::open(&t.extra.objects.url)?;
        let mut n = 0;
        for p in todo {
            let hidden = dir.join(&p.hidden);
            let local = |e: String| CheckpointError::Local(format!("{}: {e}", hidden.display()));
            let raw = std::fs::read(&hidden).map_err(|e| local(e.to_string()))?;
            let (name, body) = match t.extra.objects.format {
                ObjectFormat::Jsonl => (p.visible.clone(), raw),
                ObjectFormat::Parquet => (p.visible.replace(".jsonl", ".parquet"), jsonl_to_parquet(&raw).map_err(|e| local(e.to_string()))?),
            };
            block_on(store.put(&name, Bytes::from(body)))?;
            std::fs::remove_file(&hidden).map_err(|e| local(e.to_string()))?;
            n += 1;
        }
        Ok(n)
    }
    // A missing spool file was committed (it is removed after its upload): nothing to verify.
}

/// Run an upload from the committer (called on the coordinator's task, or outside any runtime).
fn block_on<F: std::future::Future<Output = Result<T, CheckpointError>>, T>(f: F) -> Result<T, CheckpointError> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => blocking(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CheckpointError::Local(format!("cannot start a runtime for the upload: {e}")))?
            .block_on(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_dataflow::{Barrier, BatchBuilder, SnapshotKind};

    fn sink(dir: &Path, format: ObjectFormat) -> ObjectSinkConnector {
        let cx = ConnectorContext { job: "j".into(), base_dir: dir.into(), data_dir: dir.join("data"), max_record_bytes: 1 << 20 };
        let spec = ObjectSinkSpec {
            id: "archive".into(),
            inputs: vec![],
            url: dir.join("bucket").display().to_string(),
            format,
            roll_size_bytes: None,
            roll_interval_ms: None,
            spool_dir: None,
        };
        ObjectSinkConnector::new(&spec, &cx)
    }

    fn objects(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("bucket"))
            .map_or_else(|_| Vec::new(), |rd| rd.map(|e| e.expect("e").file_name().to_string_lossy().into_owned()).collect());
        v.sort();
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn parts_are_uploaded_whole_on_commit_as_json_lines_or_parquet() {
        for (format, name) in [(ObjectFormat::Jsonl, "part-0-000000.jsonl"), (ObjectFormat::Parquet, "part-0-000000.parquet")] {
            let dir = tempfile::tempdir().expect("tempdir");
            let conn = sink(dir.path(), format);
            conn.prepare(None).await.expect("prepare");
            let mut s = conn.open(0, None).expect("open");
            let mut b = BatchBuilder::new();
            b.push(Some(b"a"), br#"{"key":"a","count":1}"#, 0);
            b.push(Some(b"b"), br#"{"key":"b","count":2}"#, 0);
            s.write(&b.take()).expect("write");
            let txn = s.prepare_commit(Barrier { id: 1, kind: SnapshotKind::Checkpoint, stop: false, format: rivulet_dataflow::SnapshotFormat::Canonical }, None).expect("stage");
            assert!(objects(dir.path()).is_empty(), "{format:?}: nothing is uploaded before the commit");
            let committer = conn.committer().expect("transactional");
            assert_eq!(committer.commit(&txn).expect("commit"), 1);
            assert_eq!(committer.commit(&txn).expect("again"), 0, "the spool file is gone once uploaded");
            assert_eq!(objects(dir.path()), vec![name.to_owned()]);
            let body = std::fs::read(dir.path().join("bucket").join(name)).expect("object");
            match format {
                ObjectFormat::Jsonl => assert_eq!(body, b"{\"key\":\"a\",\"count\":1}\n{\"key\":\"b\",\"count\":2}\n"),
                ObjectFormat::Parquet => assert_eq!(&body[..4], b"PAR1"),
            }
            // A fresh run owns the location: earlier parts go.
            conn.prepare(None).await.expect("prepare again");
            assert!(objects(dir.path()).is_empty());
        }
    }
}
