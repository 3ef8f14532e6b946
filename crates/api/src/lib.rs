//! The REST API of `rivulet server`: routes over the server core (`rivulet-server`),
//! bearer-token auth, body limits, JSON errors, the OpenAPI document generated from the
//! handlers (utoipa), Prometheus metrics, and the web UI embedded in the binary.
//!
//! Every handler is a thin shell: parse and check the request, call the registry or the
//! job manager, map a `ServerError` to a status and `{"error": …}`.

mod auth;
mod body;
mod error;
mod listener;
mod metrics;
mod openapi;
mod routes;
mod shutdown;
mod tls;
pub mod ui;

pub use auth::{Role, Tokens};
pub use error::{ApiError, ErrorBody};
pub use listener::ConnectionLimits;
pub use openapi::ApiDoc;
pub use routes::jobs::SubmitRequest;
pub use routes::operations::{RescaleRequest, StopRequest, UpgradeRequest};
pub use routes::system::{Health, HealthStatus};
pub use tls::{TlsError, TlsFiles};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use rivulet_plugin::PluginEngine;
use rivulet_server::{AccessPolicy, BucketPattern, HostPattern, JobDefaults, JobManager, PluginRegistry, ServerError};
use rivulet_state::BackendKind;

/// How to run a server.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Where metadata, plugins, checkpoints and state live.
    pub data_dir: PathBuf,
    /// Bearer tokens with their roles; every route but `/healthz` requires one (when set).
    pub auth: Option<Tokens>,
    /// Largest plugin upload in bytes.
    pub max_plugin_bytes: usize,
    /// Checkpoint interval for jobs whose spec sets none.
    pub checkpoint_interval: Duration,
    /// State backend for jobs that set none.
    pub state_backend: BackendKind,
    /// Directories jobs may read and write below, besides `<data-dir>/files/`.
    pub allow_paths: Vec<PathBuf>,
    /// Hosts jobs' connectors may connect to (none by default).
    pub allow_connect: Vec<HostPattern>,
    /// S3 buckets jobs may use (none by default); their endpoint must be in `allow_connect`.
    pub allow_buckets: Vec<BucketPattern>,
    /// Connections served at once and the time their headers may take.
    pub connections: ConnectionLimits,
    /// Guest memory (MiB) the running jobs' instances may be allowed in sum.
    pub guest_memory_mb: u64,
    /// Bytes of plugin uploads being received and compiled at once, server-wide.
    pub upload_buffer_bytes: usize,
    /// The cluster whose workers run the jobs' tasks (`None`: in this process).
    pub cluster: Option<rivulet_cluster::Cluster>,
    /// Serve HTTPS with this certificate and key (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("auth", &self.auth)
            .field("max_plugin_bytes", &self.max_plugin_bytes)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("state_backend", &self.state_backend)
            .field("allow_paths", &self.allow_paths)
            .field("allow_connect", &self.allow_connect)
            .field("allow_buckets", &self.allow_buckets)
            .field("connections", &self.connections)
            .field("guest_memory_mb", &self.guest_memory_mb)
            .field("upload_buffer_bytes", &self.upload_buffer_bytes)
            .field("cluster", &self.cluster)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults: 127.0.0.1:8080, no token, 64 MiB uploads, checkpoints every second,
    /// memory state, files only below `<data-dir>/files/`, no connections, guests
    /// allowed three quarters of the machine's memory, plain HTTP.
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            auth: None,
            max_plugin_bytes: 64 << 20,
            checkpoint_interval: Duration::from_secs(1),
            state_backend: BackendKind::Memory,
            allow_paths: Vec::new(),
            allow_connect: Vec::new(),
            allow_buckets: Vec::new(),
            connections: ConnectionLimits::from_fd_limit(),
            guest_memory_mb: default_guest_memory_mb(),
            upload_buffer_bytes: 256 << 20,
            cluster: None,
            tls: None,
        }
    }
}

/// Three quarters of the machine's memory (8 GiB where it cannot be read), in MiB.
fn default_guest_memory_mb() -> u64 {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())));
    total_kb.map_or(8 << 10, |kb| kb / 1024 * 3 / 4)
}

