//! The job spec as written by users (YAML or JSON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SpecError;
use crate::state::BackendKind;

/// A whole job.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's name.
    pub name: String,
    /// Default parallelism of operators (sources and sinks default to 1).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Number of key groups: the upper bound of any operator's parallelism.
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: u16,
    /// State backend (the command line may override it).
    #[serde(default)]
    pub state_backend: Option<BackendKind>,
    /// Records per batch crossing a channel or the Wasm boundary.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Sources.
    pub sources: Vec<SourceSpec>,
    /// Operators (Wasm components).
    #[serde(default)]
    pub operators: Vec<OperatorSpec>,
    /// Sinks.
    pub sinks: Vec<SinkSpec>,
    /// Checkpointing (the command line may override it).
    #[serde(default)]
    pub checkpoint: Option<CheckpointSpec>,
    /// What to do when a task fails.
    #[serde(default)]
    pub restart: Option<RestartSpec>,
}

/// Checkpoint settings in a job spec.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSpec {
    /// Checkpoint location: a directory or `s3://bucket/prefix`.
    #[serde(default)]
    pub dir: Option<String>,
    /// Interval between checkpoints in ms.
    #[serde(default)]
    pub interval_ms: Option<u64>,
    /// Abort a checkpoint not complete after this long (default 600000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Complete checkpoints to keep (default 3).
    #[serde(default)]
    pub retain: Option<usize>,
    /// Consecutive failed checkpoints tolerated (default 3).
    #[serde(default)]
    pub tolerable_failures: Option<u32>,
    /// RocksDB uploads only new SST files (default true).
    #[serde(default)]
    pub incremental: Option<bool>,
}

/// Restart strategy: fixed delay, bounded attempts (Flink's `fixed-delay`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSpec {
    /// Restarts allowed (0: fail at once).
    pub attempts: u32,
    /// Delay before each restart in ms.
    #[serde(default)]
    pub delay_ms: u64,
}

fn default_max_parallelism() -> u16 {
    128
}

/// How a source assigns event time and watermarks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventTimeSpec {
    /// JSON field holding the event time in ms (file sources). Generators use their own.
    #[serde(default)]
    pub field: Option<String>,
    /// Bounded out-of-orderness: watermark = max timestamp seen − this − 1.
    #[serde(default)]
    pub max_out_of_orderness_ms: u64,
    /// Emit a watermark after at most this many records (default and maximum 1000).
    /// Smaller values make lateness finer-grained; results never depend on read speed.
    #[serde(default)]
    pub watermark_every: Option<usize>,
    /// After this long without records the source is idle and does not hold back watermarks.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
}

/// Format of a file source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON document per line.
    Jsonl,
    /// CSV with a header row; each row becomes a JSON object.
    Csv,
    /// Each line is a record whose value is the line's text.
    Text,
}

/// CSV options.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
}

/// What a generator produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorKind {
    /// `{"id": n, "key": "k<n % keys>", "value": n, "timestamp": start + n·interval}`.
    #[default]
    Sequence,
    /// Like sequence, but `key` and `value` drawn from a seeded random generator.
    Random,
}

