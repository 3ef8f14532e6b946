//! Finding and verifying the snapshot a run starts from: the newest complete manifest
//! whose files all verify (size and sha256) and whose sinks' transactions are still
//! there, falling back past corrupt ones; and what it holds per operator, source and sink.

use std::collections::HashMap;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use rivulet_dataflow::KeyGroupRange;
use rivulet_state::BroadcastState;

use crate::commit::Committers;
use crate::manifest::{MANIFEST, Manifest, SinkEntry, SourceEntry, SubtaskState};
use crate::restore::OperatorRestore;
use crate::snapshot::OperatorState;
use crate::{CheckpointError, CheckpointStorage};

/// A verified snapshot to start from.
#[derive(Debug)]
pub struct RestorePoint {
    /// Its manifest.
    pub manifest: Manifest,
    /// Where it is (for messages).
    pub location: String,
    /// Newer snapshots skipped because they failed verification, with the reason.
    pub skipped: Vec<String>,
    files: HashMap<String, Bytes>,
}

/// Read and check the manifest of the snapshot directory `dir` (relative to `root`).
pub async fn load_manifest(root: &CheckpointStorage, dir: &str) -> Result<Manifest, CheckpointError> {
    let path = format!("{dir}/{MANIFEST}");
    let bytes = root.get(&path).await?;
    Manifest::parse(&bytes, &root.url_of(&path))
}

