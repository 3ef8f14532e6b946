//! The RocksDB backend: one embedded database per operator subtask.

use std::path::Path;

use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::backend::{StateBackend, StateError};

/// State kept in an embedded RocksDB.
pub struct RocksDbBackend {
    db: DB,
    write: WriteOptions,
}

impl RocksDbBackend {
    /// Open (creating if needed) a database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Dir { path: dir.display().to_string(), error: source })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.increase_parallelism(2);
        // Bloom filters: point reads (every state get) skip SST files that cannot hold
        // the key. Checkpoints flush the memtable, so state soon spans several files.
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        opts.set_block_based_table_factory(&table);
        let db = DB::open(&opts, dir)?;
        let mut write = WriteOptions::default();
        // Durability comes from checkpoints, not from the local write-ahead log.
        write.disable_wal(true);
        Ok(RocksDbBackend { db, write })
    }
}

impl StateBackend for RocksDbBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.db.get(key)?)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        Ok(self.db.put_opt(key, value, &self.write)?)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        Ok(self.db.delete_opt(key, &self.write)?)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        let mut out = Vec::new();
        for item in self.db.iterator(IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn native_checkpoint(&self, dir: &Path) -> Result<bool, StateError> {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StateError::Dir { path: parent.display().to_string(), error: source })?;
        }
        // The WAL is off: flush the memtable so the checkpoint holds every write.
        self.db.flush()?;
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(true)
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::From(prefix, Direction::Forward)) {
            let (k, _) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            batch.delete(k);
        }
        Ok(self.db.write_opt(batch, &self.write)?)
    }
}
