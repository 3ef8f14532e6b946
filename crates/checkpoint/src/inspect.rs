//! `rivulet savepoint inspect`: a human-readable account of a snapshot.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rivulet_state::{StateEntry, StateKind, layout};

use crate::locate::load_manifest;
use crate::manifest::SnapshotKind;
use crate::restore::scan_db;
use crate::snapshot::OperatorState;
use crate::{CheckpointError, CheckpointStorage};

/// A human-readable account of a snapshot (`rivulet savepoint inspect`). Each sink's
/// transaction is shown as `redact` returns it: a transaction may carry a connector's
/// client settings, and which of them are secret is the caller's knowledge (the protocol
/// knows no connector).
pub async fn inspect(location: &str, entries: bool, redact: &dyn Fn(&serde_json::Value) -> serde_json::Value) -> Result<String, CheckpointError> {
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
            let bytes = root.get_verified(&m.relocated(f, &dir)).await?;
            let mut s = OperatorState::decode(&bytes, &f.path)?;
            if s.header.entries_in_db {
                // Native snapshot: the entries are read out of its RocksDB files.
                let mut db = Vec::new();
                for d in &st.db {
                    db.push((d.name.clone(), root.get_verified(&m.relocated(&d.file, &dir)).await?));
                }
                for (k, v) in scan_db(&std::env::temp_dir(), st.subtask as usize, &db)? {
                    if let Some(g) = layout::key_group_of(&k) {
                        s.groups.entry(g).or_default().entries.push((k, v));
                    }
                }
            }
            let mut per_state: BTreeMap<String, u64> = BTreeMap::new();
            let names: BTreeMap<u16, (String, StateKind)> = s.header.states.iter().map(|d| (d.id, (d.name.clone(), d.kind))).collect();
            let mut timers = 0;
            // Host timers by what they are for: windows (kinds 0/1), interval-join buffer
            // cleanups (2/3), keyed records held for a broadcast input (4).
            let mut host = [0usize; 3];
            for gs in s.groups.values() {
                timers += gs.timers.len() + gs.window_timers.len();
                for t in &gs.window_timers {
                    host[match t.kind {
                        0 | 1 => 0,
                        2 | 3 => 1,
                        _ => 2,
                    }] += 1;
                }
                for (k, _) in &gs.entries {
                    if let Some(id) = layout::state_id_of(k) {
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
            if host.iter().any(|n| *n > 0) {
                let _ = writeln!(
                    out,
                    "    host timers: {} window, {} join-buffer cleanups (buffered join records), {} keyed records held for broadcast inputs",
                    host[0], host[1], host[2]
                );
            }
            if !s.broadcast.is_empty() {
                let mut maps: BTreeMap<&str, usize> = BTreeMap::new();
                for (name, _, _) in &s.broadcast {
                    *maps.entry(name.as_str()).or_default() += 1;
                }
                for (name, n) in maps {
                    let what = if name.starts_with("__rivulet") { "broadcast records held until the watermark passes them" } else { "entries" };
                    let _ = writeln!(out, "    broadcast state {name}: {n} {what} (one copy for every subtask)");
                }
                if entries {
                    for (name, k, v) in &s.broadcast {
                        let _ = writeln!(out, "    [broadcast {name}] {} = {}", String::from_utf8_lossy(k), String::from_utf8_lossy(v));
                    }
                }
            }
            if entries {
                for (g, gs) in &s.groups {
                    for (k, v) in &gs.entries {
                        if let Some(e) = StateEntry::decode(&names, k, v) {
                            let _ = writeln!(out, "    [group {g}] {}", e.describe());
                        }
                    }
                }
            }
        }
    }
    for s in &m.sources {
        let _ = writeln!(out, "source {}[{}/{}]: {}", s.id, s.subtask, s.parallelism, s.position);
    }
    for s in &m.sinks {
        let txn = serde_json::to_value(&s.transaction).map(|v| redact(&v).to_string()).unwrap_or_default();
        let _ = writeln!(out, "sink {}[{}]{}: {txn}", s.id, s.subtask, if s.finished { " (finished)" } else { "" });
    }
    let _ = writeln!(out, "files: {} ({} bytes)", m.files().count(), m.files().map(|f| f.size).sum::<u64>());
    Ok(out)
}
