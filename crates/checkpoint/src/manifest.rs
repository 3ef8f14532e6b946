//! The manifest: the one file that makes a checkpoint or savepoint complete. It is
//! written last; it lists every file of the snapshot with size and sha256, the state
//! of every operator subtask, the position of every source and the transaction of every
//! sink. Sources' positions and sinks' transactions are opaque here: each connector
//! encodes and decodes its own. Documented in `docs/checkpoints.md`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::CheckpointError;
pub use rivulet_dataflow::SnapshotKind;

/// The manifest's `format` value.
pub const FORMAT: &str = "rivulet-snapshot";
/// The manifest format version this host writes and reads.
pub const VERSION: u32 = 1;
/// The manifest's file name inside a checkpoint or savepoint directory.
pub const MANIFEST: &str = "_manifest.json";

/// A file of a snapshot, relative to the job's checkpoint root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the job's root (`chk-…/…`, `shared/…`, `savepoints/…`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256, hex.
    pub sha256: String,
}

/// A complete checkpoint or savepoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Id, increasing within a job's root.
    pub id: u64,
    /// The job's name.
    pub job: String,
    /// Wall-clock time the snapshot completed, ms since the epoch.
    pub created_ms: i64,
    /// Every task had finished its input: restoring commits the sinks and ends the job.
    pub finished: bool,
    /// Key groups of the job.
    pub max_parallelism: u16,
    /// Operator state.
    pub operators: Vec<OperatorEntry>,
    /// Source positions.
    pub sources: Vec<SourceEntry>,
    /// Sink transactions to commit.
    pub sinks: Vec<SinkEntry>,
}

impl Manifest {
    /// Parse and check manifest bytes read from `path` (named in errors): the JSON, the
    /// format and version, and that every number and name is one a restore can use —
    /// key groups within `max_parallelism`, subtasks below their parallelism, file paths
    /// relative to the job's root without `..`, RocksDB file names plain file names (they
    /// are written into a local directory on restore). A manifest that passes cannot make
    /// a restore panic or touch a file outside the snapshot's storage.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Manifest, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::Corrupt { path: path.to_owned(), reason };
        if bytes.is_empty() {
            return Err(corrupt("empty manifest".into()));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a manifest: {e}")))?;
        if m.format != FORMAT {
            return Err(corrupt(format!("format '{}' is not '{FORMAT}'", m.format)));
        }
        if m.version != VERSION {
            return Err(CheckpointError::UnsupportedVersion { path: path.to_owned(), found: m.version, supported: VERSION });
        }
        m.check().map_err(corrupt)?;
        Ok(m)
    }

    /// The semantic checks of [`Manifest::parse`].
    fn check(&self) -> Result<(), String> {
        let max = u32::from(self.max_parallelism);
        if max == 0 {
            return Err("max_parallelism is 0".into());
        }
        for op in &self.operators {
            let uid = &op.uid;
            if op.parallelism == 0 || op.parallelism > max {
                return Err(format!("operator '{uid}': parallelism {} is not in 1..={max}", op.parallelism));
            }
            for st in &op.subtasks {
                if st.subtask >= op.parallelism {
                    return Err(format!("operator '{uid}': subtask {} of parallelism {}", st.subtask, op.parallelism));
                }
                let (start, end) = st.key_groups;
                if start > end || u32::from(end) > max {
                    return Err(format!("operator '{uid}' subtask {}: key groups [{start}, {end}) outside [0, {max})", st.subtask));
                }
                for db in &st.db {
                    if !is_plain_file_name(&db.name) {
                        return Err(format!("operator '{uid}' subtask {}: RocksDB file name {:?} is not a plain file name", st.subtask, db.name));
                    }
                }
            }
        }
        for s in &self.sources {
            if s.parallelism == 0 || s.subtask >= s.parallelism {
                return Err(format!("source '{}': subtask {} of parallelism {}", s.id, s.subtask, s.parallelism));
            }
        }
        for f in self.files() {
            if !is_relative_path(&f.path) {
                return Err(format!("file path {:?} is not relative to the job's root", f.path));
            }
        }
        Ok(())
    }

