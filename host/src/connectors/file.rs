//! The bounded file source: JSON lines, CSV (rows become JSON objects) or text lines.

use std::io::BufRead;
use std::path::PathBuf;

use super::SourceOutput;
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
}

impl FileSource {
    fn err(&self, message: String) -> JobError {
        JobError::Connector { node: "source", id: self.id.clone(), message }
    }

    fn timestamp(&self, line_no: usize, doc: &serde_json::Value) -> Result<i64, JobError> {
        let Some(field) = &self.time_field else { return Ok(0) };
        match doc.get(field) {
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .ok_or_else(|| self.err(format!("{}:{line_no}: field '{field}' is not an integer", self.path.display()))),
            Some(serde_json::Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| self.err(format!("{}:{line_no}: field '{field}' ('{s}') is not an integer", self.path.display()))),
            _ => Err(self.err(format!("{}:{line_no}: event-time field '{field}' is missing", self.path.display()))),
        }
    }

    /// Read the whole file into `out`, then finish it (final watermark, End).
    pub async fn run(self, mut out: SourceOutput) -> Result<(), JobError> {
        let file = std::fs::File::open(&self.path).map_err(|e| self.err(format!("cannot open {}: {e}", self.path.display())))?;
        match self.format {
            FileFormat::Text | FileFormat::Jsonl => {
                let reader = std::io::BufReader::with_capacity(1 << 16, file);
                for (i, line) in reader.lines().enumerate() {
                    let line_no = i + 1;
                    let line = line.map_err(|e| self.err(format!("{}:{line_no}: {e}", self.path.display())))?;
                    let line = line.trim_end_matches('\r');
                    if self.format == FileFormat::Jsonl {
                        if line.trim().is_empty() {
                            continue;
                        }
                        let ts = match &self.time_field {
                            Some(_) => {
                                let doc: serde_json::Value = serde_json::from_str(line)
                                    .map_err(|e| self.err(format!("{}:{line_no}: not JSON: {e}", self.path.display())))?;
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
                }
            }
            FileFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().delimiter(self.delimiter).has_headers(true).from_reader(file);
                let headers = reader.headers().map_err(|e| self.err(format!("{}: header: {e}", self.path.display())))?.clone();
                for (i, row) in reader.records().enumerate() {
                    let line_no = i + 2;
                    let row = row.map_err(|e| self.err(format!("{}:{line_no}: {e}", self.path.display())))?;
                    let mut obj = serde_json::Map::new();
                    for (h, v) in headers.iter().zip(row.iter()) {
                        obj.insert(h.to_owned(), csv_value(v));
                    }
                    let doc = serde_json::Value::Object(obj);
                    let ts = self.timestamp(line_no, &doc)?;
                    let bytes = serde_json::to_vec(&doc).map_err(|e| self.err(e.to_string()))?;
                    out.push(None, &bytes, ts).await?;
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
    if let Ok(f) = v.parse::<f64>() {
        if f.is_finite() {
            return f.into();
        }
    }
    serde_json::Value::String(v.to_owned())
}
