//! Host bindings generated from `wit/`, kept behind this thin module, and the store data.

#![allow(missing_docs, reason = "generated code")]

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::guest_io::GuestIo;
use super::instance::MemoryLimiter;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "rivulet-operator",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "rivulet:operator/keyed-state.value-state": super::guest_io::StateHandle,
        "rivulet:operator/keyed-state.list-state": super::guest_io::StateHandle,
        "rivulet:operator/keyed-state.map-state": super::guest_io::StateHandle,
    },
});

pub use self::rivulet::operator::types::{LogLevel, StateEntry, StateValue, TimeDomain, Window};

/// Everything a store holds: WASI, its resources, limits, and the operator's I/O.
pub struct HostState {
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