/// A source.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSpec {
    /// A bounded file (JSON lines, CSV or text).
    File {
        /// Unique id.
        id: String,
        /// Path (relative to the spec's directory).
        path: String,
        /// Format.
        format: FileFormat,
        /// CSV options.
        #[serde(default)]
        csv: Option<CsvOptions>,
        /// Event time and watermarks.
        #[serde(default)]
        event_time: Option<EventTimeSpec>,
    },
    /// Generated records, bounded (`count`) or not, optionally rate-limited.
    Generator {
        /// Unique id.
        id: String,
        /// Sequence or random.
        #[serde(default)]
        kind: GeneratorKind,
        /// Records in total (unbounded if absent).
        #[serde(default)]
        count: Option<u64>,
        /// Records per second in total (unlimited if absent).
        #[serde(default)]
        rate: Option<f64>,
        /// Number of distinct keys (default 100).
        #[serde(default)]
        keys: Option<u64>,
        /// Event-time step between consecutive records in ms (default 1).
        #[serde(default)]
        interval_ms: Option<i64>,
        /// Seed of the random kind.
        #[serde(default)]
        seed: Option<u64>,
        /// Parallel instances (each produces a share of `count`).
        #[serde(default)]
        parallelism: Option<u32>,
        /// Event time and watermarks.
        #[serde(default)]
        event_time: Option<EventTimeSpec>,
    },
    /// Objects on object storage (a local directory, `file://…`, `s3://bucket/prefix`),
    /// read in name order, whole; bounded.
    Objects {
        /// Unique id.
        id: String,
        /// Location.
        url: String,
        /// `jsonl` (default) or `parquet`.
        #[serde(default)]
        format: ObjectFormat,
        /// Event time (`field`) and watermarks.
        #[serde(default)]
        event_time: Option<EventTimeSpec>,
    },
    /// A Kafka topic. Partitions are spread over the subtasks (partition p goes to
    /// subtask p mod parallelism); the offsets are part of every checkpoint, so a
    /// restored job reads each record once. Consumer-group offsets are committed after
    /// each checkpoint for monitoring only.
    Kafka {
        /// Unique id.
        id: String,
        /// `host:port[,host:port…]`.
        bootstrap_servers: String,
        /// The topic.
        topic: String,
        /// Where to start without a checkpoint.
        #[serde(default)]
        start: KafkaStart,
        /// For `start: timestamp`.
        #[serde(default)]
        start_timestamp_ms: Option<i64>,
        /// Consumer group (offsets committed for monitoring; `start: group` reads them).
        /// Default `rivulet-<job>-<source id>`.
        #[serde(default)]
        group_id: Option<String>,
        /// Read up to the end offsets found at the start, then finish (a bounded input).
        #[serde(default)]
        bounded: bool,
        /// `bytes` (default) or `json` (undecodable values go to the `dead-letter` side
        /// output, counted).
        #[serde(default)]
        format: KafkaFormat,
        /// Parallel instances.
        #[serde(default)]
        parallelism: Option<u32>,
        /// Event time: the record's timestamp, or the JSON field `field`; watermarks per
        /// partition (the source's is their minimum; idle partitions don't hold it back).
        #[serde(default)]
        event_time: Option<EventTimeSpec>,
        /// Extra librdkafka consumer properties (e.g. security settings).
        #[serde(default)]
        properties: BTreeMap<String, String>,
    },
}

impl SourceSpec {
    /// The source's id.
    pub fn id(&self) -> &str {
        match self {
            SourceSpec::File { id, .. } | SourceSpec::Generator { id, .. } | SourceSpec::Kafka { id, .. } | SourceSpec::Objects { id, .. } => id,
        }
    }
    /// Its parallelism.
    pub fn parallelism(&self) -> u32 {
        match self {
            SourceSpec::File { .. } | SourceSpec::Objects { .. } => 1,
            SourceSpec::Generator { parallelism, .. } | SourceSpec::Kafka { parallelism, .. } => parallelism.unwrap_or(1),
        }
    }
    /// Its event-time settings.
    pub fn event_time(&self) -> Option<&EventTimeSpec> {
        match self {
            SourceSpec::File { event_time, .. }
            | SourceSpec::Generator { event_time, .. }
            | SourceSpec::Kafka { event_time, .. }
            | SourceSpec::Objects { event_time, .. } => {
                event_time.as_ref()
            }
        }
    }
}

/// Where a Kafka source starts when no checkpoint says where it was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaStart {
    /// The oldest retained record of each partition.
    #[default]
    Earliest,
    /// Only records produced after the job starts.
    Latest,
    /// The first record at or after `start_timestamp_ms`.
    Timestamp,
    /// The consumer group's committed offsets (earliest where it has none).
    Group,
}

/// Format of objects on object storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectFormat {
    /// One JSON value per line.
    #[default]
    Jsonl,
    /// Apache Parquet (columns from the JSON fields).
    Parquet,
}

/// The Kafka sink's guarantee.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaDelivery {
    /// Transactions committed when the checkpoint completes.
    #[default]
    ExactlyOnce,
    /// Produced at once; flushed at barriers.
    AtLeastOnce,
}

