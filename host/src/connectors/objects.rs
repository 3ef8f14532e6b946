//! Files on object storage — any `object_store` location: a local directory,
//! `file://…`, or `s3://bucket/prefix` (credentials and endpoint from the standard AWS
//! variables) — in JSON lines or Parquet.
//!
//! **Sink**: the file sink's two-phase commit with an upload as the commit step. Values
//! are spooled into local part files (rolled by size and by time, and closed at every
//! barrier); when the checkpoint covering a part file completes, the coordinator uploads
//! it as `part-<subtask>-<seq>.jsonl` (or converts it to `.parquet`: schema inferred from
//! the JSON values) and removes the spool file. An upload is a single PUT — objects
//! appear whole — and the same part file always becomes the same object, so a commit
//! repeated after a crash overwrites an object with identical bytes: exactly-once.
//!
//! **Source** (bounded): the objects under the location, in name order, read whole;
//! Parquet rows become JSON objects. Its position in checkpoints is the object's name
//! and the records emitted from it.

use std::io::BufRead as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::SourceOutput;
use crate::checkpoint::manifest::{PendingFile, SourcePosition};
use crate::checkpoint::{CheckpointError, CheckpointStorage};
use crate::error::JobError;
use crate::job::ObjectFormat;

/// Where an object sink's part files are committed (kept in the manifest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectCommitTarget {
    /// Location URL.
    pub url: String,
    /// Format.
    pub format: ObjectFormat,
}

/// Convert JSON lines to a Parquet file (schema inferred from all the lines).
pub fn jsonl_to_parquet(jsonl: &[u8]) -> Result<Vec<u8>, String> {
    let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(std::io::Cursor::new(jsonl), None).map_err(|e| format!("infer schema: {e}"))?;
    let schema = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(schema.clone()).build(std::io::Cursor::new(jsonl)).map_err(|e| format!("read JSON: {e}"))?;
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).map_err(|e| format!("Parquet writer: {e}"))?;
    for batch in reader {
        let batch = batch.map_err(|e| format!("read JSON: {e}"))?;
        writer.write(&batch).map_err(|e| format!("write Parquet: {e}"))?;
    }
    writer.close().map_err(|e| format!("finish Parquet: {e}"))?;
    Ok(out)
}

/// Rows of a Parquet file as JSON lines.
pub fn parquet_to_jsonl(bytes: Bytes) -> Result<Vec<Vec<u8>>, String> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| format!("not a Parquet file: {e}"))?;
    let mut lines = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("read Parquet: {e}"))?;
        let mut buf = Vec::new();
        {
            let mut w = arrow_json::LineDelimitedWriter::new(&mut buf);
            w.write(&batch).map_err(|e| format!("to JSON: {e}"))?;
            w.finish().map_err(|e| format!("to JSON: {e}"))?;
        }
        lines.extend(buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    Ok(lines)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => crate::runtime::blocking(|| h.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread().enable_all().build().map(|rt| rt.block_on(f)).unwrap_or_else(|e| panic!("runtime: {e}")),
    }
}

/// Commit pending spool files: upload each (converted if Parquet), then remove it.
pub fn commit(t: &ObjectCommitTarget, dir: &Path, pending: &[PendingFile]) -> Result<u64, CheckpointError> {
    let todo: Vec<&PendingFile> = pending.iter().filter(|p| dir.join(&p.hidden).exists()).collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let store = CheckpointStorage::open(&t.url)?;
    let mut n = 0;
    for p in todo {
        let hidden = dir.join(&p.hidden);
        let raw = std::fs::read(&hidden).map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
        let (name, body) = match t.format {
            ObjectFormat::Jsonl => (p.visible.clone(), raw),
            ObjectFormat::Parquet => {
                let body = jsonl_to_parquet(&raw).map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
                (p.visible.replace(".jsonl", ".parquet"), body)
            }
        };
        block_on(store.put(&name, Bytes::from(body)))?;
        std::fs::remove_file(&hidden).map_err(|e| CheckpointError::Local(format!("{}: {e}", hidden.display())))?;
        n += 1;
    }
    Ok(n)
}

