//! Host bindings generated from the three contracts the host links — `wit/` (0.4.0),
//! `wit/0.3.0/` and `wit/0.2.0/` — kept private behind this module, the contract a
//! component targets, and the store data.

#![allow(missing_docs, reason = "generated code")]

use std::fmt;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::guest_io::GuestIo;
use crate::instance::MemoryLimiter;

/// Bindings of a contract with broadcast state (0.3.0 and later), from the WIT at `$path`.
macro_rules! operator_bindings {
    ($path:literal) => {
        wasmtime::component::bindgen!({
            path: $path,
            world: "rivulet-operator",
            imports: { default: trappable },
            exports: { default: async },
            with: {
                "rivulet:operator/keyed-state.value-state": crate::guest_io::StateHandle,
                "rivulet:operator/keyed-state.list-state": crate::guest_io::StateHandle,
                "rivulet:operator/keyed-state.map-state": crate::guest_io::StateHandle,
                "rivulet:operator/broadcast-state.broadcast-map": crate::guest_io::BroadcastHandle,
            },
        });
    };
}

/// `rivulet:operator@0.4.0`: 0.3.0 and `collector.forward`.
pub(crate) mod v4 {
    operator_bindings!("../../wit");
}

/// `rivulet:operator@0.3.0`: named and broadcast inputs, co-group windows, joins.
pub(crate) mod v3 {
    operator_bindings!("../../wit/0.3.0");
}

/// `rivulet:operator@0.2.0`: one input; components built against it keep running.
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        world: "rivulet-operator",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "rivulet:operator/keyed-state.value-state": crate::guest_io::StateHandle,
            "rivulet:operator/keyed-state.list-state": crate::guest_io::StateHandle,
            "rivulet:operator/keyed-state.map-state": crate::guest_io::StateHandle,
        },
    });
}

/// The version of the `rivulet:operator` contract a component targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub enum Contract {
    /// `rivulet:operator@0.2.0`: one input, no broadcast state, no joins.
    #[serde(rename = "0.2.0")]
    V0_2,
    /// `rivulet:operator@0.3.0`: named and broadcast inputs, co-group windows, joins.
    #[serde(rename = "0.3.0")]
    V0_3,
    /// `rivulet:operator@0.4.0`: 0.3.0 and `collector.forward` (input records passed on
    /// by index, not re-encoded).
    #[serde(rename = "0.4.0")]
    V0_4,
}

impl Contract {
    /// Every contract the host links, newest first.
    pub const ALL: [Contract; 3] = [Contract::V0_4, Contract::V0_3, Contract::V0_2];

    /// The version number.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_2 => "0.2.0",
            Contract::V0_3 => "0.3.0",
            Contract::V0_4 => "0.4.0",
        }
    }

    /// The world's full name.
    pub fn world(self) -> String {
        format!("rivulet:operator/rivulet-operator@{}", self.version())
    }

    /// The contract whose `operator` interface `exports` holds, if any.
    pub fn of_exports<'a>(exports: impl IntoIterator<Item = &'a str>) -> Option<Contract> {
        let exports: Vec<&str> = exports.into_iter().collect();
        Contract::ALL.into_iter().find(|c| exports.iter().any(|e| *e == format!("rivulet:operator/operator@{}", c.version())))
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rivulet:operator@{}", self.version())
    }
}

/// The instance-pre of a component, by the contract it targets.
pub(crate) enum OperatorPre {
    V2(v2::RivuletOperatorPre<HostState>),
    V3(v3::RivuletOperatorPre<HostState>),
    V4(v4::RivuletOperatorPre<HostState>),
}

/// The exports of an instance, by the contract it targets.
pub(crate) enum OperatorExports {
    V2(v2::RivuletOperator),
    V3(v3::RivuletOperator),
    V4(v4::RivuletOperator),
}

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

/// Conversions between the host's types and one contract's generated types.
macro_rules! conversions {
    ($($seg:ident)::+) => {
        const _: () = {
            use $($seg)::+ as t;

            impl From<t::TimeDomain> for rivulet_state::TimeDomain {
                fn from(d: t::TimeDomain) -> Self {
                    match d {
                        t::TimeDomain::EventTime => rivulet_state::TimeDomain::EventTime,
                        t::TimeDomain::ProcessingTime => rivulet_state::TimeDomain::ProcessingTime,
                    }
                }
            }

            impl From<rivulet_state::TimeDomain> for t::TimeDomain {
                fn from(d: rivulet_state::TimeDomain) -> Self {
                    match d {
                        rivulet_state::TimeDomain::EventTime => t::TimeDomain::EventTime,
                        rivulet_state::TimeDomain::ProcessingTime => t::TimeDomain::ProcessingTime,
                    }
                }
            }

            impl From<rivulet_state::StateEntry> for t::StateEntry {
                fn from(e: rivulet_state::StateEntry) -> Self {
                    let value = match e.value {
                        rivulet_state::StateValue::Value(v) => t::StateValue::Value(v),
                        rivulet_state::StateValue::List(items) => t::StateValue::List(items),
                        rivulet_state::StateValue::MapEntry(k, v) => t::StateValue::MapEntry((k, v)),
                    };
                    t::StateEntry { state: e.state, key: e.key, value }
                }
            }

            impl From<t::StateEntry> for rivulet_state::StateEntry {
                fn from(e: t::StateEntry) -> Self {
                    let value = match e.value {
                        t::StateValue::Value(v) => rivulet_state::StateValue::Value(v),
                        t::StateValue::List(items) => rivulet_state::StateValue::List(items),
                        t::StateValue::MapEntry((k, v)) => rivulet_state::StateValue::MapEntry(k, v),
                    };
                    rivulet_state::StateEntry { state: e.state, key: e.key, value }
                }
            }

            impl From<t::LogLevel> for crate::guest_log::GuestLogLevel {
                fn from(l: t::LogLevel) -> Self {
                    match l {
                        t::LogLevel::Trace => crate::guest_log::GuestLogLevel::Trace,
                        t::LogLevel::Debug => crate::guest_log::GuestLogLevel::Debug,
                        t::LogLevel::Info => crate::guest_log::GuestLogLevel::Info,
                        t::LogLevel::Warn => crate::guest_log::GuestLogLevel::Warn,
                        t::LogLevel::Error => crate::guest_log::GuestLogLevel::Error,
                    }
                }
            }
        };
    };
}

conversions!(v4::rivulet::operator::types);
conversions!(v3::rivulet::operator::types);
conversions!(v2::rivulet::operator::types);