/// How a Kafka source reads record values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaFormat {
    /// Values are passed on as they are.
    #[default]
    Bytes,
    /// Values must be JSON: others go to the `dead-letter` side output.
    Json,
}

/// How an operator's input is partitioned by key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum KeyBy {
    /// `record_key`: partition by the key the upstream operator gave each record.
    RecordKey(String),
    /// `{field: name}`: the JSON field `name` of the record's value becomes its key.
    Field {
        /// Field name.
        field: String,
    },
}

/// Window shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size_ms`.
    Tumbling,
    /// Windows of `size_ms` every `slide_ms`.
    Sliding,
    /// Per-key activity sessions closed by `gap_ms` of inactivity.
    Session,
}

/// An event-time window the host applies before the operator's `process-window`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Shape.
    #[serde(rename = "type")]
    pub kind: WindowKind,
    /// Size (tumbling, sliding).
    #[serde(default)]
    pub size_ms: Option<i64>,
    /// Slide (sliding).
    #[serde(default)]
    pub slide_ms: Option<i64>,
    /// Inactivity gap (session).
    #[serde(default)]
    pub gap_ms: Option<i64>,
    /// How long after a window's end late records still update it.
    #[serde(default)]
    pub allowed_lateness_ms: i64,
    /// Side output tag for records too late for every window (default `late`).
    #[serde(default)]
    pub late_output: Option<String>,
}

/// Per-operator limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Linear memory cap per instance in MiB (default 256).
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Time limit per call into the guest in ms (default 10000).
    #[serde(default)]
    pub call_timeout_ms: Option<u64>,
}

/// A Wasm operator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSpec {
    /// Stable identifier; state is mapped to operators by it.
    pub uid: String,
    /// Path of the component (relative to the spec's directory).
    pub plugin: String,
    /// Upstream ids (`id`, or `uid.tag` for a side output).
    pub inputs: Vec<String>,
    /// Partition the input by key.
    #[serde(default)]
    pub key_by: Option<KeyBy>,
    /// Parallel instances (defaults to the job's parallelism).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Passed to the guest's `open` as JSON.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Event-time window applied by the host.
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
}

/// A sink.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkSpec {
    /// Appends each record's value as one line to a file (JSON lines).
    File {
        /// Unique id.
        id: String,
        /// Upstream ids.
        inputs: Vec<String>,
        /// Output directory of part files (relative to the spec's directory). Part files
        /// become visible when the checkpoint covering them completes (exactly-once);
        /// a fresh (not restored) run clears earlier part files.
        path: String,
    },
    /// Produces each record's value to a Kafka topic, exactly-once: values are spooled
    /// locally and produced in one transaction per checkpoint once it completes (see
    /// `connectors::kafka_sink`); read the topic with `isolation.level=read_committed`.
    Kafka {
        /// Unique id.
        id: String,
        /// Upstream ids.
        inputs: Vec<String>,
        /// `host:port[,host:port…]`.
        bootstrap_servers: String,
        /// The topic (it must exist).
        topic: String,
        /// JSON field of the value used as the record key.
        #[serde(default)]
        key_field: Option<String>,
        /// `exactly_once` (default: transactions per completed checkpoint) or
        /// `at_least_once` (produced as records come, flushed at every barrier: lower
        /// latency; a restart may write records of the last checkpoint interval again).
        #[serde(default)]
        delivery: KafkaDelivery,
        /// Spool directory (default: `<data dir>/kafka-spool/<job>/<sink id>`).
        #[serde(default)]
        spool_dir: Option<String>,
        /// Extra librdkafka producer properties.
        #[serde(default)]
        properties: BTreeMap<String, String>,
    },
    /// Upserts each record's value (a JSON object: one row, its fields the columns) into
    /// a PostgreSQL table by key, batched; flushed at every checkpoint barrier, so a
    /// replay after recovery rewrites the same rows and the table converges.
    Postgres {
        /// Unique id.
        id: String,
        /// Upstream ids.
        inputs: Vec<String>,
        /// `postgres://user[:password]@host:port/database`.
        url: String,
        /// Table (`name` or `schema.name`); it must exist, with a primary key or unique
        /// constraint on `key`.
        table: String,
        /// Key columns.
        key: Vec<String>,
        /// Rows per statement (default 500).
        #[serde(default)]
        batch_size: Option<usize>,
    },
    /// Writes each record's value into part objects on object storage (a local
    /// directory, `file://…` or `s3://bucket/prefix`), as JSON lines or Parquet, rolled
    /// by size and time; exactly-once: a part appears (whole) when the checkpoint
    /// covering it completes.
    Objects {
        /// Unique id.
        id: String,
        /// Upstream ids.
        inputs: Vec<String>,
        /// Location.
        url: String,
        /// `jsonl` (default) or `parquet`.
        #[serde(default)]
        format: ObjectFormat,
        /// Roll to a new part after this many bytes of JSON (default 64 MiB).
        #[serde(default)]
        roll_size_bytes: Option<u64>,
        /// Roll to a new part after this long (default: only at checkpoints).
        #[serde(default)]
        roll_interval_ms: Option<u64>,
        /// Spool directory (default: `<data dir>/object-spool/<job>/<sink id>`).
        #[serde(default)]
        spool_dir: Option<String>,
    },
    /// Prints each record's value as one line on stdout.
    Stdout {
        /// Unique id.
        id: String,
        /// Upstream ids.
        inputs: Vec<String>,
    },
}

