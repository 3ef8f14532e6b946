//! The object source (bounded): the objects under a location in name order. JSON-lines
//! objects are streamed, each line at most `max_record_bytes`; Parquet objects are read
//! whole (their footer is at the end) and their rows become JSON objects.

use futures::StreamExt as _;

use rivulet_checkpoint::{CheckpointStorage, SourcePosition};
use rivulet_dataflow::NodeRole;
use rivulet_job::{BadRecords, ObjectFormat, ObjectSourceSpec};
use serde::{Deserialize, Serialize};

use super::parquet::parquet_to_jsonl;
use crate::BoxFuture;
use crate::context::ConnectorContext;
use crate::error::ConnectorError;
use crate::json_line::event_time_of;
use crate::source::{SourceConnector, SourceContext, SourceTask, own_position};
use bytes::Bytes;
use futures::stream::BoxStream;
use rivulet_checkpoint::CheckpointError;

/// Where an object source was: the object it was reading and the records emitted from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ObjectPosition {
    Objects { object: String, records: u64, max_ts: i64 },
}

/// `type: objects` sources.
pub(crate) struct ObjectSourceConnector {
    spec: ObjectSourceSpec,
    max_record_bytes: usize,
}

impl ObjectSourceConnector {
    pub(crate) fn new(spec: &ObjectSourceSpec, cx: &ConnectorContext) -> Self {
        let mut spec = spec.clone();
        spec.url = cx.location(&spec.url);
        ObjectSourceConnector { spec, max_record_bytes: cx.max_record_bytes }
    }
}

impl SourceConnector for ObjectSourceConnector {
    fn open(&self, _subtask: u32, _parallelism: u32, restored: Option<Vec<SourcePosition>>) -> Result<Box<dyn SourceTask>, ConnectorError> {
        Ok(Box::new(ObjectSource {
            id: self.spec.id.clone(),
            url: self.spec.url.clone(),
            format: self.spec.format,
            time_field: self.spec.event_time.as_ref().map(|et| et.field.clone().unwrap_or_else(|| "timestamp".into())),
            start: own_position(restored),
            bad_records: self.spec.bad_records,
            max_record_bytes: self.max_record_bytes,
        }))
    }
}

/// The object source: every object under `url` in name order.
struct ObjectSource {
    id: String,
    url: String,
    format: ObjectFormat,
    /// JSON field with the event time (ms).
    time_field: Option<String>,
    /// Where to resume.
    start: Option<SourcePosition>,
    /// Fail on an undecodable line, or dead-letter it.
    bad_records: BadRecords,
    /// The longest line read.
    max_record_bytes: usize,
}

impl SourceTask for ObjectSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), ConnectorError>> {
        Box::pin(self.read(ctx))
    }
}

impl ObjectSource {
    fn err(&self, message: String) -> ConnectorError {
        ConnectorError::failed(NodeRole::Source, &self.id, message)
    }

    /// Read everything, then finish.
    async fn read(self: Box<Self>, mut out: SourceContext) -> Result<(), ConnectorError> {
        let (mut skip_before, mut skip_records) = (None::<String>, 0u64);
        match &self.start {
            Some(p) if p.is_finished() => return out.finish_restored().await,
            Some(p) => {
                let ObjectPosition::Objects { object, records, max_ts } = p.decode().map_err(|e| self.err(e.to_string()))?;
                skip_before = Some(object);
                skip_records = records;
                out.restore_max_ts(max_ts);
            }
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
            let mut records = Records::open(&store, &name, self.format, self.max_record_bytes).await.map_err(|e| self.err(e))?;
            let mut emitted = 0u64;
            while let Some((line_no, line)) = records.next().await.map_err(|e| self.err(e))? {
                if let Some(b) = out.poll_barrier() {
                    let position = ObjectPosition::Objects { object: name.clone(), records: emitted, max_ts: out.max_ts() };
                    out.barrier(b, SourcePosition::encode(&position)).await?;
                    if b.stop {
                        return Ok(());
                    }
                }
                emitted += 1;
                if emitted <= skip {
                    continue;
                }
                // Parquet rows are JSON by construction: only an event time needs reading.
                let checked = match (self.format, self.time_field.as_deref()) {
                    (ObjectFormat::Parquet, None) => Ok(0),
                    (_, field) => event_time_of(&line, field),
                };
                match checked {
                    Ok(ts) => out.push(None, &line, ts).await?,
                    Err(_) if self.bad_records == BadRecords::DeadLetter => out.dead_letter(None, &line, 0).await?,
                    Err(why) => return Err(self.err(format!("{name}:{line_no}: {why}"))),
                }
            }
        }
        out.finish().await
    }
}

