//! The bounded file source: JSON lines, CSV (rows become JSON objects) or text lines.

use std::io::{BufRead, Seek};
use std::path::PathBuf;

use super::SourceOutput;
use crate::checkpoint::manifest::SourcePosition;
use crate::error::JobError;
use crate::job::FileFormat;

/// Reads one file start to end.
pub struct FileSource {
    /// Source id.
    pub id: String,
    /// File path.
    pub path: PathBuf,
    /// Format.
    pub format: FileFormat,
    /// CSV delimiter.
    pub delimiter: u8,
    /// JSON field with the event time (ms), if the source has event time.
    pub time_field: Option<String>,
    /// Where to resume (from a checkpoint).
    pub start: Option<SourcePosition>,
}

impl FileSource {
    fn err(&self, message: String) -> JobError {
        JobError::Connector { node: "source", id: self.id.clone(), message }
    }

    fn timestamp(&self, line_no: usize, doc: &serde_json::Value) -> Result<i64, JobError> {
        let Some(field) = &self.time_field else {
            return Ok(0);
        };
        match doc.get(field) {
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or_else(|| self.err(format!("{}:{line_no}: field '{field}' is not an integer", self.path.display()))),
            Some(serde_json::Value::String(s)) => {
                s.trim().parse::<i64>().map_err(|_| self.err(format!("{}:{line_no}: field '{field}' ('{s}') is not an integer", self.path.display())))
            }
            _ => Err(self.err(format!("{}:{line_no}: event-time field '{field}' is missing", self.path.display()))),
        }
    }

    /// Read the file (from the restored position) into `out`, then finish it (final
    /// watermark, End). Between records it answers checkpoint barriers with its position.
    pub async fn run(self, mut out: SourceOutput) -> Result<(), JobError> {
        let (mut offset, mut records) = match &self.start {
            Some(SourcePosition::Finished) => return out.finish_restored().await,
            Some(SourcePosition::File { offset, records, max_ts }) => {
                out.restore_max_ts(*max_ts);
                (*offset, *records)
            }
            Some(other) => {
                return Err(self.err(format!("cannot resume a file source from {other:?}")));
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
                    let n = reader.read_line(&mut buf).map_err(|e| self.err(format!("{}:{}: {e}", self.path.display(), line_no + 1)))?;
                    if n == 0 {
                        break;
                    }
                    offset += n as u64;
                    line_no += 1;
                    let line = buf.trim_end_matches('\n').trim_end_matches('\r');
                    if self.format == FileFormat::Jsonl {
                        if line.trim().is_empty() {
                            continue;
                        }
                        let ts = match &self.time_field {
                            Some(_) => {
                                let doc: serde_json::Value =
                                    serde_json::from_str(line).map_err(|e| self.err(format!("{}:{line_no}: not JSON: {e}", self.path.display())))?;
                                self.timestamp(line_no, &doc)?
                            }
                            None => {
                                serde_json::from_str::<serde::de::IgnoredAny>(line)
                                    .map_err(|e| self.err(format!("{}:{line_no}: not JSON: {e}", self.path.display())))?;
                                0
                            }
                        };
                        out.push(None, line.as_bytes(), ts).await?;
                    } else {
                        out.push(None, line.as_bytes(), 0).await?;
                    }
                    records += 1;
                    if let Some(b) = out.poll_barrier() {
                        out.barrier(b, SourcePosition::File { offset, records, max_ts: out.max_ts() }).await?;
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
                        out.barrier(b, SourcePosition::File { offset: 0, records, max_ts: out.max_ts() }).await?;
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
