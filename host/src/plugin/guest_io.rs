//! The host side of the `rivulet:operator` imports: keyed state, timers, collector
//! and context. One file per concern would be finer; they share `GuestIo`, whose
//! fields are the operator's whole view of the world.

use std::collections::BTreeSet;

use wasmtime::component::Resource;

use super::bindings::rivulet::operator::{collector, context, keyed_state, timers, types};
use super::bindings::{LogLevel, TimeDomain};
use crate::state::{CurrentKey, KeyedStateStore, StateKind, key_group};

/// A state handle handed to the guest: its representation is the state's index.
pub struct StateHandle;

/// Registered timers of one operator subtask, ordered by time.
#[derive(Debug, Default)]
pub struct TimerService {
    event: BTreeSet<(i64, Vec<u8>)>,
    processing: BTreeSet<(i64, Vec<u8>)>,
}

impl TimerService {
    fn set(&mut self, domain: TimeDomain) -> &mut BTreeSet<(i64, Vec<u8>)> {
        match domain {
            TimeDomain::EventTime => &mut self.event,
            TimeDomain::ProcessingTime => &mut self.processing,
        }
    }

    /// The time of the earliest event-time timer.
    pub fn peek_event(&self) -> Option<i64> {
        self.event.first().map(|(t, _)| *t)
    }

    /// Remove and return the earliest event-time timer at or before `watermark`.
    pub fn pop_event_due(&mut self, watermark: i64) -> Option<(i64, Vec<u8>)> {
        match self.event.first() {
            Some((t, _)) if *t <= watermark => self.event.pop_first(),
            _ => None,
        }
    }

    /// Remove and return the earliest processing-time timer at or before `now`.
    pub fn pop_processing_due(&mut self, now: i64) -> Option<(i64, Vec<u8>)> {
        match self.processing.first() {
            Some((t, _)) if *t <= now => self.processing.pop_first(),
            _ => None,
        }
    }

    /// When the next processing-time timer is due.
    pub fn next_processing(&self) -> Option<i64> {
        self.processing.first().map(|(t, _)| *t)
    }

    /// Every timer: (event time?, time, key).
    pub fn iter(&self) -> impl Iterator<Item = (bool, i64, &[u8])> {
        self.event.iter().map(|(t, k)| (true, *t, k.as_slice())).chain(self.processing.iter().map(|(t, k)| (false, *t, k.as_slice())))
    }

    /// Register a timer (restore).
    pub fn insert(&mut self, event_time: bool, timestamp: i64, key: Vec<u8>) {
        let set = if event_time { &mut self.event } else { &mut self.processing };
        set.insert((timestamp, key));
    }

    /// Number of registered timers (both domains).
    pub fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The operator's I/O while a call runs.
pub struct GuestIo {
    pub(crate) uid: String,
    pub(crate) plugin: String,
    pub(crate) subtask: u32,
    pub(crate) parallelism: u32,
    pub(crate) attempt: u32,
    pub(crate) state: KeyedStateStore,
    pub(crate) current: CurrentKey,
    /// Byte ranges of the keys of the batch being processed (`None`: no key).
    pub(crate) batch_keys: Vec<Option<(usize, usize)>>,
    pub(crate) batch: std::sync::Arc<Vec<u8>>,
    pub(crate) timers: TimerService,
    pub(crate) watermark: i64,
    /// Processing time at the start of the current call (TTL and `current-processing-time`).
    pub(crate) now: i64,
    pub(crate) main_out: Vec<u8>,
    pub(crate) side_out: Vec<(String, Vec<u8>)>,
    pub(crate) log: Option<std::sync::Arc<super::GuestLog>>,
}

impl GuestIo {
    fn key(&self) -> wasmtime::Result<&CurrentKey> {
        if self.current.key.is_none() {
            wasmtime::bail!("keyed state and timers need a keyed input (set `key_by` on operator '{}')", self.uid);
        }
        Ok(&self.current)
    }

