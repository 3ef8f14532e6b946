//! Files: the bounded file source (JSON lines, CSV, text) and the exactly-once file sink
//! (part files of JSON lines, renamed visible when the checkpoint covering them completes).

mod sink;
mod source;

pub(crate) use sink::{FileSinkConnector, committer_for};
pub(crate) use source::FileSourceConnector;