impl SinkSpec {
    /// The sink's id.
    pub fn id(&self) -> &str {
        match self {
            SinkSpec::File { id, .. }
            | SinkSpec::Stdout { id, .. }
            | SinkSpec::Kafka { id, .. }
            | SinkSpec::Postgres { id, .. }
            | SinkSpec::Objects { id, .. } => id,
        }
    }
    /// Its inputs.
    pub fn inputs(&self) -> &[String] {
        match self {
            SinkSpec::File { inputs, .. }
            | SinkSpec::Stdout { inputs, .. }
            | SinkSpec::Kafka { inputs, .. }
            | SinkSpec::Postgres { inputs, .. }
            | SinkSpec::Objects { inputs, .. } => inputs,
        }
    }
}

/// Replace every `${NAME}` in `text` by `params[NAME]`.
/// Whole-line YAML comments are left alone, so a comment may mention `${NAME}`.
pub fn substitute_params(text: &str, params: &BTreeMap<String, String>) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
        } else {
            substitute_line(line, params, &mut out)?;
        }
    }
    Ok(out)
}

fn substitute_line(text: &str, params: &BTreeMap<String, String>, out: &mut String) -> Result<(), SpecError> {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SpecError::invalid("params", "unterminated `${` placeholder"));
        };
        let name = &after[..end];
        match params.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(SpecError::MissingParam { name: name.to_owned() });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

impl JobSpec {
    /// Parse a spec from YAML (JSON is YAML too), after filling `${params}`.
    pub fn parse(text: &str, origin: &str, params: &BTreeMap<String, String>) -> Result<JobSpec, SpecError> {
        let text = substitute_params(text, params)?;
        serde_yaml::from_str(&text).map_err(|e| SpecError::Parse { path: origin.to_owned(), message: e.to_string() })
    }

    /// Read and parse a spec file.
    pub fn from_file(path: &Path, params: &BTreeMap<String, String>) -> Result<JobSpec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.display().to_string(), error: source })?;
        Self::parse(&text, &path.display().to_string(), params)
    }
}

/// Resolve `p` against the spec's directory unless it is absolute.
pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_substituted_and_missing_ones_named() {
        let mut p = BTreeMap::new();
        p.insert("input".to_owned(), "a.txt".to_owned());
        assert_eq!(substitute_params("path: ${input}", &p).expect("ok"), "path: a.txt");
        let e = substitute_params("path: ${output}", &p).expect_err("missing");
        assert!(e.to_string().contains("--param output=VALUE"), "{e}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let yaml = "name: j\nsources:\n  - {id: s, type: file, pth: x, format: jsonl}\nsinks: []\n";
        let e = JobSpec::parse(yaml, "job.yaml", &BTreeMap::new()).expect_err("bad");
        assert!(e.to_string().contains("pth"), "{e}");
    }
}
