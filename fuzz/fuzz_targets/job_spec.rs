//! A job spec as a client sends it (YAML or JSON text, with params): parsing and
//! validating it returns a spec, a graph or an error naming the part at fault, and
//! never panics, however deep, large or odd the input.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rivulet_job::{JobGraph, JobSpec, Params};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let params = Params::new(BTreeMap::from([("input".to_owned(), "in.jsonl".to_owned()), ("n".to_owned(), "7".to_owned())]));
    if let Ok(spec) = JobSpec::parse(text, "fuzz", &params) {
        let _ = JobGraph::build(&spec, Path::new("/nonexistent"), None);
        let _ = JobGraph::build(&spec, Path::new("/nonexistent"), Some(3));
    }
});
