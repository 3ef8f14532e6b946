//! Files on object storage — any `object_store` location: a local directory,
//! `file://…`, or `s3://bucket/prefix` (credentials and endpoint from the standard AWS
//! variables) — in JSON lines or Parquet.
//!
//! **Sink**: the file sink's two-phase commit with an upload as the commit step. Values
//! are spooled into local part files (rolled by size and by time, and closed at every
//! barrier); when the checkpoint covering a part file completes, the coordinator uploads
//! it as `part-<subtask>-<seq>.jsonl` (or converts it to `.parquet`: schema inferred from
//! the JSON values) and removes the spool file. An upload is a single PUT — objects
//! appear whole — and the same part file always becomes the same object, so a commit
//! repeated after a crash overwrites an object with identical bytes: exactly-once.
//!
//! **Source** (bounded): the objects under the location, in name order, read whole;
//! Parquet rows become JSON objects. Its position in checkpoints is the object's name
//! and the records emitted from it.

mod parquet;
mod sink;
mod source;

pub(crate) use sink::{ObjectSinkConnector, committer_for};
pub(crate) use source::ObjectSourceConnector;

use rivulet_job::{ObjectSinkSpec, ObjectSourceSpec};

use crate::access::Place;

/// An objects source reads its location.
pub(crate) fn source_places(spec: &mut ObjectSourceSpec) -> Vec<(&'static str, Place, &mut String)> {
    vec![("url", Place::Objects { writes: false }, &mut spec.url)]
}

/// An objects sink writes its location, and spools below its spool directory.
pub(crate) fn sink_places(spec: &mut ObjectSinkSpec) -> Vec<(&'static str, Place, &mut String)> {
    let mut out = vec![("url", Place::Objects { writes: true }, &mut spec.url)];
    out.extend(spec.spool_dir.as_mut().map(|d| ("spool_dir", Place::WriteDir, d)));
    out
}