    /// Every state file the manifest references.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.operators.iter().flat_map(|o| o.subtasks.iter()).flat_map(|s| s.state.iter().chain(s.db.iter().map(|d| &d.file)))
    }

    /// Where `file` is when this snapshot's directory was found at `dir` (relative to
    /// the root it was opened under): a file inside the snapshot's own directory moves
    /// with it, so a savepoint copied or moved as a whole still opens; a file shared
    /// between checkpoints (`shared/…`) stays relative to the job's root.
    pub fn relocated(&self, file: &FileEntry, dir: &str) -> FileEntry {
        let own = format!("{}/", crate::snapshot_dir(self.kind, self.id));
        match file.path.strip_prefix(&own) {
            Some(rest) if dir.trim_end_matches('/') != own.trim_end_matches('/') => {
                FileEntry { path: format!("{}/{rest}", dir.trim_end_matches('/')), ..file.clone() }
            }
            _ => file.clone(),
        }
    }
}

/// One operator's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    /// The operator's uid (how state is matched on restore).
    pub uid: String,
    /// The plugin it ran, as `name (sha256:…)`.
    pub plugin: String,
    /// The plugin's digest.
    pub plugin_digest: String,
    /// Parallelism when the snapshot was taken.
    pub parallelism: u32,
    /// The operator's `state-version()`.
    pub state_version: u32,
    /// Per subtask.
    pub subtasks: Vec<SubtaskState>,
}

/// One operator subtask's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubtaskState {
    /// Subtask index.
    pub subtask: u32,
    /// Key groups `[start, end)` it owned.
    pub key_groups: (u16, u16),
    /// The subtask had finished (closed): on restore it is not run again.
    pub finished: bool,
    /// The canonical state file (entries by key group, timers, declared states); for
    /// RocksDB checkpoints it holds everything but the entries, which are in `db`.
    pub state: Option<FileEntry>,
    /// RocksDB files (incremental checkpoints): SST files under `shared/`, the rest private.
    #[serde(default)]
    pub db: Vec<DbFile>,
}

/// A RocksDB file of a subtask's checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbFile {
    /// Its name in the database directory.
    pub name: String,
    /// Where it is stored.
    pub file: FileEntry,
}

/// Where a source subtask was.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// Source id.
    pub id: String,
    /// Subtask.
    pub subtask: u32,
    /// Parallelism.
    pub parallelism: u32,
    /// Position.
    pub position: SourcePosition,
}

/// A source's position: what it had emitted before the barrier. Opaque to the protocol
/// but for one value, "finished"; each source encodes its own (as `{"<kind>": {…}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourcePosition(serde_json::Value);

const FINISHED: &str = "finished";

impl SourcePosition {
    /// The source had finished.
    pub fn finished() -> Self {
        SourcePosition(serde_json::Value::String(FINISHED.into()))
    }

    /// Whether the source had finished.
    pub fn is_finished(&self) -> bool {
        self.0.as_str() == Some(FINISHED)
    }

    /// A source's own position.
    pub fn encode<T: Serialize>(position: &T) -> Self {
        SourcePosition(serde_json::to_value(position).unwrap_or(serde_json::Value::Null))
    }

    /// Decode a source's own position (`Err` names what it is instead).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CheckpointError> {
        serde_json::from_value(self.0.clone()).map_err(|e| CheckpointError::Mismatch(format!("cannot resume from source position {}: {e}", self.0)))
    }
}

impl std::fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A sink subtask's part of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkEntry {
    /// Sink id.
    pub id: String,
    /// Subtask.
    pub subtask: u32,
    /// The sink had finished.
    pub finished: bool,
    /// What the sink's committer makes visible once the snapshot completes (its fields
    /// are the sink's own).
    #[serde(flatten)]
    pub transaction: SinkTransaction,
}

/// A sink's transaction: opaque fields only its connector reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkTransaction {
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

