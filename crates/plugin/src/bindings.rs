//! Host bindings generated from `wit/`, kept private behind this module, and the store data.

#![allow(missing_docs, reason = "generated code")]

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::guest_io::GuestIo;
use crate::instance::MemoryLimiter;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "rivulet-operator",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "rivulet:operator/keyed-state.value-state": crate::guest_io::StateHandle,
        "rivulet:operator/keyed-state.list-state": crate::guest_io::StateHandle,
        "rivulet:operator/keyed-state.map-state": crate::guest_io::StateHandle,
    },
});

pub(crate) use self::rivulet::operator::types::{
    LogLevel, StateEntry as WitStateEntry, StateValue as WitStateValue, TimeDomain as WitTimeDomain, Window,
};

/// Everything a store holds: WASI, its resources, limits, and the operator's I/O.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) io: GuestIo,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl From<WitTimeDomain> for rivulet_state::TimeDomain {
    fn from(d: WitTimeDomain) -> Self {
        match d {
            WitTimeDomain::EventTime => rivulet_state::TimeDomain::EventTime,
            WitTimeDomain::ProcessingTime => rivulet_state::TimeDomain::ProcessingTime,
        }
    }
}

impl From<rivulet_state::TimeDomain> for WitTimeDomain {
    fn from(d: rivulet_state::TimeDomain) -> Self {
        match d {
            rivulet_state::TimeDomain::EventTime => WitTimeDomain::EventTime,
            rivulet_state::TimeDomain::ProcessingTime => WitTimeDomain::ProcessingTime,
        }
    }
}

impl From<rivulet_state::StateEntry> for WitStateEntry {
    fn from(e: rivulet_state::StateEntry) -> Self {
        let value = match e.value {
            rivulet_state::StateValue::Value(v) => WitStateValue::Value(v),
            rivulet_state::StateValue::List(items) => WitStateValue::List(items),
            rivulet_state::StateValue::MapEntry(k, v) => WitStateValue::MapEntry((k, v)),
        };
        WitStateEntry { state: e.state, key: e.key, value }
    }
}

impl From<WitStateEntry> for rivulet_state::StateEntry {
    fn from(e: WitStateEntry) -> Self {
        let value = match e.value {
            WitStateValue::Value(v) => rivulet_state::StateValue::Value(v),
            WitStateValue::List(items) => rivulet_state::StateValue::List(items),
            WitStateValue::MapEntry((k, v)) => rivulet_state::StateValue::MapEntry(k, v),
        };
        rivulet_state::StateEntry { state: e.state, key: e.key, value }
    }
}