/// What the handlers share.
pub struct AppState {
    /// Plugins.
    pub registry: Arc<PluginRegistry>,
    /// Jobs.
    pub jobs: Arc<JobManager>,
    /// The configuration.
    pub config: ServerConfig,
    /// When the server started.
    pub started: Instant,
    /// Upload bytes being received and compiled, server-wide, in KiB permits.
    pub upload_buffer: Arc<tokio::sync::Semaphore>,
}

type Shared = Arc<AppState>;

/// All routes.
pub fn router(state: Shared) -> Router {
    use routes::{jobs, operations, plugins, system, workers};
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics_text))
        .route("/v1/session", get(system::session))
        .route("/v1/openapi.json", get(system::openapi_json))
        .route("/v1/plugins", post(plugins::upload_plugin).get(plugins::list_plugins))
        .route("/v1/plugins/{name}/{version}", get(plugins::get_plugin).delete(plugins::delete_plugin))
        .route("/v1/jobs", post(jobs::submit_job).get(jobs::list_jobs))
        .route("/v1/workers", get(workers::list_workers))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/exceptions", get(jobs::job_exceptions))
        .route("/v1/jobs/{id}/checkpoints", get(jobs::job_checkpoints))
        .route("/v1/jobs/{id}/history", get(jobs::job_history))
        .route("/v1/jobs/{id}/logs", get(jobs::job_logs))
        .route("/v1/jobs/{id}/savepoints", post(operations::trigger_savepoint))
        .route("/v1/jobs/{id}/savepoints/{trigger}", get(operations::get_savepoint))
        .route("/v1/savepoints", get(operations::list_savepoints))
        .route("/v1/jobs/{id}/stop", post(operations::stop_job))
        .route("/v1/jobs/{id}/rescale", post(operations::rescale_job))
        .route("/v1/jobs/{id}/upgrade", post(operations::upgrade_job))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth::auth))
        // Handlers read bodies themselves, each with its own limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Open the data dir, resume jobs, serve until a shutdown signal (SIGTERM, SIGINT) or
/// the process ends; after a signal, return once the jobs' graceful shutdown is recorded.
pub async fn serve(config: ServerConfig, engine: Arc<PluginEngine>) -> Result<(), ServerError> {
    if config.auth.is_none() && !config.listen.ip().is_loopback() {
        return Err(ServerError::BadRequest(format!(
            "refusing to listen on {} without authentication: pass --auth-token-file (or bind 127.0.0.1)",
            config.listen
        )));
    }
    // A certificate or key that does not load stops the server before it resumes jobs.
    let tls = config.tls.as_ref().map(TlsFiles::acceptor).transpose().map_err(|e| ServerError::BadRequest(e.to_string()))?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| ServerError::Internal(format!("{}: {e}", config.data_dir.display())))?;
    // From here (before jobs resume) SIGTERM and SIGINT shut the server down gracefully.
    let shutdown = shutdown::signal().map_err(|e| ServerError::Internal(format!("installing the signal handlers: {e}")))?;
    // Registered plugins are read back from their files: as large as an upload may be.
    engine.set_max_file_bytes((config.max_plugin_bytes as u64).max(rivulet_plugin::DEFAULT_MAX_FILE_BYTES));
    let registry = Arc::new(PluginRegistry::open(&config.data_dir, engine)?);
    let access = AccessPolicy::new(&config.data_dir, &config.allow_paths, config.allow_connect.clone())?.with_buckets(config.allow_buckets.clone());
    let defaults = JobDefaults {
        checkpoint_interval: config.checkpoint_interval,
        state_backend: config.state_backend,
        access,
        guest_memory_mb: config.guest_memory_mb,
        hosts: config.cluster.clone().map(|c| Arc::new(c) as Arc<dyn rivulet_runtime::TaskHosts>),
    };
    let jobs = JobManager::open(&config.data_dir, registry.clone(), defaults).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::BadRequest(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(|e| ServerError::Internal(e.to_string()))?;
    let limits = config.connections;
    let upload_buffer = Arc::new(tokio::sync::Semaphore::new((config.upload_buffer_bytes >> 10).max(1)));
    let manager = jobs.clone();
    let state = Arc::new(AppState { registry, jobs, config, started: Instant::now(), upload_buffer });
    let app = router(state);
    // The line tests and scripts wait for (the port is known even with `:0`).
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("[rivulet] server listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, "server listening");
    shutdown::serve_until(listener::serve(listener, app, limits, tls), shutdown, &manager).await;
    Ok(())
}
