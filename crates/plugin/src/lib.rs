//! Operators as WebAssembly components: the wasmtime engine (the only place that
//! configures one), compiling and caching components, checking them against the
//! `rivulet:operator` world, per-instance limits, and [`OperatorInstance`] — one
//! sandboxed guest with its keyed state, timers and output — whose calls the runtime makes.
//!
//! The generated bindings are private: callers see host types ([`Batch`],
//! [`TimeDomain`], [`StateEntry`]) and typed failures ([`GuestFailure`]).
//!
//! [`Batch`]: rivulet_dataflow::Batch
//! [`TimeDomain`]: rivulet_state::TimeDomain
//! [`StateEntry`]: rivulet_state::StateEntry

mod bindings;
mod engine;
mod error;
mod guest_io;
mod guest_log;
mod imports;
mod instance;
mod main_output;
mod sandbox;

pub use bindings::Contract;
pub use engine::{DEFAULT_MAX_FILE_BYTES, Limits, Plugin, PluginEngine, SMALL_COMPONENT_BYTES};
pub use error::{FailureKind, GuestFailure, PluginError};
pub use guest_log::{GUEST_LOG_LINES, GuestLog, GuestLogLevel, GuestLogLine};
pub use instance::{InstanceSetup, OperatorInstance, Output};

/// The world new operator components implement (the host also runs components built
/// against the older contracts in [`Contract::ALL`]).
pub const WORLD: &str = "rivulet:operator/rivulet-operator@0.4.0";
