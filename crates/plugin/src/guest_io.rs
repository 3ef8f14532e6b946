//! The operator's whole view of the world while a call runs: its keyed state, the
//! current key, the batch being processed, its timers and watermark, and what it emitted.
//! The host imports acting on it are in `imports`.

use std::sync::Arc;

use rivulet_state::{BroadcastState, CurrentKey, KeyedStateStore, StateKind, TimerService, key_group};
use wasmtime::component::Resource;

use crate::guest_log::GuestLog;
use crate::main_output::{ForwardSource, MainOutput};

/// A state handle handed to the guest: its representation is the state's index.
pub struct StateHandle;

/// A broadcast-map handle handed to the guest: its representation indexes the names of
/// the maps the guest declared.
pub struct BroadcastHandle;

/// The operator's I/O while a call runs.
pub(crate) struct GuestIo {
    pub(crate) uid: String,
    pub(crate) plugin: String,
    pub(crate) subtask: u32,
    pub(crate) parallelism: u32,
    pub(crate) attempt: u32,
    pub(crate) state: KeyedStateStore,
    pub(crate) current: CurrentKey,
    /// Byte ranges of the keys of the batch being processed (`None`: no key).
    pub(crate) batch_keys: Vec<Option<(usize, usize)>>,
    pub(crate) batch: Arc<Vec<u8>>,
    pub(crate) timers: TimerService,
    pub(crate) watermark: i64,
    /// Processing time at the start of the current call (TTL and `current-processing-time`).
    pub(crate) now: i64,
    pub(crate) main_out: MainOutput,
    /// The batch `collector.forward` takes records from (`process`, `process-broadcast`).
    pub(crate) forwardable: Option<ForwardSource>,
    pub(crate) side_out: Vec<(String, Vec<u8>)>,
    pub(crate) log: Option<Arc<GuestLog>>,
    /// The operator's input names, by input index.
    pub(crate) input_names: Vec<String>,
    /// The broadcast maps (the same on every subtask).
    pub(crate) broadcast: BroadcastState,
    /// Names of the broadcast maps the guest declared, by handle.
    pub(crate) broadcast_names: Vec<String>,
    /// Whether the current call may change broadcast state (`process-broadcast`).
    pub(crate) broadcast_writable: bool,
}

impl GuestIo {
    /// The current key, or the trap a guest gets for using keyed state without one.
    pub(crate) fn key(&self) -> wasmtime::Result<&CurrentKey> {
        if self.current.key.is_none() {
            if self.broadcast_writable {
                wasmtime::bail!(
                    "a broadcast record has no key: keyed state and timers cannot be used in `process-broadcast` (operator '{}')",
                    self.uid
                );
            }
            wasmtime::bail!("keyed state and timers need a keyed input (set `key_by` on operator '{}')", self.uid);
        }
        Ok(&self.current)
    }

    /// Record where each key of the current batch lies (done once per batch, on demand).
    pub(crate) fn index_batch_keys(&mut self) {
        let base = self.batch.as_ptr() as usize;
        for r in rivulet_sdk::RecordIter::new(&self.batch) {
            let Ok(r) = r else { break };
            self.batch_keys.push(r.key.map(|k| {
                let start = k.as_ptr() as usize - base;
                (start, start + k.len())
            }));
        }
    }

    /// Select the current key directly (timers and windows).
    pub(crate) fn set_current_key(&mut self, key: Option<Vec<u8>>) {
        let group = key.as_deref().map_or(0, |k| key_group(k, self.state.max_parallelism()));
        self.current = CurrentKey { key, group };
    }

    /// Declare a state for the guest.
    pub(crate) fn declare(&mut self, name: &str, kind: StateKind, ttl: Option<u64>) -> wasmtime::Result<Resource<StateHandle>> {
        if name.starts_with("__rivulet") {
            wasmtime::bail!("state name '{name}' is reserved for the host (names starting with `__rivulet`)");
        }
        let id = self.state.declare(name, kind, ttl).map_err(wasmtime::Error::msg)?;
        Ok(Resource::new_own(u32::from(id)))
    }
}
