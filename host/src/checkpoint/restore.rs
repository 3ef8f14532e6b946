//! Finding, verifying and applying a snapshot: the newest complete manifest whose files
//! all verify; per new subtask the old parts that hold its key groups; committing the
//! sinks' pending files; `rivulet savepoint inspect`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;

use super::manifest::{FORMAT, MANIFEST, Manifest, PendingFile, SinkEntry, SnapshotKind, SourceEntry, SubtaskState, VERSION};
use super::snapshot::{OperatorState, raw_key_group};
use super::subtask::kind_of;
use super::{CheckpointError, CheckpointStorage};
use crate::plugin::{StateEntry, StateValue, TimerService};
use crate::runtime::window::WindowOperator;
use crate::state::{KeyGroupRange, KeyedStateStore, RocksDbBackend, StateBackend, StateKind};

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
    if bytes.is_empty() {
        return Err(CheckpointError::Corrupt { path: root.url_of(&path), reason: "empty manifest".into() });
    }
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt { path: root.url_of(&path), reason: format!("not a manifest: {e}") })?;
    if m.format != FORMAT {
        return Err(CheckpointError::Corrupt { path: root.url_of(&path), reason: format!("format '{}' is not '{FORMAT}'", m.format) });
    }
    if m.version != VERSION {
        return Err(CheckpointError::UnsupportedVersion { path: root.url_of(&path), found: m.version, supported: VERSION });
    }
    Ok(m)
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

async fn verify(root: &CheckpointStorage, dir: &str, job: &str) -> Result<RestorePoint, CheckpointError> {
    let manifest = load_manifest(root, dir).await?;
    if manifest.job != job {
        return Err(CheckpointError::Mismatch(format!("{} belongs to job '{}', not '{job}'", root.url_of(dir), manifest.job)));
    }
    let mut files = HashMap::new();
    for f in manifest.files() {
        if !files.contains_key(&f.path) {
            let bytes = root.get_verified(f).await?;
            files.insert(f.path.clone(), bytes);
        }
    }
    for s in &manifest.sinks {
        if s.kafka.is_some() || s.objects.is_some() {
            // Kafka and object-storage sinks remove a spool file once it is committed: a
            // missing one was.
            continue;
        }
        for p in &s.pending {
            let dir = Path::new(&s.dir);
            if !dir.join(&p.hidden).exists() && !dir.join(&p.visible).exists() {
                return Err(CheckpointError::Corrupt {
                    path: dir.join(&p.hidden).display().to_string(),
                    reason: "a pending sink file of this checkpoint is missing".into(),
                });
            }
        }
    }
    Ok(RestorePoint { manifest, location: root.url_of(dir), skipped: Vec::new(), files })
}

