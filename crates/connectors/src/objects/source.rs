//! The object source (bounded): the objects under a location in name order, read whole;
//! Parquet rows become JSON objects.

use std::io::BufRead as _;

use rivulet_checkpoint::{CheckpointStorage, SourcePosition};
use rivulet_dataflow::NodeRole;
use rivulet_job::{BadRecords, ObjectFormat, ObjectSourceSpec};
use serde::{Deserialize, Serialize};

use super::parquet::parquet_to_jsonl;
use crate::BoxFuture;
use crate::error::ConnectorError;
use crate::json_line::event_time_of;
use crate::source::{SourceConnector, SourceContext, SourceTask, own_position};

/// Where an object source was: the object it was reading and the records emitted from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ObjectPosition {
    Objects { object: String, records: u64, max_ts: i64 },
}

/// `type: objects` sources.
pub(crate) struct ObjectSourceConnector {
    spec: ObjectSourceSpec,
}

impl ObjectSourceConnector {
    pub(crate) fn new(spec: &ObjectSourceSpec) -> Self {
        ObjectSourceConnector { spec: spec.clone() }
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
            let bytes = store.get(&name).await.map_err(|e| self.err(e.to_string()))?;
            let lines: Vec<Vec<u8>> = match self.format {
                ObjectFormat::Jsonl => {
                    bytes.lines().map(|l| l.map(String::into_bytes)).collect::<Result<_, _>>().map_err(|e| self.err(format!("{name}: {e}")))?
                }
                ObjectFormat::Parquet => parquet_to_jsonl(bytes).map_err(|e| self.err(format!("{name}: {e}")))?,
            };
            let mut emitted = 0u64;
            for (line_no, line) in lines.iter().enumerate().filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace)) {
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
                    (_, field) => event_time_of(line, field),
                };
                match checked {
                    Ok(ts) => out.push(None, line, ts).await?,
                    Err(_) if self.bad_records == BadRecords::DeadLetter => out.dead_letter(None, line, 0).await?,
                    Err(why) => return Err(self.err(format!("{name}:{}: {why}", line_no + 1))),
                }
            }
        }
        out.finish().await
    }
}
