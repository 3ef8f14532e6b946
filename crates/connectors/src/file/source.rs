//! The bounded file source: JSON lines, CSV (rows become JSON objects) or text lines.
//! Its position in checkpoints is the byte offset of the next line (rows, for CSV).

use std::io::{BufRead, Read, Seek};
use std::path::PathBuf;

use rivulet_checkpoint::SourcePosition;
use rivulet_dataflow::NodeRole;
use rivulet_job::{BadRecords, FileFormat, FileSourceSpec};
use serde::{Deserialize, Serialize};

use crate::BoxFuture;
use crate::context::ConnectorContext;
use crate::error::ConnectorError;
use crate::json_line::{event_time_of, time_field};
use crate::source::{SourceConnector, SourceContext, SourceTask, own_position};

/// Where a file source was: byte offset of the next unread line (text, JSON lines), rows
/// emitted (CSV), largest event time seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum FilePosition {
    File { offset: u64, records: u64, max_ts: i64 },
}

/// `type: file` sources.
pub(crate) struct FileSourceConnector {
    id: String,
    path: PathBuf,
    format: FileFormat,
    delimiter: u8,
    time_field: Option<String>,
    max_record_bytes: usize,
    bad_records: BadRecords,
}

impl FileSourceConnector {
    pub(crate) fn new(spec: &FileSourceSpec, cx: &ConnectorContext) -> Self {
        FileSourceConnector {
            id: spec.id.clone(),
            path: cx.resolve(&spec.path),
            format: spec.format,
            delimiter: spec.csv.as_ref().and_then(|c| c.delimiter).map_or(b',', |c| c as u8),
            time_field: spec.event_time.as_ref().map(|et| et.field.clone().unwrap_or_else(|| "timestamp".into())),
            max_record_bytes: cx.max_record_bytes,
            bad_records: spec.bad_records,
        }
    }
}

impl SourceConnector for FileSourceConnector {
    fn open(&self, _subtask: u32, _parallelism: u32, restored: Option<Vec<SourcePosition>>) -> Result<Box<dyn SourceTask>, ConnectorError> {
        Ok(Box::new(FileSource {
            id: self.id.clone(),
            path: self.path.clone(),
            format: self.format,
            delimiter: self.delimiter,
            time_field: self.time_field.clone(),
            start: own_position(restored),
            max_record_bytes: self.max_record_bytes,
            bad_records: self.bad_records,
        }))
    }
}

/// Reads one file start to end.
struct FileSource {
    id: String,
    path: PathBuf,
    format: FileFormat,
    delimiter: u8,
    /// JSON field with the event time (ms), if the source has event time.
    time_field: Option<String>,
    /// Where to resume (from a checkpoint).
    start: Option<SourcePosition>,
    /// A longer line fails the source before it is read whole.
    max_record_bytes: usize,
    /// Fail on an undecodable JSON line, or dead-letter it.
    bad_records: BadRecords,
}

impl SourceTask for FileSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), ConnectorError>> {
        Box::pin(self.read(ctx))
    }
}

impl FileSource {
    fn err(&self, message: String) -> ConnectorError {
        ConnectorError::failed(NodeRole::Source, &self.id, message)
    }

    fn timestamp(&self, line_no: usize, doc: &serde_json::Value) -> Result<i64, ConnectorError> {
        let Some(field) = &self.time_field else {
            return Ok(0);
        };
        time_field(doc, field).map_err(|why| self.err(format!("{}:{line_no}: {why}", self.path.display())))
    }