impl SinkTransaction {
    /// No transaction (a sink that flushes at barriers and commits nothing).
    pub fn none() -> Self {
        SinkTransaction::default()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// A sink's own transaction (a struct: its fields become the entry's).
    pub fn encode<T: Serialize>(transaction: &T) -> Result<Self, CheckpointError> {
        match serde_json::to_value(transaction) {
            Ok(serde_json::Value::Object(fields)) => Ok(SinkTransaction { fields }),
            Ok(other) => Err(CheckpointError::Local(format!("a sink transaction must be an object, not {other}"))),
            Err(e) => Err(CheckpointError::Local(format!("encoding a sink transaction: {e}"))),
        }
    }

    /// Decode a sink's own transaction.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CheckpointError> {
        serde_json::from_value(serde_json::Value::Object(self.fields.clone()))
            .map_err(|e| CheckpointError::Corrupt { path: "sink transaction".into(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum FilePosition {
        File { offset: u64 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Parts {
        dir: String,
        next_seq: u64,
    }

    #[test]
    fn positions_and_transactions_keep_the_connectors_format() {
        let p = SourcePosition::encode(&FilePosition::File { offset: 7 });
        assert_eq!(serde_json::to_string(&p).expect("json"), r#"{"file":{"offset":7}}"#);
        assert_eq!(p.decode::<FilePosition>().expect("decode"), FilePosition::File { offset: 7 });
        assert!(!p.is_finished() && SourcePosition::finished().is_finished());
        assert_eq!(serde_json::to_string(&SourcePosition::finished()).expect("json"), r#""finished""#);
        let entry = SinkEntry {
            id: "out".into(),
            subtask: 0,
            finished: false,
            transaction: SinkTransaction::encode(&Parts { dir: "/d".into(), next_seq: 3 }).expect("encode"),
        };
        let json = serde_json::to_string(&entry).expect("json");
        assert_eq!(json, r#"{"id":"out","subtask":0,"finished":false,"dir":"/d","next_seq":3}"#);
        let back: SinkEntry = serde_json::from_str(&json).expect("back");
        assert_eq!(back.transaction.decode::<Parts>().expect("parts"), Parts { dir: "/d".into(), next_seq: 3 });
    }
}

/// A name that stays inside the directory it is joined to.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// A `/`-separated path below the job's root: no leading `/`, no empty, `.` or `..`
/// segment.
fn is_relative_path(path: &str) -> bool {
    !path.is_empty() && !path.contains(['\\', '\0']) && path.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    fn manifest_with(subtask: &str) -> String {
        format!(
            r#"{{"format":"rivulet-snapshot","version":1,"kind":"savepoint","id":1,"job":"j","created_ms":0,"finished":false,
               "max_parallelism":8,"operators":[{{"uid":"op","plugin":"p","plugin_digest":"sha256:0","parallelism":2,
               "state_version":1,"subtasks":[{subtask}]}}],"sources":[],"sinks":[]}}"#
        )
    }

    fn reason(json: &str) -> String {
        match Manifest::parse(json.as_bytes(), "sp/_manifest.json") {
            Err(CheckpointError::Corrupt { reason, .. }) => reason,
            other => panic!("expected a corrupt manifest, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_manifest_parses() {
        let ok = manifest_with(
            r#"{"subtask":1,"key_groups":[4,8],"finished":false,"state":{"path":"savepoints/sp-0000000001/op/1/state.bin","size":1,"sha256":"00"},
                "db":[{"name":"000012.sst","file":{"path":"shared/op/x/000012.sst","size":1,"sha256":"00"}}]}"#,
        );
        let m = Manifest::parse(ok.as_bytes(), "sp/_manifest.json").expect("parses");
        assert_eq!(m.files().count(), 2);
    }

    #[test]
    fn a_manifest_cannot_name_files_outside_the_snapshot_storage() {
        let db_escape = manifest_with(
            r#"{"subtask":0,"key_groups":[0,4],"finished":false,"state":null,
                "db":[{"name":"../../etc/cron.d/x","file":{"path":"shared/x","size":1,"sha256":"00"}}]}"#,
        );
        assert!(reason(&db_escape).contains("not a plain file name"), "{}", reason(&db_escape));
        for path in ["/etc/passwd", "shared/../../x", "", "a//b"] {
            let abs =
                manifest_with(&format!(r#"{{"subtask":0,"key_groups":[0,4],"finished":false,"state":{{"path":"{path}","size":1,"sha256":"00"}}}}"#));
            assert!(reason(&abs).contains("is not relative"), "{path}: {}", reason(&abs));
        }
    }

    #[test]
    fn a_manifest_with_impossible_numbers_is_corrupt() {
        let beyond = manifest_with(r#"{"subtask":0,"key_groups":[4,9],"finished":false,"state":null}"#);
        assert!(reason(&beyond).contains("key groups [4, 9)"), "{}", reason(&beyond));
        let subtask = manifest_with(r#"{"subtask":2,"key_groups":[0,4],"finished":false,"state":null}"#);
        assert!(reason(&subtask).contains("subtask 2 of parallelism 2"), "{}", reason(&subtask));
        let zero = manifest_with("").replace(r#""max_parallelism":8"#, r#""max_parallelism":0"#);
        assert!(reason(&zero).contains("max_parallelism is 0"));
        assert!(reason("").contains("empty"));
    }
}
