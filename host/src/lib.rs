//! Rivulet's host: runs stream-processing jobs whose operators are WebAssembly
//! components of the `rivulet:operator@0.2.0` world.
//!
//! - [`plugin`]: the wasmtime engine, compile cache, world checks, limits, host imports.
//! - [`job`]: job specs and their validation into a dataflow graph.
//! - [`runtime`]: tasks, channels, partitioning, chaining, watermarks, timers, windows.
//! - [`state`]: keyed state over the in-memory and RocksDB backends, key groups.
//! - [`connectors`]: built-in sources and sinks.
//! - [`checkpoint`]: checkpoints and savepoints (the protocol in one place).
//! - [`server`]: server mode — plugin registry, job lifecycle, hot swap.
//! - [`api`]: the REST API over the server, with auth, metrics and OpenAPI.
//! - [`cli`]: the `rivulet` command line ([`client`]: its server client).

pub mod api;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod connectors;
pub mod error;
pub mod job;
pub mod plugin;
pub mod runtime;
pub mod server;
pub mod state;

pub use error::{FailureKind, GuestFailure, JobError};
