//! The job spec as written by users (YAML or JSON).

mod inputs;
mod sink;
mod source;

pub use inputs::{BroadcastOrder, IntervalJoinSpec, MAIN_INPUT, NamedInput, OperatorInputs};
pub use sink::{BlackholeSinkSpec, FileSinkSpec, KafkaDelivery, KafkaSinkSpec, ObjectSinkSpec, PostgresSinkSpec, SinkSpec, StdoutSinkSpec};
pub use source::{
    BadRecords, CsvOptions, FileFormat, FileSourceSpec, GeneratorKind, GeneratorSpec, KafkaFormat, KafkaSourceSpec, KafkaStart, NexmarkEvent, NexmarkSpec, ObjectFormat,
    ObjectSourceSpec, SourceSpec,
};

use std::path::{Path, PathBuf};

use rivulet_dataflow::KeySelector;
use rivulet_state::BackendKind;
use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::params::Params;

/// The largest spec file read.
pub const MAX_SPEC_BYTES: u64 = 4 << 20;

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
    /// The largest record (key and value) any source may produce, in bytes (default
    /// 16 MiB): a longer line, message or row fails the job naming the source.
    #[serde(default)]
    pub max_record_bytes: Option<u64>,
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
    /// JSON field holding the event time in ms (file, objects and Kafka sources; a dotted
    /// path like `bid.ts` reaches into objects). Generators use their own.
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

impl KeyBy {
    /// The key selector an edge partitions by.
    pub fn selector(&self) -> KeySelector {
        match self {
            KeyBy::RecordKey(_) => KeySelector::RecordKey,
            KeyBy::Field { field } => KeySelector::Field(field.clone()),
        }
    }
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
    /// Upstream ids (`id`, or `uid.tag` for a side output) of its one input, or its
    /// named inputs.
    pub inputs: OperatorInputs,
    /// Partition the (non-broadcast) inputs by key.
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
    /// Interval join of its two inputs, applied by the host.
    #[serde(default)]
    pub interval_join: Option<IntervalJoinSpec>,
    /// When keyed records see the changes of broadcast inputs (default `event_time`).
    #[serde(default)]
    pub broadcast_order: Option<BroadcastOrder>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
}

impl JobSpec {
    /// Parse a spec from YAML (JSON is YAML too), then fill its `${params}` inside
    /// string values (a param is data: it cannot add a field or an item).
    pub fn parse(text: &str, origin: &str, params: &Params) -> Result<JobSpec, SpecError> {
        let parse_error = |e: serde_yaml::Error| SpecError::Parse { path: origin.to_owned(), message: e.to_string() };
        if !text.contains("${") {
            return serde_yaml::from_str(text).map_err(parse_error);
        }
        let mut doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(parse_error)?;
        params.fill(&mut doc)?;
        // Through the text again, so a number a param put in a string field reads as
        // that field's string, as it would written there by hand.
        let filled = serde_yaml::to_string(&doc).map_err(parse_error)?;
        serde_yaml::from_str(&filled).map_err(parse_error)
    }

    /// Read and parse a spec file (a regular file of at most [`MAX_SPEC_BYTES`]).
    pub fn from_file(path: &Path, params: &Params) -> Result<JobSpec, SpecError> {
        use rivulet_dataflow::BoundedReadError as E;
        let shown = path.display().to_string();
        let bytes = rivulet_dataflow::read_bounded_file(path, MAX_SPEC_BYTES).map_err(|e| match e {
            E::Io(error) => SpecError::Read { path: shown.clone(), error },
            E::NotAFile => SpecError::invalid(shown.clone(), "not a regular file"),
            E::TooLarge { .. } => SpecError::invalid(shown.clone(), format!("larger than {MAX_SPEC_BYTES} bytes: not a job spec")),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| SpecError::invalid(shown.clone(), "not UTF-8 text: not a job spec"))?;
        Self::parse(&text, &shown, params)
    }
}

/// Resolve `p` against the spec's directory unless it is absolute.
pub fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named() {
        let yaml = "name: j\nsources:\n  - {id: s, type: file, pth: x, format: jsonl}\nsinks: []\n";
        let e = JobSpec::parse(yaml, "job.yaml", &Params::default()).expect_err("bad");
        assert!(e.to_string().contains("pth"), "{e}");
    }

    #[test]
    fn specs_round_trip_through_json() {
        let yaml = "name: j\nsources:\n  - {id: s, type: kafka, bootstrap_servers: b, topic: t, parallelism: 2}\n\
                    sinks:\n  - {id: o, type: postgres, url: u, table: t, key: [k], inputs: [s]}\n  - {id: f, type: file, path: out, inputs: [s]}\n";
        let spec = JobSpec::parse(yaml, "job.yaml", &Params::default()).expect("spec");
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(json["sources"][0]["type"], "kafka");
        let back: JobSpec = serde_json::from_value(json).expect("back");
        assert_eq!(back.sources[0].parallelism(), 2);
        assert_eq!(back.sinks[0].id(), "o");
    }
}
