//! The host side of the `rivulet:operator` imports — keyed state, timers, collector and
//! context — acting on the [`GuestIo`] of the instance being called.

use rivulet_state::{StateKind, TimeDomain};
use wasmtime::component::Resource;

use crate::bindings::rivulet::operator::{collector, context, keyed_state, timers, types};
use crate::bindings::{LogLevel, WitTimeDomain};
use crate::guest_io::{GuestIo, StateHandle};
use crate::guest_log::GuestLogLevel;

fn sid(r: &Resource<StateHandle>) -> u16 {
    r.rep() as u16
}

/// State backend failures trap: a guest must never catch a failed state access.
fn trap(e: rivulet_state::StateError) -> wasmtime::Error {
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
    fn register(&mut self, domain: WitTimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.key.clone().unwrap_or_default();
        self.timers.register(TimeDomain::from(domain), timestamp, key);
        Ok(())
    }
    fn delete(&mut self, domain: WitTimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.key.clone().unwrap_or_default();
        self.timers.delete(TimeDomain::from(domain), timestamp, key);
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
        let stored = match level {
            LogLevel::Trace => GuestLogLevel::Trace,
            LogLevel::Debug => GuestLogLevel::Debug,
            LogLevel::Info => GuestLogLevel::Info,
            LogLevel::Warn => GuestLogLevel::Warn,
            LogLevel::Error => GuestLogLevel::Error,
        };
        if let Some(log) = &self.log {
            log.push(uid, subtask, stored, &message);
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
