//! An operator subtask's state file from a checkpoint or savepoint (the canonical,
//! backend-independent format): decoding any bytes yields a state or an error naming the
//! file, never a panic or a huge allocation; a decoded state encodes to bytes that decode
//! to the same state; restoring it into a fresh in-memory subtask succeeds or errs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_checkpoint::snapshot::OperatorState;
use rivulet_checkpoint::{OperatorRestore, restore_into};
use rivulet_state::{KeyGroupRange, KeyedStateStore, MemoryBackend, TimerService};

fuzz_target!(|data: &[u8]| {
    let Ok(state) = OperatorState::decode(data, "fuzz/state") else { return };
    let encoded = state.encode();
    let again = OperatorState::decode(&encoded, "fuzz/state").expect("an encoded state file decodes");
    assert_eq!(again.encode(), encoded, "a state file encodes back to itself");
    if state.header.entries_in_db {
        return; // its entries are in RocksDB files, which this build leaves out
    }
    let max_parallelism = 128;
    let mut store = KeyedStateStore::new(Box::new(MemoryBackend::default()), max_parallelism);
    let mut timers = TimerService::default();
    let restore = OperatorRestore { parts: vec![(state, Vec::new())], ..OperatorRestore::default() };
    let range = KeyGroupRange::for_subtask(1, 2, max_parallelism);
    let _ = restore_into(&restore, range, &mut store, false, &mut timers, 1, std::path::Path::new("/nonexistent"));
});