    /// Record where each key of the current batch lies (done once per batch, on demand).
    fn index_batch_keys(&mut self) {
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

    fn declare(&mut self, name: &str, kind: StateKind, ttl: Option<u64>) -> wasmtime::Result<Resource<StateHandle>> {
        if name.starts_with("__rivulet") {
            wasmtime::bail!("state name '{name}' is reserved for the host (names starting with `__rivulet`)");
        }
        let id = self.state.declare(name, kind, ttl).map_err(wasmtime::Error::msg)?;
        Ok(Resource::new_own(u32::from(id)))
    }
}

/// Processing time in ms since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn sid(r: &Resource<StateHandle>) -> u16 {
    r.rep() as u16
}

/// State backend failures trap: a guest must never catch a failed state access.
fn trap(e: crate::state::StateError) -> wasmtime::Error {
    wasmtime::Error::msg(format!("state backend failed: {e}"))
}

impl types::Host for GuestIo {}

impl keyed_state::Host for GuestIo {}

impl keyed_state::HostValueState for GuestIo {
    fn new(&mut self, name: String, ttl_ms: Option<u64>) -> wasmtime::Result<Resource<StateHandle>> {
        self.declare(&name, StateKind::Value, ttl_ms)
    }
    fn get(&mut self, s: Resource<StateHandle>) -> wasmtime::Result<Option<Vec<u8>>> {
        self.state.get(sid(&s), self.key()?, self.now).map_err(trap)
    }
    fn set(&mut self, s: Resource<StateHandle>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.key()?;
        self.state.put(sid(&s), &self.current, &value, self.now).map_err(trap)
    }
    fn clear(&mut self, s: Resource<StateHandle>) -> wasmtime::Result<()> {
        let key = self.key()?.clone();
        self.state.clear(sid(&s), &key).map_err(trap)
    }
    fn drop(&mut self, _s: Resource<StateHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl keyed_state::HostListState for GuestIo {
    fn new(&mut self, name: String, ttl_ms: Option<u64>) -> wasmtime::Result<Resource<StateHandle>> {
        self.declare(&name, StateKind::List, ttl_ms)
    }
    fn get(&mut self, s: Resource<StateHandle>) -> wasmtime::Result<Vec<Vec<u8>>> {
        self.state.list_get(sid(&s), self.key()?, self.now).map_err(trap)
    }
    fn add(&mut self, s: Resource<StateHandle>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.key()?;
        self.state.list_add(sid(&s), &self.current, &value, self.now).map_err(trap)
    }
    fn update(&mut self, s: Resource<StateHandle>, values: Vec<Vec<u8>>) -> wasmtime::Result<()> {
        self.key()?;
        self.state.list_update(sid(&s), &self.current, &values, self.now).map_err(trap)
    }
    fn clear(&mut self, s: Resource<StateHandle>) -> wasmtime::Result<()> {
        let key = self.key()?.clone();
        self.state.clear(sid(&s), &key).map_err(trap)
    }
    fn drop(&mut self, _s: Resource<StateHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl keyed_state::HostMapState for GuestIo {
    fn new(&mut self, name: String, ttl_ms: Option<u64>) -> wasmtime::Result<Resource<StateHandle>> {
        self.declare(&name, StateKind::Map, ttl_ms)
    }
    fn get(&mut self, s: Resource<StateHandle>, user_key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        self.state.map_get(sid(&s), self.key()?, &user_key, self.now).map_err(trap)
    }
    fn put(&mut self, s: Resource<StateHandle>, user_key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.key()?;
        self.state.map_put(sid(&s), &self.current, &user_key, &value, self.now).map_err(trap)
    }
    fn remove(&mut self, s: Resource<StateHandle>, user_key: Vec<u8>) -> wasmtime::Result<()> {
        self.key()?;
        self.state.map_remove(sid(&s), &self.current, &user_key).map_err(trap)
    }
    fn contains(&mut self, s: Resource<StateHandle>, user_key: Vec<u8>) -> wasmtime::Result<bool> {
        Ok(self.state.map_get(sid(&s), self.key()?, &user_key, self.now).map_err(trap)?.is_some())
    }
    fn keys(&mut self, s: Resource<StateHandle>) -> wasmtime::Result<Vec<Vec<u8>>> {
        Ok(self.state.map_entries(sid(&s), self.key()?, self.now).map_err(trap)?.into_iter().map(|(k, _)| k).collect())
    }
    fn entries(&mut self, s: Resource<StateHandle>) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.state.map_entries(sid(&s), self.key()?, self.now).map_err(trap)
    }
    fn clear(&mut self, s: Resource<StateHandle>) -> wasmtime::Result<()> {
        let key = self.key()?.clone();
        self.state.clear(sid(&s), &key).map_err(trap)
    }
    fn drop(&mut self, _s: Resource<StateHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl timers::Host for GuestIo {
    fn register(&mut self, domain: TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.key.clone().unwrap_or_default();
        self.timers.set(domain).insert((timestamp, key));
        Ok(())
    }
    fn delete(&mut self, domain: TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.key.clone().unwrap_or_default();
        self.timers.set(domain).remove(&(timestamp, key));
        Ok(())
    }
    fn current_watermark(&mut self) -> wasmtime::Result<i64> {
        Ok(self.watermark)
    }
    fn current_processing_time(&mut self) -> wasmtime::Result<i64> {
        Ok(self.now)
    }
}

impl collector::Host for GuestIo {
    fn emit(&mut self, records: Vec<u8>) -> wasmtime::Result<()> {
        if self.main_out.is_empty() {
            self.main_out = records;
        } else {
            self.main_out.extend_from_slice(&records);
        }
        Ok(())
    }
    fn emit_to(&mut self, tag: String, records: Vec<u8>) -> wasmtime::Result<()> {
        match self.side_out.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, buf)) => buf.extend_from_slice(&records),
            None => self.side_out.push((tag, records)),
        }
        Ok(())
    }
}

impl context::Host for GuestIo {
    fn set_current_record(&mut self, index: u32) -> wasmtime::Result<()> {
        if self.batch_keys.is_empty() {
            self.index_batch_keys();
        }
        let Some(entry) = self.batch_keys.get(index as usize) else {
            wasmtime::bail!("set-current-record({index}) but the batch has {} records", self.batch_keys.len());
        };
        let key = entry.map(|(s, e)| self.batch[s..e].to_vec());
        self.set_current_key(key);
        Ok(())
    }
    fn current_key(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.current.key.clone())
    }
    fn operator_uid(&mut self) -> wasmtime::Result<String> {
        Ok(self.uid.clone())
    }
    fn subtask_index(&mut self) -> wasmtime::Result<u32> {
        Ok(self.subtask)
    }
    fn parallelism(&mut self) -> wasmtime::Result<u32> {
        Ok(self.parallelism)
    }
    fn attempt_number(&mut self) -> wasmtime::Result<u32> {
        Ok(self.attempt)
    }
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let (uid, plugin, subtask) = (&self.uid, &self.plugin, self.subtask);
        if let Some(log) = &self.log {
            let name = match level {
                LogLevel::Trace => "trace",
                LogLevel::Debug => "debug",
                LogLevel::Info => "info",
                LogLevel::Warn => "warn",
                LogLevel::Error => "error",
            };
            log.push(uid, subtask, name, &message);
        }
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}")
            }
        }
        Ok(())
    }
}
