//! The cluster's workers, as the coordinator sees them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::json;
use crate::Shared;
use crate::error::ErrorBody;

/// Where the server runs jobs' tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    /// In the server's own process.
    Embedded,
    /// On registered workers.
    Cluster,
}

/// One registered worker.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Its id (a worker that registers again gets a new one).
    pub id: u32,
    /// Its name (host or pod name).
    pub name: String,
    /// The host other workers reach it at.
    pub host: String,
    /// Task slots.
    pub slots: u32,
    /// Runs it has a share of.
    pub runs: u64,
    /// Tasks it runs.
    pub tasks: u64,
    /// Slots no run holds.
    pub free_slots: u32,
    /// The job it was made for (a pod of the `kubernetes` scheduler runs only that job's
    /// tasks); absent: any job's.
    pub pool: Option<String>,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// Seconds since it registered.
    pub registered_s: f64,
}

/// `GET /v1/workers`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkersView {
    /// Where tasks run.
    pub scheduler: SchedulerKind,
    /// The address workers connect to (cluster only).
    pub cluster_addr: Option<String>,
    /// Registered workers (none when embedded).
    pub workers: Vec<WorkerInfo>,
}

/// The registered workers with their slots, tasks and heartbeat age.
#[utoipa::path(get, path = "/v1/workers", responses((status = 200, body = WorkersView), (status = 401, body = ErrorBody)))]
pub async fn list_workers(State(state): State<Shared>) -> Response {
    let view = match &state.config.cluster {
        None => WorkersView { scheduler: SchedulerKind::Embedded, cluster_addr: None, workers: Vec::new() },
        Some(c) => WorkersView {
            scheduler: SchedulerKind::Cluster,
            cluster_addr: Some(c.addr().to_string()),
            workers: c
                .workers()
                .into_iter()
                .map(|w| WorkerInfo {
                    id: w.id,
                    name: w.name,
                    host: w.host,
                    slots: w.slots,
                    runs: w.runs as u64,
                    tasks: w.tasks as u64,
                    free_slots: w.free_slots,
                    pool: w.pool,
                    heartbeat_age_s: w.heartbeat_age_s,
                    registered_s: w.registered_s,
                })
                .collect(),
        },
    };
    json(StatusCode::OK, &view)
}
