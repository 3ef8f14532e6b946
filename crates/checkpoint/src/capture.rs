//! One operator subtask's part of a snapshot: captured synchronously at the barrier,
//! uploaded in the background.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use rivulet_dataflow::Barrier;
use rivulet_state::{BroadcastState, FrozenEntries, KeyGroupRange, KeyedStateStore, StateError, TimerService, key_group, layout};

use crate::manifest::{DbFile, SubtaskState};
use crate::report::TaskCheckpointing;
use crate::snapshot::{GroupState, OperatorState, StateDecl, StateHeader, TimerEntry, WindowTimer};
use crate::{CheckpointError, SnapshotKind, snapshot_dir};

/// Who a subtask is, as recorded in its snapshot.
#[derive(Debug, Clone)]
pub struct SubtaskMeta {
    /// Operator uid.
    pub uid: String,
    /// Plugin label.
    pub plugin: String,
    /// Plugin digest.
    pub plugin_digest: String,
    /// Subtask index.
    pub subtask: u32,
    /// Parallelism.
    pub parallelism: u32,
    /// Key groups of the job.
    pub max_parallelism: u16,
    /// Its key groups.
    pub range: KeyGroupRange,
    /// The guest's state version.
    pub state_version: u32,
    /// Unique id of this backend instance (names its RocksDB files in `shared/`).
    pub instance: String,
}

/// RocksDB files this subtask has uploaded: local name → (stored file, snapshot id).
pub type UploadedFiles = Arc<Mutex<HashMap<String, (DbFile, u64)>>>;

/// A snapshot taken at the barrier, not yet uploaded.
#[derive(Debug)]
pub struct Captured {
    header: StateHeader,
    groups: BTreeMap<u16, GroupState>,
    broadcast: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// A RocksDB checkpoint directory (hard links) holding the entries, if native.
    db_dir: Option<PathBuf>,
    /// The entries, frozen in constant time (memory backend): encoded by the upload.
    frozen: Option<FrozenEntries>,
}

/// What a subtask's host operators (windows, joins, broadcast inputs) add to its
/// snapshot: their timers, their record counter and the broadcast state to store (only
/// subtask 0 stores it: every subtask holds the same).
#[derive(Debug, Default)]
pub struct HostParts {
    /// Host timers (of every kind), any key group.
    pub timers: Vec<WindowTimer>,
    /// The record sequence counter.
    pub seq: u64,
    /// Broadcast state to store with this subtask.
    pub broadcast: Option<BroadcastState>,
}

/// Capture the subtask's state: timers and host timers always; entries frozen (memory
/// backend: a copy-on-write snapshot, grouped and encoded later by [`upload`]), copied
/// (RocksDB savepoints and full checkpoints) or as a RocksDB checkpoint in `native_dir`.
pub fn capture(
    meta: &SubtaskMeta,
    store: &KeyedStateStore,
    timers: &TimerService,
    host: HostParts,
    watermark: i64,
    native_dir: Option<&Path>,
) -> Result<Captured, StateError> {
    let states = store
        .descriptors()
        .iter()
        .enumerate()
        .map(|(i, d)| StateDecl { id: i as u16, name: d.name.clone(), kind: d.kind, ttl_ms: d.ttl_ms })
        .collect();
    let mut groups: BTreeMap<u16, GroupState> = BTreeMap::new();
    let mut frozen = None;
    let db_dir = match native_dir {
        Some(dir) if store.native_checkpoint(dir)? => Some(dir.to_path_buf()),
        _ => {
            match store.frozen() {
                Some(f) => frozen = Some(f),
                None => group_entries(&mut groups, store.scan_all()?),
            }
            None
        }
    };
    let mp = store.max_parallelism();
    for (domain, time, key) in timers.iter() {
        groups.entry(key_group(key, mp)).or_default().timers.push(TimerEntry { domain, time, key: key.to_vec() });
    }
    let HostParts { timers: wtimers, seq: window_seq, broadcast } = host;
    let broadcast = broadcast.map(|b| b.entries().map(|(n, k, v)| (n.to_owned(), k.to_vec(), v.to_vec())).collect()).unwrap_or_default();
    for t in wtimers {
        groups.entry(key_group(&t.key, mp)).or_default().window_timers.push(t);
    }
    let header = StateHeader {
        uid: meta.uid.clone(),
        subtask: meta.subtask,
        parallelism: meta.parallelism,
        max_parallelism: mp,
        key_groups: (meta.range.start, meta.range.end),
        plugin_digest: meta.plugin_digest.clone(),
        state_version: meta.state_version,
        states,
        watermark,
        window_seq,
        entries_in_db: db_dir.is_some(),
    };
    Ok(Captured { header, groups, broadcast, db_dir, frozen })
}

