//! What building a connector needs besides its spec.

use std::path::PathBuf;

/// The job a connector belongs to.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    /// The job's name (default consumer groups, transactional ids, spool folders).
    pub job: String,
    /// Directory relative paths of the spec resolve against.
    pub base_dir: PathBuf,
    /// The run's data directory (spool folders live below it).
    pub data_dir: PathBuf,
    /// The largest record a source may produce, in bytes.
    pub max_record_bytes: usize,
}

impl ConnectorContext {
    /// `p` resolved against the spec's directory unless absolute.
    pub fn resolve(&self, p: &str) -> PathBuf {
        rivulet_job::resolve_path(&self.base_dir, p)
    }

    /// An objects location of the spec (a directory, `file:///…` or `s3://…`) resolved
    /// against the spec's directory, as its canonical text (an absolute path or
    /// `s3://bucket/prefix`) — never left relative to the process's working directory.
    /// A location that does not parse is returned as written: opening it says why.
    pub fn location(&self, url: &str) -> String {
        rivulet_checkpoint::Location::parse(url, &self.base_dir).map_or_else(|_| url.to_owned(), |l| l.to_string())
    }

    /// A spool folder `<data dir>/<kind>/<job>/<sink id>`, unless the spec names one.
    pub fn spool_dir(&self, kind: &str, sink: &str, configured: Option<&str>) -> PathBuf {
        match configured {
            Some(d) => self.resolve(d),
            None => self.data_dir.join(kind).join(rivulet_job::file_safe(&self.job)).join(sink),
        }
    }
}
