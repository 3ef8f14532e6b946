//! Job specs as users write them ([`JobSpec`], YAML or JSON, with `${param}`
//! placeholders) and their validation into a logical dataflow graph ([`JobGraph`]):
//! nodes in topological order, edges with their partitioning. Pure data: nothing here
//! runs anything.

pub mod bounds;
mod error;
mod graph;
mod params;
pub mod secrets;
mod spec;

pub use error::SpecError;
pub use graph::{Edge, JobGraph, Node, NodeKind};
pub use params::Params;
pub use spec::{
    BadRecords, BlackholeSinkSpec, BroadcastOrder, CheckpointSpec, CsvOptions, EventTimeSpec, FileFormat, FileSinkSpec, FileSourceSpec, GeneratorKind, GeneratorSpec,
    IntervalJoinSpec, JobSpec, KafkaDelivery, KafkaFormat, KafkaSinkSpec, KafkaSourceSpec, KafkaStart, KeyBy, LimitsSpec, MAIN_INPUT, MAX_SPEC_BYTES,
    NamedInput, NexmarkEvent, NexmarkSpec, ObjectFormat, ObjectSinkSpec, ObjectSourceSpec, OperatorInputs, OperatorSpec, PostgresSinkSpec, RestartSpec, SinkSpec, SourceSpec,
    StdoutSinkSpec, WindowKind, WindowSpec, resolve_path,
};

/// `name` with every character but ASCII letters, digits, `-` and `_` replaced by `_`:
/// a job's name as a folder (checkpoints, state, spools) or a client id.
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}
