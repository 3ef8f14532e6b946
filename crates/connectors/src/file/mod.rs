//! Files: the bounded file source (JSON lines, CSV, text) and the exactly-once file sink
//! (part files of JSON lines, renamed visible when the checkpoint covering them completes).

mod sink;
mod source;

pub(crate) use sink::{FileSinkConnector, committer_for};
pub(crate) use source::FileSourceConnector;

use rivulet_job::{FileSinkSpec, FileSourceSpec};

use crate::access::Access;

/// A file source reads its file.
pub(crate) fn source_accesses(spec: &FileSourceSpec) -> Vec<(&'static str, Access)> {
    vec![("path", Access::ReadFile(spec.path.clone()))]
}

/// A file sink writes part files below its directory.
pub(crate) fn sink_accesses(spec: &FileSinkSpec) -> Vec<(&'static str, Access)> {
    vec![("path", Access::WriteDir(spec.path.clone()))]
}