    /// Read the file (from the restored position) into `out`, then finish it (final
    /// watermark, End). Between records it answers checkpoint barriers with its position.
    async fn read(self: Box<Self>, mut out: SourceContext) -> Result<(), ConnectorError> {
        let (mut offset, mut records) = match &self.start {
            Some(p) if p.is_finished() => return out.finish_restored().await,
            Some(p) => {
                let FilePosition::File { offset, records, max_ts } = p.decode().map_err(|e| self.err(e.to_string()))?;
                out.restore_max_ts(max_ts);
                (offset, records)
            }
            None => (0, 0),
        };
        let mut file = std::fs::File::open(&self.path).map_err(|e| self.err(format!("cannot open {}: {e}", self.path.display())))?;
        match self.format {
            FileFormat::Text | FileFormat::Jsonl => {
                file.seek(std::io::SeekFrom::Start(offset)).map_err(|e| self.err(format!("{}: seek to {offset}: {e}", self.path.display())))?;
                let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
                let mut line_no = records as usize;
                let mut buf = String::new();
                loop {
                    buf.clear();
                    // At most one byte past the limit (and its newline) is read.
                    let limit = self.max_record_bytes as u64 + 2;
                    let n = (&mut reader)
                        .take(limit)
                        .read_line(&mut buf)
                        .map_err(|e| self.err(format!("{}:{}: {e}", self.path.display(), line_no + 1)))?;
                    if n == 0 {
                        break;
                    }
                    offset += n as u64;
                    line_no += 1;
                    let line = buf.trim_end_matches('\n').trim_end_matches('\r');
                    if line.len() > self.max_record_bytes {
                        return Err(self.err(format!(
                            "{}:{line_no}: the line is longer than max_record_bytes ({} bytes)",
                            self.path.display(),
                            self.max_record_bytes
                        )));
                    }
                    if self.format == FileFormat::Jsonl {
                        if line.trim().is_empty() {
                            continue;
                        }
                        match event_time_of(line.as_bytes(), self.time_field.as_deref()) {
                            Ok(ts) => out.push(None, line.as_bytes(), ts).await?,
                            Err(_) if self.bad_records == BadRecords::DeadLetter => out.dead_letter(None, line.as_bytes(), 0).await?,
                            Err(why) => return Err(self.err(format!("{}:{line_no}: {why}", self.path.display()))),
                        }
                    } else {
                        out.push(None, line.as_bytes(), 0).await?;
                    }
                    records += 1;
                    if let Some(b) = out.poll_barrier() {
                        out.barrier(b, SourcePosition::encode(&FilePosition::File { offset, records, max_ts: out.max_ts() })).await?;
                        if b.stop {
                            return Ok(());
                        }
                    }
                }
            }
            FileFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().delimiter(self.delimiter).has_headers(true).from_reader(file);
                let headers = reader.headers().map_err(|e| self.err(format!("{}: header: {e}", self.path.display())))?.clone();
                for (i, row) in reader.records().enumerate() {
                    let line_no = i + 2;
                    if (i as u64) < records {
                        continue;
                    }
                    let row = row.map_err(|e| self.err(format!("{}:{line_no}: {e}", self.path.display())))?;
                    let mut obj = serde_json::Map::new();
                    for (h, v) in headers.iter().zip(row.iter()) {
                        obj.insert(h.to_owned(), csv_value(v));
                    }
                    let doc = serde_json::Value::Object(obj);
                    let ts = self.timestamp(line_no, &doc)?;
                    let bytes = serde_json::to_vec(&doc).map_err(|e| self.err(e.to_string()))?;
                    out.push(None, &bytes, ts).await?;
                    records += 1;
                    if let Some(b) = out.poll_barrier() {
                        out.barrier(b, SourcePosition::encode(&FilePosition::File { offset: 0, records, max_ts: out.max_ts() })).await?;
                        if b.stop {
                            return Ok(());
                        }
                    }
                }
            }
        }
        out.finish().await
    }
}

/// A CSV cell as JSON: integers and floats become numbers, the rest strings.
fn csv_value(v: &str) -> serde_json::Value {
    if let Ok(i) = v.parse::<i64>() {
        return i.into();
    }
    if let Ok(f) = v.parse::<f64>()
        && f.is_finite()
    {
        return f.into();
    }
    serde_json::Value::String(v.to_owned())
}
