//! Restoring one new operator subtask from snapshot bytes: the parts of old subtasks
//! that hold its key groups, written into its keyed store (state ids remapped by name);
//! its timers; and, for the runtime to put back, its watermark, host timers, broadcast
//! state and the entries `migrate-state` must see.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::Bytes;
use rivulet_state::{BackendKind, BroadcastState, KeyGroupRange, KeyedStateStore, StateEntry, StateKind, TimerService, layout};

use crate::CheckpointError;
use crate::snapshot::{OperatorState, WindowTimer};
use crate::storage::unique_suffix;

/// State of old subtasks that a new subtask takes over.
#[derive(Debug, Default)]
pub struct OperatorRestore {
    /// Decoded canonical files of overlapping old subtasks, with their RocksDB files.
    pub parts: Vec<(OperatorState, Vec<(String, Bytes)>)>,
    /// The same subtask had finished (same parallelism only).
    pub finished: bool,
    /// The operator's broadcast state (stored once, by the old subtask 0), for every
    /// new subtask.
    pub broadcast: Option<BroadcastState>,
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

/// What restoring a subtask leaves to the runtime.
#[derive(Debug, Default)]
pub struct RestoredState {
    /// The operator's watermark (the least of the parts'; `i64::MIN` without parts).
    pub watermark: i64,
    /// The host timers (windows, join buffers, held records) of the subtask's key groups.
    pub window_timers: Vec<WindowTimer>,
    /// The host operators' record counter to continue from.
    pub window_seq: u64,
    /// The operator's broadcast state.
    pub broadcast: BroadcastState,
    /// Entries of states whose version differs from the operator's, decoded, per old
    /// version: for the guest's `migrate-state`.
    pub migrate: Vec<(u32, Vec<StateEntry>)>,
}

/// Apply the restored parts to a fresh subtask owning `range`: entries of its key groups
/// into `store` (unless `already_native`: the RocksDB files are its database), timers
/// into `timers`. Entries of states whose version differs from `state_version` are
/// returned decoded instead; `scratch` holds temporary RocksDB copies.
pub fn restore_into(
    restore: &OperatorRestore,
    range: KeyGroupRange,
    store: &mut KeyedStateStore,
    already_native: bool,
    timers: &mut TimerService,
    state_version: u32,
    scratch: &Path,
) -> Result<RestoredState, CheckpointError> {
    let mut out = RestoredState { watermark: i64::MAX, ..RestoredState::default() };
    for (i, (part, db)) in restore.parts.iter().enumerate() {
        let h = &part.header;
        out.watermark = out.watermark.min(h.watermark);
        let needs_migration = h.state_version != state_version;
        let mut remap: HashMap<u16, u16> = HashMap::new();
        let mut names: BTreeMap<u16, (String, StateKind)> = BTreeMap::new();
        for d in &h.states {
            names.insert(d.id, (d.name.clone(), d.kind));
            if needs_migration && !d.name.starts_with("__rivulet") {
                continue;
            }
            let new = store.declare(&d.name, d.kind, d.ttl_ms).map_err(|e| CheckpointError::Mismatch(format!("operator '{}': {e}", h.uid)))?;
            remap.insert(d.id, new);
        }
        let mut to_migrate = Vec::new();
        if !already_native {
            let mut put = |k: &[u8], v: &[u8]| -> Result<(), CheckpointError> {
                let (Some(g), Some(old)) = (layout::key_group_of(k), layout::state_id_of(k)) else {
                    return Ok(());
                };
                if !range.contains(g) {
                    return Ok(());
                }
                match remap.get(&old).and_then(|new| layout::with_state_id(k, *new)) {
                    Some(key) => store.put_raw(&key, v).map_err(|e| CheckpointError::Local(e.to_string())),
                    None => {
                        to_migrate.extend(StateEntry::decode(&names, k, v));
                        Ok(())
                    }
                }
            };
            if h.entries_in_db {
                for (k, v) in scan_db(scratch, i, db)? {
                    put(&k, &v)?;
                }
            } else {
                for gs in part.groups.values() {
                    for (k, v) in &gs.entries {
                        put(k, v)?;
                    }
                }
            }
        }
        for (g, gs) in &part.groups {
            if !range.contains(*g) {
                continue;
            }
            for t in &gs.timers {
                timers.register(t.domain, t.time, t.key.clone());
            }
            out.window_timers.extend(gs.window_timers.iter().cloned());
        }
        out.window_seq = out.window_seq.max(h.window_seq);
        if !to_migrate.is_empty() {
            out.migrate.push((h.state_version, to_migrate));
        }
    }
    if restore.parts.is_empty() {
        out.watermark = i64::MIN;
    }
    if let Some(b) = &restore.broadcast {
        out.broadcast = b.clone();
    }
    Ok(out)
}

/// Every entry of a RocksDB checkpoint, read from a temporary copy.
pub(crate) fn scan_db(scratch: &Path, i: usize, db: &[(String, Bytes)]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, CheckpointError> {
    let dir = scratch.join(format!("restore-{i}-{}", unique_suffix()));
    write_db_files(&dir, db)?;
    let scanned = BackendKind::Rocksdb.open(&dir).and_then(|b| b.scan_prefix(&[])).map_err(|e| CheckpointError::Local(e.to_string()));
    let _ = std::fs::remove_dir_all(&dir);
    scanned
}
