//! What goes wrong loading a plugin or running a guest.

use std::fmt;

use crate::WORLD;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("plugin '{name}': cannot read {path}: {error}")]
    Read {
        /// Plugin name.
        name: String,
        /// The path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The path is not a regular file (a device, a pipe, a directory).
    #[error("plugin '{name}': {path} is not a regular file (a plugin is a .wasm component file, not a device, pipe or directory)")]
    NotAFile {
        /// Plugin name.
        name: String,
        /// The path.
        path: String,
    },
    /// The file is larger than the limit.
    #[error("plugin '{name}': {path} is larger than {} MiB, the largest plugin file accepted", limit >> 20)]
    TooLarge {
        /// Plugin name.
        name: String,
        /// The path.
        path: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The bytes are not WebAssembly at all.
    #[error("plugin '{name}' is not a WebAssembly file (no `\\0asm` header)")]
    NotWasm {
        /// Plugin name.
        name: String,
    },
    /// A core module where a component is needed.
    #[error(
        "plugin '{name}' is a core WebAssembly module, not a component: build it for the `wasm32-wasip2` target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// Plugin name.
        name: String,
    },
    /// The component is malformed or failed to compile.
    #[error("plugin '{name}' is not a valid component: {reason}")]
    Invalid {
        /// Plugin name.
        name: String,
        /// Compiler's reason.
        reason: String,
    },
    /// The component does not implement the operator world.
    #[error("plugin '{name}' does not match the world {WORLD}: {reason}")]
    WorldMismatch {
        /// Plugin name.
        name: String,
        /// What is missing or mismatched.
        reason: String,
    },
    /// The engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// What went wrong inside a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The component could not be instantiated.
    Instantiate,
    /// The guest trapped (panic, unreachable, bad state access…).
    Trap,
    /// A call ran past the per-call time limit.
    Timeout,
    /// The guest tried to grow its memory past the limit.
    MemoryLimit,
    /// The guest returned an error.
    GuestError,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Instantiate => "instantiation failed",
            FailureKind::Trap => "trap",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory limit",
            FailureKind::GuestError => "operator error",
        })
    }
}

/// A failure of one operator instance, naming the operator and its plugin.
#[derive(Debug, Clone, thiserror::Error)]
#[error("operator '{operator}' (plugin {plugin}) failed [{kind}]: {message}")]
pub struct GuestFailure {
    /// The operator's uid.
    pub operator: String,
    /// The plugin's label (name and digest).
    pub plugin: String,
    /// Classification.
    pub kind: FailureKind,
    /// Human-readable reason.
    pub message: String,
}

impl GuestFailure {
    /// A failure of `operator` running `plugin`.
    pub fn new(operator: &str, plugin: &str, kind: FailureKind, message: String) -> Self {
        GuestFailure { operator: operator.to_owned(), plugin: plugin.to_owned(), kind, message }
    }
}
