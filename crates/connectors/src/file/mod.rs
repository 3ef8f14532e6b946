//! Files: the bounded file source (JSON lines, CSV, text) and the exactly-once file sink
//! (part files of JSON lines, renamed visible when the checkpoint covering them completes).

mod sink;
mod source;

pub(crate) use sink::{FileSinkConnector, committer_for};
pub(crate) use source::FileSourceConnector;

use rivulet_job::{FileSinkSpec, FileSourceSpec};

use crate::access::Place;

/// A file source reads its file.
pub(crate) fn source_places(spec: &mut FileSourceSpec) -> Vec<(&'static str, Place, &mut String)> {
    vec![("path", Place::ReadFile, &mut spec.path)]
}

/// A file sink writes part files below its directory.
pub(crate) fn sink_places(spec: &mut FileSinkSpec) -> Vec<(&'static str, Place, &mut String)> {
    vec![("path", Place::WriteDir, &mut spec.path)]
}
