//! Acting on a running job: savepoints, stop, rescale, the hot swap (and its dry run).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use rivulet_server::{JobRecord, SavepointInfo, StopMode, UpgradeOutcome};
use serde::Deserialize;

use super::json;
use crate::Shared;
use crate::body::{Empty, MAX_JSON_BYTES, parse_json, read_body};
use crate::error::{ApiResult, ErrorBody};

/// Take a savepoint; returns its trigger id.
#[utoipa::path(post, path = "/v1/jobs/{id}/savepoints", params(("id" = String, Path)), responses((status = 202, body = SavepointInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn trigger_savepoint(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the request").await?;
    let _: Empty = parse_json(&bytes)?;
    Ok(json(StatusCode::ACCEPTED, &state.jobs.trigger_savepoint(&id)?))
}

/// A savepoint by trigger id.
#[utoipa::path(get, path = "/v1/jobs/{id}/savepoints/{trigger}", params(("id" = String, Path), ("trigger" = String, Path)),
    responses((status = 200, body = SavepointInfo), (status = 404, body = ErrorBody)))]
pub async fn get_savepoint(State(state): State<Shared>, Path((id, trigger)): Path<(String, String)>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.savepoint(&id, &trigger)?))
}

/// Every savepoint of every job.
#[utoipa::path(get, path = "/v1/savepoints", responses((status = 200, body = [SavepointInfo])))]
pub async fn list_savepoints(State(state): State<Shared>) -> Response {
    json(StatusCode::OK, &state.jobs.all_savepoints())
}

/// Stop request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Drain, take a savepoint and commit the sinks before stopping.
    #[serde(default)]
    pub savepoint: bool,
    /// How long to wait for the savepoint (default 60000 ms). When it has not completed
    /// by then it is given up: the answer is a 409, and the job restarts from its latest
    /// checkpoint — or, with `cancel_if_savepoint_fails`, is cancelled.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    pub timeout_ms: Option<u32>,
    /// Cancel the job when its savepoint fails or times out, instead of letting it run on.
    #[serde(default)]
    pub cancel_if_savepoint_fails: bool,
}

/// Stop a job (with `{"savepoint": true}`: drained and committed first).
#[utoipa::path(post, path = "/v1/jobs/{id}/stop", params(("id" = String, Path)), request_body(content = Option<StopRequest>, description = "Optional: no body (or `null`) is a plain cancel"),
    responses((status = 200, body = JobRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn stop_job(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the request").await?;
    let req: StopRequest = parse_json(&bytes)?;
    let how = match req.savepoint {
        false => StopMode::Cancel,
        true => StopMode::Savepoint {
            timeout: std::time::Duration::from_millis(u64::from(req.timeout_ms.unwrap_or(60_000).clamp(100, 3_600_000))),
            cancel_on_failure: req.cancel_if_savepoint_fails,
        },
    };
    Ok(json(StatusCode::OK, &state.jobs.stop(&id, how).await?))
}

/// Rescale request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescaleRequest {
    /// The new parallelism of operators.
    #[schema(minimum = 1, maximum = 32768)]
    pub parallelism: u32,
}

/// Change a job's parallelism through a savepoint (state redistributed by key group).
#[utoipa::path(post, path = "/v1/jobs/{id}/rescale", params(("id" = String, Path)), request_body = RescaleRequest,
    responses((status = 200, body = UpgradeOutcome), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rescale_job(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the request").await?;
    let req: RescaleRequest = parse_json(&bytes)?;
    Ok(json(StatusCode::OK, &state.jobs.upgrade(&id, &BTreeMap::new(), Some(req.parallelism)).await?))
}

/// Upgrade request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// New plugin per operator uid: `name@version` or `sha256:<digest>`.
    #[serde(default)]
    pub plugins: BTreeMap<String, String>,
    /// A new parallelism too.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 32768)]
    pub parallelism: Option<u32>,
    /// Only check: validate the versions and dry-run their `migrate-state` on the latest
    /// snapshot, and leave the job running as it is (`result` = `dry_run_ok`).
    #[serde(default)]
    pub dry_run: bool,
}

/// Hot swap: new plugin versions per operator uid, through a savepoint, with
/// `migrate-state` dry-run first and an automatic rollback when the new version fails.
/// With `dry_run`, only the checks run and the job is left alone.
#[utoipa::path(post, path = "/v1/jobs/{id}/upgrade", params(("id" = String, Path)), request_body(content = Option<UpgradeRequest>, description = "Optional: no body (or `null`) is `{}`"),
    responses((status = 200, body = UpgradeOutcome), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upgrade_job(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the request").await?;
    let req: UpgradeRequest = parse_json(&bytes)?;
    if req.dry_run {
        return Ok(json(StatusCode::OK, &state.jobs.check_upgrade(&id, &req.plugins, req.parallelism).await?));
    }
    Ok(json(StatusCode::OK, &state.jobs.upgrade(&id, &req.plugins, req.parallelism).await?))
}