/// The newest complete, verified snapshot of `job` under `root`, falling back past corrupt
/// ones (each reported in `skipped`). `None` when there is none at all.
pub async fn find_restore_point(root: &CheckpointStorage, job: &str) -> Result<Option<RestorePoint>, CheckpointError> {
    let mut skipped = Vec::new();
    let mut last_err = None;
    for (_, dir) in complete_snapshots(root).await? {
        match verify(root, &dir, job).await {
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
pub async fn open_snapshot(location: &str, job: &str) -> Result<(CheckpointStorage, RestorePoint), CheckpointError> {
    let loc = location.trim_end_matches('/');
    let (root_loc, dir) = match loc.rsplit_once('/') {
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
    let point = verify(&root, &dir, job).await?;
    Ok((root, point))
}

/// Make pending sink files visible (idempotent: a file already renamed is fine).
pub fn commit_pending(sinks: &[SinkEntry]) -> Result<u64, CheckpointError> {
    let mut n = 0;
    for s in sinks {
        let dir = Path::new(&s.dir);
        if let Some(k) = &s.kafka {
            n += crate::connectors::commit_kafka(k, dir, &s.pending)?;
            continue;
        }
        if let Some(o) = &s.objects {
            n += crate::connectors::commit_objects(o, dir, &s.pending)?;
            continue;
        }
        for PendingFile { hidden, visible } in &s.pending {
            let (h, v) = (dir.join(hidden), dir.join(visible));
            if h.exists() {
                std::fs::rename(&h, &v).map_err(|e| CheckpointError::Local(format!("commit {} → {}: {e}", h.display(), v.display())))?;
                n += 1;
            } else if !v.exists() {
                return Err(CheckpointError::Corrupt { path: h.display().to_string(), reason: "pending sink file vanished before commit".into() });
            }
        }
    }
    Ok(n)
}

/// State of old subtasks that a new subtask takes over.
#[derive(Debug, Default)]
pub struct OperatorRestore {
    /// Decoded canonical files of overlapping old subtasks, with their RocksDB files.
    pub parts: Vec<(OperatorState, Vec<(String, Bytes)>)>,
    /// The same subtask had finished (same parallelism only).
    pub finished: bool,
}

impl RestorePoint {
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
        Ok(Some(out))
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

/// Whether `parts` can be used as the new subtask's RocksDB directly (same key groups).
pub fn native_fast_path(parts: &[(OperatorState, Vec<(String, Bytes)>)], range: KeyGroupRange) -> bool {
    matches!(parts, [(st, db)] if !db.is_empty() && st.header.key_groups == (range.start, range.end)
        && st.header.states.iter().enumerate().all(|(i, d)| usize::from(d.id) == i))
}

/// Write RocksDB files into `dir` (for the fast path or a temporary scan).
pub fn write_db_files(dir: &Path, db: &[(String, Bytes)]) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|e| CheckpointError::Local(format!("{}: {e}", dir.display())))?;
    for (name, bytes) in db {
        std::fs::write(dir.join(name), bytes).map_err(|e| CheckpointError::Local(format!("{name}: {e}")))?;
    }
    Ok(())
}

/// One old state entry decoded for `migrate-state`.
fn decode_entry(names: &BTreeMap<u16, (String, StateKind)>, k: &[u8], v: &[u8]) -> Option<StateEntry> {
    let id = u16::from_be_bytes([*k.get(2)?, *k.get(3)?]);
    let klen = u32::from_be_bytes(k.get(4..8)?.try_into().ok()?) as usize;
    let key = k.get(8..8 + klen)?.to_vec();
    let rest = k.get(8 + klen..)?;
    let payload = v.get(8..)?.to_vec();
    let (name, kind) = names.get(&id)?;
    let value = match kind {
        StateKind::Value => StateValue::Value(payload),
        StateKind::List => {
            let mut items = Vec::new();
            let mut pos = 0;
            while pos < payload.len() {
                let n = u32::from_be_bytes(payload.get(pos..pos + 4)?.try_into().ok()?) as usize;
                items.push(payload.get(pos + 4..pos + 4 + n)?.to_vec());
                pos += 4 + n;
            }
            StateValue::List(items)
        }
        StateKind::Map => StateValue::MapEntry((rest.get(1..)?.to_vec(), payload)),
    };
    Some(StateEntry { state: name.clone(), key, value })
}

/// Write migrated entries into `store`.
pub fn write_entries(store: &mut KeyedStateStore, entries: Vec<StateEntry>, now_ms: i64) -> Result<(), String> {
    use crate::state::{CurrentKey, key_group};
    for e in entries {
        if e.state.starts_with("__rivulet") {
            return Err(format!("migrate-state returned the reserved state name '{}'", e.state));
        }
        let kind = match &e.value {
            StateValue::Value(_) => StateKind::Value,
            StateValue::List(_) => StateKind::List,
            StateValue::MapEntry(_) => StateKind::Map,
        };
        let id = store.declare(&e.state, kind, None).map_err(|err| err.to_string())?;
        let ck = CurrentKey { group: key_group(&e.key, store.max_parallelism()), key: Some(e.key) };
        let r = match e.value {
            StateValue::Value(v) => store.put(id, &ck, &v, now_ms),
            StateValue::List(items) => store.list_update(id, &ck, &items, now_ms),
            StateValue::MapEntry((uk, v)) => store.map_put(id, &ck, &uk, &v, now_ms),
        };
        r.map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// Apply the restored parts to a fresh subtask: entries of its key groups (ids remapped by
/// state name), timers, window timers. Entries of states whose version differs from
/// `state_version` are returned, decoded, for the guest's `migrate-state` instead.
/// Returns (watermark, entries to migrate with their old version).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    restore: &OperatorRestore,
    range: KeyGroupRange,
    store: &mut KeyedStateStore,
    already_native: bool,
    timers: &mut TimerService,
    mut window: Option<&mut WindowOperator>,
    state_version: u32,
    scratch: &Path,
) -> Result<(i64, Vec<(u32, Vec<StateEntry>)>), CheckpointError> {
    let mut watermark = i64::MAX;
    let mut migrate: Vec<(u32, Vec<StateEntry>)> = Vec::new();
    for (i, (part, db)) in restore.parts.iter().enumerate() {
        let h = &part.header;
        watermark = watermark.min(h.watermark);
        let needs_migration = h.state_version != state_version;
        let mut remap: HashMap<u16, u16> = HashMap::new();
        let mut names: BTreeMap<u16, (String, StateKind)> = BTreeMap::new();
        for d in &h.states {
            let kind = kind_of(&d.kind)
                .ok_or_else(|| CheckpointError::Corrupt { path: h.uid.clone(), reason: format!("unknown state kind '{}'", d.kind) })?;
            names.insert(d.id, (d.name.clone(), kind));
            if needs_migration && !d.name.starts_with("__rivulet") {
                continue;
            }
            let new = store.declare(&d.name, kind, d.ttl_ms).map_err(|e| CheckpointError::Mismatch(format!("operator '{}': {e}", h.uid)))?;
            remap.insert(d.id, new);
        }
        let mut to_migrate = Vec::new();
        if !already_native {
            let mut put = |k: &[u8], v: &[u8], store: &mut KeyedStateStore| -> Result<(), CheckpointError> {
                let Some(g) = raw_key_group(k) else {
                    return Ok(());
                };
                if !range.contains(g) || k.len() < 4 {
                    return Ok(());
                }
                let old = u16::from_be_bytes([k[2], k[3]]);
                match remap.get(&old) {
                    Some(new) => {
                        let mut key = k.to_vec();
                        key[2..4].copy_from_slice(&new.to_be_bytes());
                        store.put_raw(&key, v).map_err(|e| CheckpointError::Local(e.to_string()))
                    }
                    None => {
                        if let Some(e) = decode_entry(&names, k, v) {
                            to_migrate.push(e);
                        }
                        Ok(())
                    }
                }
            };
            if h.entries_in_db {
                let dir = scratch.join(format!("restore-{i}-{}", super::storage::UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
                write_db_files(&dir, db)?;
                let scanned = RocksDbBackend::open(&dir).and_then(|b| b.scan_prefix(&[])).map_err(|e| CheckpointError::Local(e.to_string()));
                let _ = std::fs::remove_dir_all(&dir);
                for (k, v) in scanned? {
                    put(&k, &v, store)?;
                }
            } else {
                for gs in part.groups.values() {
                    for (k, v) in &gs.entries {
                        put(k, v, store)?;
                    }
                }
            }
        }
        for (g, gs) in &part.groups {
            if !range.contains(*g) {
                continue;
            }
            for (event, ts, key) in &gs.timers {
                timers.insert(*event, *ts, key.clone());
            }
            if let Some(w) = window.as_deref_mut() {
                for t in &gs.window_timers {
                    w.restore_timer(t);
                }
            }
        }
        if let Some(w) = window.as_deref_mut() {
            w.restore_seq(h.window_seq);
        }
        if !to_migrate.is_empty() {
            migrate.push((h.state_version, to_migrate));
        }
    }
    Ok((if restore.parts.is_empty() { i64::MIN } else { watermark }, migrate))
}

/// A human-readable account of a snapshot (`rivulet savepoint inspect`).
pub async fn inspect(location: &str, entries: bool) -> Result<String, CheckpointError> {
    let loc = location.trim_end_matches('/');
    let (root_loc, dir) = match loc.rsplit_once('/') {
        Some((parent, name)) if name.starts_with("sp-") && parent.ends_with("/savepoints") => {
            (parent.trim_end_matches("/savepoints").to_owned(), format!("savepoints/{name}"))
        }
        Some((parent, name)) => (parent.to_owned(), name.to_owned()),
        None => (".".to_owned(), loc.to_owned()),
    };
    let root = CheckpointStorage::open(&root_loc)?;
    let m = load_manifest(&root, &dir).await?;
    let mut out = String::new();
    let kind = match m.kind {
        SnapshotKind::Checkpoint => "checkpoint",
        SnapshotKind::Savepoint => "savepoint",
    };
    let _ = writeln!(
        out,
        "{kind} {} of job '{}' (format {} v{}), max parallelism {}{}",
        m.id,
        m.job,
        m.format,
        m.version,
        m.max_parallelism,
        if m.finished { ", job finished" } else { "" }
    );
    for o in &m.operators {
        let _ = writeln!(
            out,
            "operator {}: plugin {} digest {}, parallelism {}, state version {}",
            o.uid, o.plugin, o.plugin_digest, o.parallelism, o.state_version
        );
        for st in &o.subtasks {
            let Some(f) = &st.state else { continue };
            let bytes = root.get_verified(f).await?;
            let s = OperatorState::decode(&bytes, &f.path)?;
            let mut per_state: BTreeMap<String, u64> = BTreeMap::new();
            let names: BTreeMap<u16, (String, StateKind)> =
                s.header.states.iter().filter_map(|d| Some((d.id, (d.name.clone(), kind_of(&d.kind)?)))).collect();
            let mut timers = 0;
            for gs in s.groups.values() {
                timers += gs.timers.len() + gs.window_timers.len();
                for (k, _) in &gs.entries {
                    if k.len() >= 4 {
                        let id = u16::from_be_bytes([k[2], k[3]]);
                        *per_state.entry(names.get(&id).map_or_else(|| format!("#{id}"), |n| n.0.clone())).or_default() += 1;
                    }
                }
            }
            let _ = writeln!(
                out,
                "  subtask {} key groups {}..{}: {} key groups with data, {} timers{}{}",
                st.subtask,
                st.key_groups.0,
                st.key_groups.1,
                s.groups.len(),
                timers,
                if st.finished { ", finished" } else { "" },
                if s.header.entries_in_db { format!(", entries in {} RocksDB files", st.db.len()) } else { String::new() }
            );
            for d in &s.header.states {
                let _ = writeln!(
                    out,
                    "    state {} ({}{}): {} entries",
                    d.name,
                    d.kind,
                    d.ttl_ms.map(|t| format!(", ttl {t} ms")).unwrap_or_default(),
                    per_state.get(&d.name).copied().unwrap_or(0)
                );
            }
            if entries {
                for (g, gs) in &s.groups {
                    for (k, v) in &gs.entries {
                        if let Some(e) = decode_entry(&names, k, v) {
                            let _ = writeln!(out, "    [group {g}] {}", describe(&e));
                        }
                    }
                }
            }
        }
    }
    for s in &m.sources {
        let _ = writeln!(out, "source {}[{}/{}]: {:?}", s.id, s.subtask, s.parallelism, s.position);
    }
    for s in &m.sinks {
        let _ = writeln!(out, "sink {}[{}]: {} pending file(s) in {}, next part {}", s.id, s.subtask, s.pending.len(), s.dir, s.next_seq);
    }
    let _ = writeln!(out, "files: {} ({} bytes)", m.files().count(), m.files().map(|f| f.size).sum::<u64>());
    Ok(out)
}

fn describe(e: &StateEntry) -> String {
    let key = String::from_utf8_lossy(&e.key);
    match &e.value {
        StateValue::Value(v) => format!("{}[{key}] = {}", e.state, String::from_utf8_lossy(v)),
        StateValue::List(items) => {
            let items: Vec<_> = items.iter().map(|i| String::from_utf8_lossy(i).into_owned()).collect();
            format!("{}[{key}] = [{}]", e.state, items.join(", "))
        }
        StateValue::MapEntry((k, v)) => format!("{}[{key}][{}] = {}", e.state, String::from_utf8_lossy(k), String::from_utf8_lossy(v)),
    }
}
