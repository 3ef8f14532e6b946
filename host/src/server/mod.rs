//! Server mode: many jobs in one process behind the REST API ([`crate::api`]).
//!
//! - [`registry`]: uploaded plugins, validated and content-addressed.
//! - [`jobs`]: job lifecycle, savepoints, hot swap with rollback.
//! - [`store`]: metadata files that survive `kill -9`.
//!
//! Layout of `--data-dir`: `plugins/`, `jobs/<id>.json`, `checkpoints/<id>/` (unless a
//! job's spec names its own checkpoint location), `state/<id>/` (RocksDB working dirs).

pub mod jobs;
pub mod registry;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use jobs::{JobDefaults, JobManager, JobRecord, JobStatus};
pub use registry::{PluginMeta, PluginRegistry};

use crate::plugin::PluginEngine;
use crate::state::BackendKind;

/// A request the server refuses or cannot serve; the API maps each to a status code
/// and a JSON body `{"error": …}` without internals.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or a wrong bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 404.
    #[error("{0} not found")]
    NotFound(String),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// 422: well-formed but unusable (a component that is not an operator).
    #[error("{0}")]
    Unprocessable(String),
    /// 500: a failure on the server's side (details are logged, not returned).
    #[error("internal error: {0}")]
    Internal(String),
}

/// How to run a server.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Where metadata, plugins, checkpoints and state live.
    pub data_dir: PathBuf,
    /// Bearer token every route but `/healthz` requires (when set).
    pub auth_token: Option<String>,
    /// Largest plugin upload in bytes.
    pub max_plugin_bytes: usize,
    /// Checkpoint interval for jobs whose spec sets none.
    pub checkpoint_interval: Duration,
    /// State backend for jobs that set none.
    pub state_backend: BackendKind,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("max_plugin_bytes", &self.max_plugin_bytes)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("state_backend", &self.state_backend)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults: 127.0.0.1:8080, no token, 64 MiB uploads, checkpoints every second,
    /// memory state.
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            auth_token: None,
            max_plugin_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(1),
            state_backend: BackendKind::Memory,
        }
    }
}

/// What the API handlers share.
pub struct AppState {
    /// Plugins.
    pub registry: Arc<PluginRegistry>,
    /// Jobs.
    pub jobs: Arc<JobManager>,
    /// The configuration.
    pub config: ServerConfig,
    /// When the server started.
    pub started: std::time::Instant,
}

/// Open the data dir, resume jobs, serve until the process ends.
pub async fn serve(config: ServerConfig, engine: Arc<PluginEngine>) -> Result<(), ServerError> {
    if config.auth_token.is_none() && !config.listen.ip().is_loopback() {
        return Err(ServerError::BadRequest(format!(
            "refusing to listen on {} without authentication: pass --auth-token-file (or bind 127.0.0.1)",
            config.listen
        )));
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| ServerError::Internal(format!("{}: {e}", config.data_dir.display())))?;
    let registry = Arc::new(PluginRegistry::open(&config.data_dir, engine)?);
    let defaults = JobDefaults { checkpoint_interval: config.checkpoint_interval, state_backend: config.state_backend };
    let jobs = JobManager::open(&config.data_dir, registry.clone(), defaults).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::BadRequest(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(|e| ServerError::Internal(e.to_string()))?;
    let state = Arc::new(AppState { registry, jobs, config, started: std::time::Instant::now() });
    let app = crate::api::router(state);
    // The line tests and scripts wait for (the port is known even with `:0`).
    eprintln!("[rivulet] server listening on http://{addr}");
    tracing::info!(%addr, "server listening");
    axum::serve(listener, app).await.map_err(|e| ServerError::Internal(e.to_string()))
}
