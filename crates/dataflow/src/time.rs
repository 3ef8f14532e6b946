//! Processing time, and blocking work inside async tasks.

/// Processing time: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Run blocking work (a RocksDB flush, an fsync, a blocking client call) on this task's
/// thread, letting the runtime move its other tasks elsewhere meanwhile (multi-threaded
/// runtimes only; elsewhere it just runs).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
