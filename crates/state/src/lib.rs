//! Keyed state: the [`StateBackend`] trait and its two implementations, the
//! [`KeyedStateStore`] that lays keys out so each key group is one contiguous range, the
//! decoded form of entries ([`StateEntry`], for migrations and inspection), and the
//! [`TimerService`] of an operator subtask, and the [`BroadcastState`] every subtask of
//! an operator shares a copy of.
//!
//! Key layout ([`layout`]): `key_group (u16 BE) ‖ state id (u16 BE) ‖ key length (u32 BE)
//! ‖ key ‖ [0x01 ‖ user key]`. A key group's state is one prefix scan, which is what
//! snapshots and rescaling need. Values carry an 8-byte expiry (processing-time ms,
//! `i64::MAX` for "never") for TTL.

mod backend;
mod broadcast;
mod entry;
mod keyed;
pub mod layout;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;
mod timers;

pub use backend::{BackendKind, FrozenEntries, StateBackend, StateError};
pub use broadcast::BroadcastState;
pub use entry::{EntryError, StateEntry, StateValue};
pub use keyed::{CurrentKey, DeclareError, KeyedStateStore, StateDescriptor, StateKind};
pub use memory::MemoryBackend;
pub use rivulet_dataflow::{KeyGroupRange, key_group};
#[cfg(feature = "rocksdb")]
pub use rocks::RocksDbBackend;
pub use timers::{TimeDomain, TimerService};

#[cfg(test)]
mod tests;
