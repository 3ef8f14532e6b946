//! The host side of the `rivulet:operator` imports — keyed state, broadcast state,
//! timers, collector and context — acting on the [`GuestIo`] of the instance being
//! called. Every contract (0.2.0, 0.3.0, 0.4.0) shares one implementation: `imports!`
//! writes the trait impls of each version's generated interfaces from the same bodies.

use rivulet_state::{StateKind, TimeDomain};
use wasmtime::component::Resource;

use crate::guest_io::{BroadcastHandle, GuestIo, StateHandle};
use crate::guest_log::GuestLogLevel;

fn sid(r: &Resource<StateHandle>) -> u16 {
    r.rep() as u16
}

/// State backend failures trap: a guest must never catch a failed state access.
fn trap(e: rivulet_state::StateError) -> wasmtime::Error {
    wasmtime::Error::msg(format!("state backend failed: {e}"))
}

impl GuestIo {
    /// `collector.forward`: records of the batch being processed, passed on as they are.
    fn forward(&mut self, indices: &[u32]) -> wasmtime::Result<()> {
        let Some(source) = self.forwardable.as_mut() else {
            wasmtime::bail!("`forward` passes on records of the batch being processed: only `process` and `process-broadcast` have one");
        };
        self.main_out.forward(source, indices).map_err(wasmtime::Error::msg)
    }

    fn emit_to(&mut self, tag: String, records: Vec<u8>) {
        match self.side_out.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, buf)) => buf.extend_from_slice(&records),
            None => self.side_out.push((tag, records)),
        }
    }

    fn select_record(&mut self, index: u32) -> wasmtime::Result<()> {
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

    fn log_line(&mut self, level: GuestLogLevel, message: String) {
        let (uid, plugin, subtask) = (&self.uid, &self.plugin, self.subtask);
        if let Some(log) = &self.log {
            log.push(uid, subtask, level, &message);
        }
        match level {
            GuestLogLevel::Trace => tracing::trace!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}"),
            GuestLogLevel::Debug => tracing::debug!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}"),
            GuestLogLevel::Info | GuestLogLevel::Stdout | GuestLogLevel::Stderr => {
                tracing::info!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}")
            }
            GuestLogLevel::Warn => tracing::warn!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}"),
            GuestLogLevel::Error => tracing::error!(target: "rivulet::guest", operator = %uid, %plugin, subtask, "{message}"),
        }
    }

    fn register_timer(&mut self, domain: TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.key.clone().unwrap_or_default();
        self.timers.register(domain, timestamp, key);
        Ok(())
    }

    fn delete_timer(&mut self, domain: TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        let key = self.key()?.key.clone().unwrap_or_default();
        self.timers.delete(domain, timestamp, key);
        Ok(())
    }
}

/// The imports every contract has, for the generated module `$seg::…` of one of them;
/// the two `{ … }` add that version's own `context` and `collector` functions.
macro_rules! imports {
    ($($seg:ident)::+ { $($context_extra:tt)* } { $($collector_extra:tt)* }) => {
        const _: () = {
            use $($seg)::+::{collector, context, keyed_state, timers, types};

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
                fn register(&mut self, domain: types::TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
                    self.register_timer(domain.into(), timestamp)
                }
                fn delete(&mut self, domain: types::TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
                    self.delete_timer(domain.into(), timestamp)
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
                    self.main_out.emit(records);
                    Ok(())
                }
                fn emit_to(&mut self, tag: String, records: Vec<u8>) -> wasmtime::Result<()> {
                    GuestIo::emit_to(self, tag, records);
                    Ok(())
                }
                $($collector_extra)*
            }

            impl context::Host for GuestIo {
                fn set_current_record(&mut self, index: u32) -> wasmtime::Result<()> {
                    self.select_record(index)
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
                fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
                    self.log_line(level.into(), message);
                    Ok(())
                }
                $($context_extra)*
            }
        };
    };
}

imports!(crate::bindings::v2::rivulet::operator {} {});
imports!(crate::bindings::v3::rivulet::operator {
    fn input_names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.input_names.clone())
    }
} {});
imports!(crate::bindings::v4::rivulet::operator {
    fn input_names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.input_names.clone())
    }
} {
    fn forward(&mut self, indices: Vec<u32>) -> wasmtime::Result<()> {
        GuestIo::forward(self, &indices)
    }
});

impl GuestIo {
    fn broadcast_name(&self, b: &Resource<BroadcastHandle>) -> wasmtime::Result<&str> {
        self.broadcast_names.get(b.rep() as usize).map(String::as_str).ok_or_else(|| wasmtime::Error::msg("unknown broadcast-map handle"))
    }

    fn writable_map(&mut self, b: &Resource<BroadcastHandle>) -> wasmtime::Result<&mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>> {
        let name = self.broadcast_name(b)?.to_owned();
        if !self.broadcast_writable {
            wasmtime::bail!(
                "broadcast state '{name}' is read-only here: only `process-broadcast` may change it (every instance must hold the same copy)"
            );
        }
        Ok(self.broadcast.map_mut(&name))
    }

    fn declare_broadcast(&mut self, name: String) -> wasmtime::Result<Resource<BroadcastHandle>> {
        if name.starts_with("__rivulet") {
            wasmtime::bail!("broadcast state name '{name}' is reserved for the host (names starting with `__rivulet`)");
        }
        let index = match self.broadcast_names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.broadcast_names.push(name);
                self.broadcast_names.len() - 1
            }
        };
        Ok(Resource::new_own(index as u32))
    }
}

/// The `broadcast-state` interface (0.3.0 and later), for the generated module
/// `$seg::…` of one contract.
macro_rules! broadcast_imports {
    ($($seg:ident)::+) => {
        const _: () = {
            use $($seg)::+::broadcast_state;

            impl broadcast_state::Host for GuestIo {}

            impl broadcast_state::HostBroadcastMap for GuestIo {
                fn new(&mut self, name: String) -> wasmtime::Result<Resource<BroadcastHandle>> {
                    self.declare_broadcast(name)
                }
                fn get(&mut self, b: Resource<BroadcastHandle>, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
                    let name = self.broadcast_name(&b)?;
                    Ok(self.broadcast.map(name).and_then(|m| m.get(&key).cloned()))
                }
                fn put(&mut self, b: Resource<BroadcastHandle>, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
                    self.writable_map(&b)?.insert(key, value);
                    Ok(())
                }
                fn remove(&mut self, b: Resource<BroadcastHandle>, key: Vec<u8>) -> wasmtime::Result<()> {
                    self.writable_map(&b)?.remove(&key);
                    Ok(())
                }
                fn entries(&mut self, b: Resource<BroadcastHandle>) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
                    let name = self.broadcast_name(&b)?;
                    Ok(self.broadcast.map(name).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default())
                }
                fn clear(&mut self, b: Resource<BroadcastHandle>) -> wasmtime::Result<()> {
                    self.writable_map(&b)?.clear();
                    Ok(())
                }
                fn drop(&mut self, _b: Resource<BroadcastHandle>) -> wasmtime::Result<()> {
                    Ok(())
                }
            }
        };
    };
}

broadcast_imports!(crate::bindings::v3::rivulet::operator);
broadcast_imports!(crate::bindings::v4::rivulet::operator);