/// The records of one object, with their line (or row) numbers from 1; blank lines are
/// skipped but counted.
enum Records {
    Lines { name: String, chunks: BoxStream<'static, Result<Bytes, CheckpointError>>, lines: LineSplitter, done: bool },
    Rows(std::iter::Enumerate<std::vec::IntoIter<Vec<u8>>>),
}

impl Records {
    async fn open(store: &CheckpointStorage, name: &str, format: ObjectFormat, max_record_bytes: usize) -> Result<Records, String> {
        Ok(match format {
            ObjectFormat::Jsonl => Records::Lines {
                name: name.to_owned(),
                chunks: store.get_stream(name).await.map_err(|e| e.to_string())?,
                lines: LineSplitter::new(max_record_bytes),
                done: false,
            },
            ObjectFormat::Parquet => {
                let bytes = store.get(name).await.map_err(|e| e.to_string())?;
                Records::Rows(parquet_to_jsonl(bytes).map_err(|e| format!("{name}: {e}"))?.into_iter().enumerate())
            }
        })
    }

    /// The next non-blank record and its number, `None` at the object's end.
    async fn next(&mut self) -> Result<Option<(usize, Vec<u8>)>, String> {
        match self {
            Records::Rows(rows) => Ok(rows.next().map(|(i, row)| (i + 1, row))),
            Records::Lines { name, chunks, lines, done } => loop {
                if let Some((no, line)) = lines.next_line().map_err(|e| format!("{name}:{e}"))? {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Ok(Some((no, line)));
                }
                if *done {
                    return Ok(None);
                }
                match chunks.next().await {
                    Some(chunk) => lines.feed(&chunk.map_err(|e| e.to_string())?),
                    None => {
                        *done = true;
                        lines.end();
                    }
                }
            },
        }
    }
}

/// Splits a byte stream into lines (`\n`, an optional `\r` before it dropped), holding at
/// most one line of `max` bytes plus the chunk being split.
struct LineSplitter {
    buf: Vec<u8>,
    /// Where the unsplit rest of `buf` starts.
    start: usize,
    /// Bytes of the rest already searched for a newline (a long line is scanned once).
    scanned: usize,
    max: usize,
    line_no: usize,
    ended: bool,
}

impl LineSplitter {
    fn new(max: usize) -> Self {
        LineSplitter { buf: Vec::new(), start: 0, scanned: 0, max, line_no: 0, ended: false }
    }

    /// Append the next chunk.
    fn feed(&mut self, chunk: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(chunk);
    }

    /// No more chunks: the rest is the last line.
    fn end(&mut self) {
        self.ended = true;
    }

    /// The next complete line with its number, `None` when more input is needed (or at
    /// the end); an error `"<line>: …"` when a line is longer than `max`.
    fn next_line(&mut self) -> Result<Option<(usize, Vec<u8>)>, String> {
        let rest = &self.buf[self.start..];
        let (line, used) = match rest[self.scanned..].iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..self.scanned + i], self.scanned + i + 1),
            None if self.ended && !rest.is_empty() => (rest, rest.len()),
            None => {
                self.scanned = rest.len();
                if rest.len() > self.max + 1 {
                    return Err(format!("{}: the line is longer than max_record_bytes ({} bytes)", self.line_no + 1, self.max));
                }
                return Ok(None);
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.line_no += 1;
        if line.len() > self.max {
            return Err(format!("{}: the line is longer than max_record_bytes ({} bytes)", self.line_no, self.max));
        }
        if std::str::from_utf8(line).is_err() {
            return Err(format!("{}: the line is not UTF-8", self.line_no));
        }
        let line = line.to_vec();
        self.start += used;
        self.scanned = 0;
        Ok(Some((self.line_no, line)))
    }
}

#[cfg(test)]
mod tests {
    use super::LineSplitter;

    fn split(chunks: &[&[u8]], max: usize) -> Result<Vec<(usize, String)>, String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c);
            while let Some((n, l)) = s.next_line()? {
                out.push((n, String::from_utf8(l).expect("utf8")));
            }
        }
        s.end();
        while let Some((n, l)) = s.next_line()? {
            out.push((n, String::from_utf8(l).expect("utf8")));
        }
        Ok(out)
    }

    #[test]
    fn lines_split_across_chunks_keep_their_numbers() {
        let got = split(&[b"ab", b"c\r\n\nde", b"f\ng"], 10).expect("lines");
        assert_eq!(got, vec![(1, "abc".into()), (2, String::new()), (3, "def".into()), (4, "g".into())]);
    }

    #[test]
    fn a_line_longer_than_the_limit_fails_before_it_is_buffered_whole() {
        let mut s = LineSplitter::new(4);
        s.feed(b"ok\n123");
        assert_eq!(s.next_line().expect("first").map(|(n, _)| n), Some(1));
        assert_eq!(s.next_line().expect("needs more"), None);
        s.feed(b"456");
        let e = s.next_line().expect_err("too long");
        assert!(e.starts_with("2: the line is longer than max_record_bytes (4 bytes)"), "{e}");
        assert!(s.buf.len() <= 4 + 1 + 3 + 3, "held {} bytes", s.buf.len());
        assert_eq!(split(&[b"1234\r\n"], 4).expect("CRLF does not count"), vec![(1, "1234".into())]);
        assert!(split(&[b"\xff\n"], 4).expect_err("not utf8").contains("not UTF-8"));
    }
}