/// Snapshot directories under `root` that have a manifest, newest (highest id) first.
pub async fn complete_snapshots(root: &CheckpointStorage) -> Result<Vec<(u64, String)>, CheckpointError> {
    let mut out = Vec::new();
    for (p, _) in root.list("").await? {
        let Some(dir) = p.strip_suffix(&format!("/{MANIFEST}")) else {
            continue;
        };
        let name = dir.rsplit('/').next().unwrap_or(dir);
        let id = name.strip_prefix("chk-").or_else(|| name.strip_prefix("sp-")).and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id {
            out.push((id, dir.to_owned()));
        }
    }
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

/// How many files of a snapshot are read and verified at once.
const PARALLEL_READS: usize = 4;

async fn verify(root: &CheckpointStorage, dir: &str, job: &str, committers: &Committers) -> Result<RestorePoint, CheckpointError> {
    let manifest = load_manifest(root, dir).await?;
    if manifest.job != job {
        return Err(CheckpointError::Mismatch(format!("{} belongs to job '{}', not '{job}'", root.url_of(dir), manifest.job)));
    }
    // Several files at a time: reading and hashing a large RocksDB state one file after
    // another left a core idle.
    let mut wanted: Vec<_> = manifest.files().collect();
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    wanted.dedup_by(|a, b| a.path == b.path);
    // Owned futures (a clone of the store each), so no borrow is held across the reads.
    let reads: Vec<_> = wanted
        .into_iter()
        .map(|f| {
            let (root, entry, path) = (root.clone(), manifest.relocated(f, dir), f.path.clone());
            async move { root.get_verified(&entry).await.map(|bytes| (path, bytes)) }
        })
        .collect();
    let files: HashMap<String, Bytes> = futures::stream::iter(reads).buffered(PARALLEL_READS).try_collect().await?;
    committers.verify_all(&manifest.sinks)?;
    Ok(RestorePoint { manifest, location: root.url_of(dir), skipped: Vec::new(), files })
}

/// The newest complete, verified snapshot of `job` under `root` (sinks' transactions
/// checked by `committers`), falling back past corrupt
/// ones (each reported in `skipped`). `None` when there is none at all.
pub async fn find_restore_point(root: &CheckpointStorage, job: &str, committers: &Committers) -> Result<Option<RestorePoint>, CheckpointError> {
    let mut skipped = Vec::new();
    let mut last_err = None;
    for (_, dir) in complete_snapshots(root).await? {
        match verify(root, &dir, job, committers).await {
            Ok(mut p) => {
                p.skipped = skipped;
                return Ok(Some(p));
            }
            Err(e @ (CheckpointError::Corrupt { .. } | CheckpointError::UnsupportedVersion { .. })) => {
                tracing::warn!(snapshot = %root.url_of(&dir), error = %e, "skipping a snapshot that does not verify");
                eprintln!("[rivulet] warning: {e}; falling back to the previous checkpoint");
                skipped.push(e.to_string());
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Open the snapshot at `location` (a `chk-…` or `savepoints/sp-…` directory, local or
/// `s3://`), verified. Returns the job root it belongs to and the point.
pub async fn open_snapshot(location: &str, job: &str, committers: &Committers) -> Result<(CheckpointStorage, RestorePoint), CheckpointError> {
    check_local_snapshot(location).await?;
    let loc = location.trim_end_matches('/');
    let (root_loc, dir) = match loc.rsplit_once('/') {
        // `/name`: a directory of the file system's root.
        Some(("", name)) => ("/".to_owned(), name.to_owned()),
        Some((parent, name)) if name.starts_with("sp-") => match parent.strip_suffix("/savepoints") {
            Some(root) => (root.to_owned(), format!("savepoints/{name}")),
            None => (parent.to_owned(), name.to_owned()),
        },
        Some((parent, name)) => (parent.to_owned(), name.to_owned()),
        None => (".".to_owned(), loc.to_owned()),
    };
    let root = CheckpointStorage::open(&root_loc)?;
    if !root.exists(&format!("{dir}/{MANIFEST}")).await? {
        return Err(CheckpointError::NotFound(format!("{location} (no {MANIFEST}: the snapshot is incomplete or not one)")));
    }
    let point = verify(&root, &dir, job, committers).await?;
    Ok((root, point))
}

/// A local restore location must be a directory holding a manifest: anything else (a
/// missing path, a file, a directory such as `/etc`) is refused at once, naming the path,
/// as an error no restart can mend ([`CheckpointError::NotFound`]), before the store
/// is opened (whose errors would read as storage failures worth retrying).
async fn check_local_snapshot(location: &str) -> Result<(), CheckpointError> {
    if location.starts_with("s3://") {
        return Ok(());
    }
    let path = std::path::Path::new(location.strip_prefix("file://").unwrap_or(location));
    let why = match tokio::fs::metadata(path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such directory".to_owned(),
        Err(e) => format!("cannot read it: {e}"),
        Ok(m) if !m.is_dir() => "it is not a directory".to_owned(),
        Ok(_) => match tokio::fs::metadata(path.join(MANIFEST)).await {
            Ok(m) if m.is_file() => return Ok(()),
            _ => format!("no {MANIFEST} found in it"),
        },
    };
    Err(CheckpointError::NotFound(format!(
        "{location}: it is not a checkpoint or savepoint ({why}; restore from a chk-<n> directory of a checkpoint location or a savepoints/sp-<n> directory, each holding a {MANIFEST})"
    )))
}

impl RestorePoint {
    /// A restore point over files already read and verified by the caller (path in the
    /// manifest → bytes), e.g. by a tool or a test; `location` names it in messages.
    pub fn in_memory(manifest: Manifest, location: String, files: HashMap<String, Bytes>) -> Self {
        RestorePoint { manifest, location, skipped: Vec::new(), files }
    }

    fn file(&self, path: &str) -> Result<Bytes, CheckpointError> {
        self.files.get(path).cloned().ok_or_else(|| CheckpointError::Corrupt { path: path.to_owned(), reason: "not listed".into() })
    }

    /// The state subtask `subtask` of `parallelism` of operator `uid` starts from.
    pub fn operator(&self, uid: &str, subtask: u32, parallelism: u32) -> Result<Option<OperatorRestore>, CheckpointError> {
        let Some(op) = self.manifest.operators.iter().find(|o| o.uid == uid) else {
            return Ok(None);
        };
        let range = KeyGroupRange::for_subtask(subtask, parallelism, self.manifest.max_parallelism);
        let mut out = OperatorRestore::default();
        for st in &op.subtasks {
            if op.parallelism == parallelism && st.subtask == subtask && st.finished {
                out.finished = true;
            }
            if st.key_groups.1 <= range.start || st.key_groups.0 >= range.end {
                continue;
            }
            // A subtask that had finished its input holds no state: it will never
            // process again (its inputs are finished too) and had fired all its timers.
            if st.finished && st.state.is_none() {
                continue;
            }
            out.parts.push(self.part(st)?);
        }
        // Broadcast state is stored once, with the old subtask 0 (which holds key group 0
        // and so is among the parts of the new subtask 0 only): every subtask reads it.
        for (state, _) in &out.parts {
            if !state.broadcast.is_empty() {
                out.broadcast = Some(broadcast_of(state));
            }
        }
        if out.broadcast.is_none()
            && let Some(first) = op.subtasks.iter().find(|st| st.subtask == 0 && st.state.is_some())
            && st_overlaps_none(first, range)
        {
            let state = self.state_file(first)?;
            if !state.broadcast.is_empty() {
                out.broadcast = Some(broadcast_of(&state));
            }
        }
        Ok(Some(out))
    }

    /// A subtask's state file alone (its RocksDB files are not needed for what it says
    /// outside the key groups).
    fn state_file(&self, st: &SubtaskState) -> Result<OperatorState, CheckpointError> {
        let Some(f) = &st.state else {
            return Err(CheckpointError::Corrupt { path: self.location.clone(), reason: format!("subtask {} has no state file", st.subtask) });
        };
        OperatorState::decode(&self.file(&f.path)?, &f.path)
    }

    fn part(&self, st: &SubtaskState) -> Result<(OperatorState, Vec<(String, Bytes)>), CheckpointError> {
        let Some(f) = &st.state else {
            return Err(CheckpointError::Corrupt { path: self.location.clone(), reason: format!("subtask {} has no state file", st.subtask) });
        };
        let state = OperatorState::decode(&self.file(&f.path)?, &f.path)?;
        let mut db = Vec::new();
        for d in &st.db {
            db.push((d.name.clone(), self.file(&d.file.path)?));
        }
        Ok((state, db))
    }

    /// Uids with state in the snapshot.
    pub fn operator_uids(&self) -> impl Iterator<Item = &str> {
        self.manifest.operators.iter().map(|o| o.uid.as_str())
    }

    /// The position of source `id` subtask `subtask`, checking the parallelism matches.
    pub fn source(&self, id: &str, subtask: u32, parallelism: u32) -> Result<Option<&SourceEntry>, CheckpointError> {
        let mut found = None;
        for s in self.manifest.sources.iter().filter(|s| s.id == id) {
            if s.parallelism != parallelism {
                return Err(CheckpointError::Mismatch(format!(
                    "source '{id}' had parallelism {} in the snapshot and has {parallelism} now; sources cannot be rescaled",
                    s.parallelism
                )));
            }
            if s.subtask == subtask {
                found = Some(s);
            }
        }
        Ok(found)
    }

    /// Every subtask's entry of source `id`, whatever the parallelism then (sources that
    /// can be rescaled, like Kafka's, merge them).
    pub fn source_entries(&self, id: &str) -> Vec<&SourceEntry> {
        self.manifest.sources.iter().filter(|s| s.id == id).collect()
    }

    /// The sink entry of `id` subtask `subtask`.
    pub fn sink(&self, id: &str, subtask: u32) -> Option<&SinkEntry> {
        self.manifest.sinks.iter().find(|s| s.id == id && s.subtask == subtask)
    }
}

/// Whether the old subtask `st` holds none of the key groups of `range` (so it is not
/// among a new subtask's parts).
fn st_overlaps_none(st: &SubtaskState, range: KeyGroupRange) -> bool {
    st.key_groups.1 <= range.start || st.key_groups.0 >= range.end
}

/// The broadcast state a state file holds.
fn broadcast_of(state: &OperatorState) -> BroadcastState {
    let mut b = BroadcastState::default();
    for (name, k, v) in &state.broadcast {
        b.insert(name, k.clone(), v.clone());
    }
    b
}