/// Get a sink's location ready: a fresh run removes every part object; a restore removes
/// those a later checkpoint committed (sequence numbers at or past the restored ones).
pub async fn prepare(url: &str, keep_below: Option<&(dyn Fn(u32) -> u64 + Sync)>) -> Result<(), CheckpointError> {
    let store = CheckpointStorage::open(url)?;
    for (name, _) in store.list("").await? {
        let Some(rest) = name.strip_prefix("part-") else { continue };
        let stem = rest.split('.').next().unwrap_or_default();
        let mut it = stem.split('-');
        let (Some(sub), Some(seq)) = (it.next().and_then(|s| s.parse::<u32>().ok()), it.next().and_then(|s| s.parse::<u64>().ok())) else {
            continue;
        };
        if keep_below.is_none_or(|keep| seq >= keep(sub)) {
            store.delete(&name).await?;
        }
    }
    Ok(())
}

/// The object source: every object under `url` in name order.
pub struct ObjectSource {
    /// Source id.
    pub id: String,
    /// Location.
    pub url: String,
    /// Format.
    pub format: ObjectFormat,
    /// JSON field with the event time (ms).
    pub time_field: Option<String>,
    /// Where to resume.
    pub start: Option<SourcePosition>,
}

impl ObjectSource {
    fn err(&self, message: String) -> JobError {
        JobError::Connector { node: "source", id: self.id.clone(), message }
    }

    /// Read everything, then finish.
    pub async fn run(self, mut out: SourceOutput) -> Result<(), JobError> {
        let (mut skip_before, mut skip_records) = (None::<String>, 0u64);
        match &self.start {
            Some(SourcePosition::Finished) => return out.finish_restored().await,
            Some(SourcePosition::Objects { object, records, max_ts }) => {
                skip_before = Some(object.clone());
                skip_records = *records;
                out.restore_max_ts(*max_ts);
            }
            Some(other) => return Err(JobError::Internal(format!("cannot resume an object source from {other:?}"))),
            None => {}
        }
        let store = CheckpointStorage::open(&self.url).map_err(|e| self.err(e.to_string()))?;
        let mut names: Vec<String> = store.list("").await.map_err(|e| self.err(e.to_string()))?.into_iter().map(|(n, _)| n).collect();
        names.retain(|n| !n.rsplit('/').next().unwrap_or_default().starts_with('.'));
        names.sort();
        for name in names {
            if skip_before.as_ref().is_some_and(|s| &name < s) {
                continue;
            }
            let skip = if skip_before.as_ref() == Some(&name) { skip_records } else { 0 };
            let bytes = store.get(&name).await.map_err(|e| self.err(e.to_string()))?;
            let lines: Vec<Vec<u8>> = match self.format {
                ObjectFormat::Jsonl => bytes.lines().map(|l| l.map(String::into_bytes)).collect::<Result<_, _>>().map_err(|e| self.err(format!("{name}: {e}")))?,
                ObjectFormat::Parquet => parquet_to_jsonl(bytes).map_err(|e| self.err(format!("{name}: {e}")))?,
            };
            let mut emitted = 0u64;
            for line in lines.iter().filter(|l| !l.is_empty()) {
                if let Some(b) = out.poll_barrier() {
                    out.barrier(b, SourcePosition::Objects { object: name.clone(), records: emitted, max_ts: out.max_ts() }).await?;
                    if b.stop {
                        return Ok(());
                    }
                }
                emitted += 1;
                if emitted <= skip {
                    continue;
                }
                let ts = self
                    .time_field
                    .as_deref()
                    .and_then(|f| serde_json::from_slice::<serde_json::Value>(line).ok().and_then(|v| v.get(f).and_then(serde_json::Value::as_i64)))
                    .unwrap_or(0);
                out.push(None, line, ts).await?;
            }
        }
        out.finish().await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parquet_round_trip_keeps_rows() {
        let jsonl = b"{\"key\":\"a\",\"count\":1}\n{\"key\":\"b\",\"count\":2}\n";
        let pq = super::jsonl_to_parquet(jsonl).expect("to parquet");
        assert_eq!(&pq[..4], b"PAR1");
        let back = super::parquet_to_jsonl(bytes::Bytes::from(pq)).expect("from parquet");
        let rows: Vec<serde_json::Value> = back.iter().map(|l| serde_json::from_slice(l).expect("json")).collect();
        assert_eq!(rows, vec![serde_json::json!({"key": "a", "count": 1}), serde_json::json!({"key": "b", "count": 2})]);
        // The same input gives the same bytes (a repeated commit rewrites an identical object).
        assert_eq!(super::jsonl_to_parquet(jsonl).expect("again"), super::jsonl_to_parquet(jsonl).expect("again"));
    }
}
