//! Helpers shared by the benchmarks.

use std::path::Path;

/// Bytes of every file below `p`.
pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            total += if path.is_dir() { dir_size(&path) } else { e.metadata().map_or(0, |m| m.len()) };
        }
    }
    total
}