/// Upload a captured snapshot; returns what the manifest records for the subtask.
pub async fn upload(
    ctx: &TaskCheckpointing,
    barrier: Barrier,
    meta: &SubtaskMeta,
    captured: Captured,
    uploaded: &UploadedFiles,
) -> Result<SubtaskState, CheckpointError> {
    let dir = format!("{}/{}/{}", snapshot_dir(barrier.kind, barrier.id), meta.uid, meta.subtask);
    let Captured { header, mut groups, broadcast, db_dir, frozen } = captured;
    if let Some(frozen) = frozen {
        // Off the pipeline's path: the frozen entries, in key order, by key group.
        group_entries(&mut groups, frozen.iter().map(|(k, v)| (k.to_vec(), v.to_vec())));
    }
    let encoded = OperatorState { header, groups, broadcast }.encode();
    let state = ctx.storage.put(&format!("{dir}/state.bin"), Bytes::from(encoded)).await?;
    let db = match db_dir {
        Some(local) => {
            let upload = DbUpload { ctx, barrier, meta, dir: &dir, local: &local, uploaded };
            let result = upload.all().await;
            let _ = tokio::fs::remove_dir_all(&local).await;
            result?
        }
        None => Vec::new(),
    };
    Ok(SubtaskState { subtask: meta.subtask, key_groups: (meta.range.start, meta.range.end), finished: false, state: Some(state), db })
}

/// How many RocksDB files of one subtask are uploaded at once (object stores serve
/// parallel writes; one at a time left a compaction's large outputs in series).
const PARALLEL_UPLOADS: usize = 4;

/// Put keyed-state entries (keys in the host's layout) under their key groups; entries
/// whose key names no group are skipped.
fn group_entries(groups: &mut BTreeMap<u16, GroupState>, entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
    for (k, v) in entries {
        let Some(g) = layout::key_group_of(&k) else { continue };
        groups.entry(g).or_default().entries.push((k, v));
    }
}

/// The upload of one subtask's RocksDB checkpoint directory.
struct DbUpload<'a> {
    ctx: &'a TaskCheckpointing,
    barrier: Barrier,
    meta: &'a SubtaskMeta,
    /// The snapshot's folder for this subtask in storage.
    dir: &'a str,
    /// The local checkpoint directory.
    local: &'a Path,
    uploaded: &'a UploadedFiles,
}

impl DbUpload<'_> {
    /// Every file of the directory, [`PARALLEL_UPLOADS`] at a time, in name order.
    async fn all(&self) -> Result<Vec<DbFile>, CheckpointError> {
        use futures::stream::{self, StreamExt, TryStreamExt};

        let local = self.local;
        let mut names = Vec::new();
        let mut rd = tokio::fs::read_dir(local).await.map_err(|e| CheckpointError::Local(format!("{}: {e}", local.display())))?;
        while let Some(e) = rd.next_entry().await.map_err(|e| CheckpointError::Local(e.to_string()))? {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        stream::iter(names).map(|name| self.file(name)).buffered(PARALLEL_UPLOADS).try_collect().await
    }

    /// One file: an SST already uploaded by a completed checkpoint is referenced again
    /// (incremental checkpoints), anything else is stored.
    async fn file(&self, name: String) -> Result<DbFile, CheckpointError> {
        let (ctx, barrier) = (self.ctx, self.barrier);
        let shared = name.ends_with(".sst") && ctx.incremental && barrier.kind == SnapshotKind::Checkpoint;
        if shared {
            let reuse = self.uploaded.lock().ok().and_then(|m| m.get(&name).cloned()).filter(|(_, id)| ctx.ledger.is_complete(*id)).map(|(f, _)| f);
            if let Some(f) = reuse {
                return Ok(f);
            }
        }
        let path = if shared { format!("shared/{}/{}/{name}", self.meta.uid, self.meta.instance) } else { format!("{}/db/{name}", self.dir) };
        let file = ctx.storage.put_file(&path, &self.local.join(&name)).await?;
        let entry = DbFile { name: name.clone(), file };
        if shared && let Ok(mut m) = self.uploaded.lock() {
            m.insert(name, (entry.clone(), barrier.id));
        }
        Ok(entry)
    }
}
