//! The REST API of `rivulet server`: routes, handlers, bearer-token auth, body limits,
//! JSON errors and the OpenAPI document generated from the handlers (utoipa).
//!
//! Every handler is a thin shell over [`crate::server`]: parse and check the request,
//! call the registry or the job manager, map [`ServerError`] to a status and
//! `{"error": …}`.

mod metrics;
pub mod ui;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest as _, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

use crate::job::JobSpec;
use crate::plugin::GuestLogLine;
use crate::server::jobs::{
    CheckpointsView, EdgeStatus, ExceptionInfo, HistoryEvent, JobDetail, JobRecord, JobStatus, NodeStatus, PluginRef, SavepointInfo, SnapshotStat, Submission,
    UpgradeOutcome,
};
use crate::server::{AppState, PluginMeta, ServerError};
use crate::state::BackendKind;

/// Largest JSON (or YAML) request body.
pub const MAX_JSON_BYTES: usize = 1 << 20;

type Shared = Arc<AppState>;
type ApiResult<T> = Result<T, ServerError>;

/// The error body of every failed request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = match &self {
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::Unauthorized => StatusCode::UNAUTHORIZED,
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::Conflict(_) => StatusCode::CONFLICT,
            ServerError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServerError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServerError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let error = match &self {
            ServerError::Internal(detail) => {
                tracing::error!(%detail, "internal error serving a request");
                "internal error (details are in the server log)".to_owned()
            }
            other => other.to_string(),
        };
        let mut resp = (status, axum::Json(ErrorBody { error })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // What was not drained of the body is still on the wire.
            resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        resp
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

/// How much of an oversized body is still read (and thrown away) before answering 413,
/// so a client that is still sending gets the answer instead of a reset connection.
const DRAIN_BYTES: usize = 256 << 20;

/// Read a body of at most `limit` bytes.
async fn read_body(body: Body, limit: usize, what: &str) -> ApiResult<Bytes> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ServerError::BadRequest(format!("reading {what}: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            if total > limit.saturating_add(DRAIN_BYTES) {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk);
    }
    if total > limit {
        return Err(ServerError::TooLarge(format!("{what} is larger than {limit} bytes")));
    }
    Ok(Bytes::from(buf))
}

/// Parse a JSON body into `T`, naming the field at fault (unknown fields are rejected).
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(|e| ServerError::BadRequest(format!("request body: {e}")));
    }
    serde_json::from_slice(bytes).map_err(|e| ServerError::BadRequest(format!("request body: {e}")))
}

/// Constant-time comparison of a presented token with the configured one (both hashed
/// first, so neither length nor content leaks through timing).
fn token_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(expected) = &state.config.auth_token
        && req.uri().path() != "/healthz"
        && !(ui::is_read(req.method()) && ui::is_ui_path(req.uri().path()))
    {
        let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| token_matches(p.trim(), expected)) {
            // The body of an unauthenticated request is not read: the connection closes.
            let mut resp = ServerError::Unauthorized.into_response();
            resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            return resp;
        }
    }
    next.run(req).await
}

/// All routes.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/plugins", post(upload_plugin).get(list_plugins))
        .route("/v1/plugins/{name}/{version}", get(get_plugin).delete(delete_plugin))
        .route("/v1/jobs", post(submit_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/exceptions", get(job_exceptions))
        .route("/v1/jobs/{id}/checkpoints", get(job_checkpoints))
        .route("/v1/jobs/{id}/history", get(job_history))
        .route("/v1/jobs/{id}/logs", get(job_logs))
        .route("/v1/jobs/{id}/savepoints", post(trigger_savepoint))
        .route("/v1/jobs/{id}/savepoints/{trigger}", get(get_savepoint))
        .route("/v1/savepoints", get(list_savepoints))
        .route("/v1/jobs/{id}/stop", post(stop_job))
        .route("/v1/jobs/{id}/rescale", post(rescale_job))
        .route("/v1/jobs/{id}/upgrade", post(upgrade_job))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        // Handlers read bodies themselves, each with its own limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn method_not_allowed(req: Request) -> Response {
    let body = ErrorBody { error: format!("method {} is not allowed on {}", req.method(), req.uri().path()) };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

async fn not_found(req: Request) -> Response {
    if ui::is_read(req.method()) && ui::is_ui_path(req.uri().path()) {
        let head = req.method() == axum::http::Method::HEAD;
        let mut resp = ui::serve(req.uri().clone()).await;
        if head {
            *resp.body_mut() = Body::empty();
        }
        return resp;
    }
    ServerError::NotFound(format!("route {} {}", req.method(), req.uri().path())).into_response()
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Whether this binary serves the web UI at `/`.
    pub ui: bool,
    /// Whether the API needs a bearer token.
    pub auth: bool,
}

/// Liveness, version and uptime (no token needed).
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health, description = "The server is up")))]
async fn healthz(State(state): State<Shared>) -> Response {
    let health = Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started.elapsed().as_secs_f64(),
        ui: ui::is_built(),
        auth: state.config.auth_token.is_some(),
    };
    json(StatusCode::OK, &health)
}

/// Metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition")))]
async fn metrics_text(State(state): State<Shared>) -> Response {
    let text = metrics::render(&state);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "The OpenAPI document")))]
async fn openapi_json() -> Response {
    json(StatusCode::OK, &ApiDoc::openapi())
}

/// Query of a plugin upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// Plugin name.
    name: String,
    /// Plugin version.
    version: String,
}

/// Upload a component: the raw bytes as the body, or a multipart form with one file
/// field. It is compiled and checked against the `rivulet:operator` world before
/// anything is stored.
#[utoipa::path(post, path = "/v1/plugins", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "The component (or multipart/form-data with a file field)"),
    responses((status = 201, body = PluginMeta, description = "Registered"), (status = 200, body = PluginMeta, description = "Already registered with these bytes"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody, description = "Not an operator component")))]
async fn upload_plugin(
    State(state): State<Shared>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> ApiResult<Response> {
    let limit = state.config.max_plugin_bytes;
    let is_multipart = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("multipart/form-data"));
    let (parts, body) = req.into_parts();
    // The body is read before anything is judged, so the connection stays usable.
    let bytes = read_body(body, limit, "the plugin upload").await?;
    let Query(q) = query.map_err(|e| ServerError::BadRequest(format!("query: {}", e.body_text())))?;
    let bytes = if is_multipart {
        let req = Request::from_parts(parts, Body::from(bytes));
        let mut form = Multipart::from_request(req, &()).await.map_err(|e| ServerError::BadRequest(format!("multipart: {}", e.body_text())))?;
        let mut file = None;
        while let Some(field) = form.next_field().await.map_err(|e| ServerError::BadRequest(format!("multipart: {}", e.body_text())))? {
            let data = field.bytes().await.map_err(|e| ServerError::BadRequest(format!("multipart: {}", e.body_text())))?;
            if file.replace(data).is_some() {
                return Err(ServerError::BadRequest("multipart: send exactly one field, the component".into()));
            }
        }
        file.ok_or_else(|| ServerError::BadRequest("multipart: no field holds the component".into()))?
    } else {
        bytes
    };
    if bytes.is_empty() {
        return Err(ServerError::BadRequest("the body is empty: send the component's bytes".into()));
    }
    let (meta, created) = state.registry.upload(&q.name, &q.version, bytes.to_vec()).await?;
    Ok(json(if created { StatusCode::CREATED } else { StatusCode::OK }, &meta))
}

/// Every registered plugin version.
#[utoipa::path(get, path = "/v1/plugins", responses((status = 200, body = [PluginMeta])))]
async fn list_plugins(State(state): State<Shared>) -> Response {
    json(StatusCode::OK, &state.registry.list())
}

/// One plugin version.
#[utoipa::path(get, path = "/v1/plugins/{name}/{version}", params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = PluginMeta), (status = 404, body = ErrorBody)))]
async fn get_plugin(State(state): State<Shared>, Path((name, version)): Path<(String, String)>) -> ApiResult<Response> {
    let meta = state.registry.get(&name, &version).ok_or_else(|| ServerError::NotFound(format!("plugin {name}@{version}")))?;
    Ok(json(StatusCode::OK, &meta))
}

/// Remove a plugin version (refused while a running job uses it).
#[utoipa::path(delete, path = "/v1/plugins/{name}/{version}", params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = PluginMeta), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_plugin(State(state): State<Shared>, Path((name, version)): Path<(String, String)>) -> ApiResult<Response> {
    if let Some(job) = state.jobs.uses_plugin(&name, &version) {
        return Err(ServerError::Conflict(format!("plugin {name}@{version} is used by running job {job}")));
    }
    Ok(json(StatusCode::OK, &state.registry.delete(&name, &version)?))
}

/// A job submission (JSON). A YAML body (`Content-Type: application/yaml`) is the spec
/// alone.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The job spec: an object, or YAML text. Operators name plugins as `name@version`
    /// or `sha256:<digest>`.
    #[schema(value_type = Value)]
    pub spec: serde_json::Value,
    /// Fill `${NAME}` placeholders of a YAML spec.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Start from this savepoint (or checkpoint) directory.
    #[serde(default)]
    pub savepoint: Option<String>,
    /// Drop state of operators the job does not have.
    #[serde(default)]
    pub allow_non_restored_state: bool,
    /// Parallelism of operators (overrides the spec's).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// `memory` or `rocksdb`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub state_backend: Option<BackendKind>,
}

/// Query of a YAML submission.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SubmitQuery {
    /// Start from this savepoint.
    savepoint: Option<String>,
    /// Drop unmatched operator state.
    #[serde(default)]
    allow_non_restored_state: bool,
    /// Parallelism override.
    parallelism: Option<u32>,
}

/// Submit a job and start it.
#[utoipa::path(post, path = "/v1/jobs", params(SubmitQuery), request_body(content = SubmitRequest, description = "JSON submission, or the YAML spec with Content-Type application/yaml"),
    responses((status = 201, body = JobRecord), (status = 400, body = ErrorBody)))]
async fn submit_job(
    State(state): State<Shared>,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the job submission").await?;
    let Query(q) = query.map_err(|e| ServerError::BadRequest(format!("query: {}", e.body_text())))?;
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let sub = if ctype.contains("yaml") {
        let text = std::str::from_utf8(&bytes).map_err(|_| ServerError::BadRequest("the YAML spec is not UTF-8".into()))?;
        let spec = JobSpec::parse(text, "request body", &BTreeMap::new()).map_err(|e| ServerError::BadRequest(e.to_string()))?;
        Submission {
            spec,
            savepoint: q.savepoint,
            allow_non_restored_state: q.allow_non_restored_state,
            parallelism: q.parallelism,
            state_backend: None,
        }
    } else {
        let req: SubmitRequest = parse_json(&bytes)?;
        let spec = match req.spec {
            serde_json::Value::String(text) => JobSpec::parse(&text, "spec", &req.params),
            mut other => {
                // Params fill placeholders inside string values only, so a value cannot
                // add fields to the spec.
                substitute_in_strings(&mut other, &req.params)?;
                let text = serde_json::to_string(&other).map_err(|e| ServerError::BadRequest(e.to_string()))?;
                JobSpec::parse(&text, "spec", &BTreeMap::new())
            }
        }
        .map_err(|e| ServerError::BadRequest(e.to_string()))?;
        Submission {
            spec,
            savepoint: req.savepoint.or(q.savepoint),
            allow_non_restored_state: req.allow_non_restored_state || q.allow_non_restored_state,
            parallelism: req.parallelism.or(q.parallelism),
            state_backend: req.state_backend,
        }
    };
    if sub.parallelism == Some(0) {
        return Err(ServerError::BadRequest("parallelism must be at least 1".into()));
    }
    let record = state.jobs.submit(sub)?;
    Ok(json(StatusCode::CREATED, &record))
}

fn substitute_in_strings(v: &mut serde_json::Value, params: &BTreeMap<String, String>) -> ApiResult<()> {
    match v {
        serde_json::Value::String(s) if s.contains("${") => {
            *s = crate::job::substitute_params(s, params).map_err(|e| ServerError::BadRequest(e.to_string()))?;
        }
        serde_json::Value::Array(a) => a.iter_mut().try_for_each(|x| substitute_in_strings(x, params))?,
        serde_json::Value::Object(o) => o.values_mut().try_for_each(|x| substitute_in_strings(x, params))?,
        _ => {}
    }
    Ok(())
}

/// Every job.
#[utoipa::path(get, path = "/v1/jobs", responses((status = 200, body = [JobRecord])))]
async fn list_jobs(State(state): State<Shared>) -> Response {
    json(StatusCode::OK, &state.jobs.list())
}

/// A job: status, operators with parallelism, records in and out, watermarks,
/// backpressure, the last checkpoint.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path)), responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)))]
async fn get_job(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.detail(&id)?))
}

/// Task failures of a job (traps with the guest's message, guest errors…).
#[utoipa::path(get, path = "/v1/jobs/{id}/exceptions", params(("id" = String, Path)), responses((status = 200, body = [ExceptionInfo]), (status = 404, body = ErrorBody)))]
async fn job_exceptions(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let detail = state.jobs.detail(&id)?;
    Ok(json(StatusCode::OK, &detail.record.exceptions))
}

/// Checkpoints: retained in storage, completed (with size and duration), failed.
#[utoipa::path(get, path = "/v1/jobs/{id}/checkpoints", params(("id" = String, Path)), responses((status = 200, body = CheckpointsView), (status = 404, body = ErrorBody)))]
async fn job_checkpoints(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.checkpoints(&id).await?))
}

/// Versions, swaps (with downtime), rollbacks, rescales, savepoints, stops.
#[utoipa::path(get, path = "/v1/jobs/{id}/history", params(("id" = String, Path)), responses((status = 200, body = [HistoryEvent]), (status = 404, body = ErrorBody)))]
async fn job_history(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let detail = state.jobs.detail(&id)?;
    Ok(json(StatusCode::OK, &detail.record.history))
}

/// What the job's guests logged (SDK log calls, stdout, stderr), oldest first; the last
/// 2000 lines since the server started.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", params(("id" = String, Path)), responses((status = 200, body = [GuestLogLine]), (status = 404, body = ErrorBody)))]
async fn job_logs(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.logs(&id)?))
}

/// Take a savepoint; returns its trigger id.
#[utoipa::path(post, path = "/v1/jobs/{id}/savepoints", params(("id" = String, Path)), responses((status = 202, body = SavepointInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn trigger_savepoint(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the request").await?;
    let _: Empty = parse_json(&bytes)?;
    Ok(json(StatusCode::ACCEPTED, &state.jobs.trigger_savepoint(&id)?))
}

/// An empty JSON object (unknown fields rejected).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// A savepoint by trigger id.
#[utoipa::path(get, path = "/v1/jobs/{id}/savepoints/{trigger}", params(("id" = String, Path), ("trigger" = String, Path)),
    responses((status = 200, body = SavepointInfo), (status = 404, body = ErrorBody)))]
async fn get_savepoint(State(state): State<Shared>, Path((id, trigger)): Path<(String, String)>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.savepoint(&id, &trigger)?))
}

/// Every savepoint of every job.
#[utoipa::path(get, path = "/v1/savepoints", responses((status = 200, body = [SavepointInfo])))]
async fn list_savepoints(State(state): State<Shared>) -> Response {
    json(StatusCode::OK, &state.jobs.all_savepoints())
}

/// Stop request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// Drain, take a savepoint and commit the sinks before stopping.
    #[serde(default)]
    pub savepoint: bool,
}

/// Stop a job (with `{"savepoint": true}`: drained and committed first).
#[utoipa::path(post, path = "/v1/jobs/{id}/stop", params(("id" = String, Path)), request_body = StopRequest,
    responses((status = 200, body = JobRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn stop_job(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the request").await?;
    let req: StopRequest = parse_json(&bytes)?;
    Ok(json(StatusCode::OK, &state.jobs.stop(&id, req.savepoint).await?))
}

/// Rescale request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescaleRequest {
    /// The new parallelism of operators.
    pub parallelism: u32,
}

/// Change a job's parallelism through a savepoint (state redistributed by key group).
#[utoipa::path(post, path = "/v1/jobs/{id}/rescale", params(("id" = String, Path)), request_body = RescaleRequest,
    responses((status = 200, body = UpgradeOutcome), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rescale_job(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
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
    pub parallelism: Option<u32>,
    /// Only check: validate the versions and dry-run their `migrate-state` on the latest
    /// snapshot, and leave the job running as it is (`result` = `dry_run_ok`).
    #[serde(default)]
    pub dry_run: bool,
}

/// Hot swap: new plugin versions per operator uid, through a savepoint, with
/// `migrate-state` dry-run first and an automatic rollback when the new version fails.
/// With `dry_run`, only the checks run and the job is left alone.
#[utoipa::path(post, path = "/v1/jobs/{id}/upgrade", params(("id" = String, Path)), request_body = UpgradeRequest,
    responses((status = 200, body = UpgradeOutcome), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upgrade_job(State(state): State<Shared>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the request").await?;
    let req: UpgradeRequest = parse_json(&bytes)?;
    if req.dry_run {
        return Ok(json(StatusCode::OK, &state.jobs.check_upgrade(&id, &req.plugins, req.parallelism).await?));
    }
    Ok(json(StatusCode::OK, &state.jobs.upgrade(&id, &req.plugins, req.parallelism).await?))
}

/// The OpenAPI document, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "Rivulet", description = "Stream processing with WebAssembly operators: plugins, jobs, savepoints, hot swap."),
    paths(
        healthz, metrics_text, openapi_json, upload_plugin, list_plugins, get_plugin, delete_plugin, submit_job, list_jobs, get_job,
        job_exceptions, job_checkpoints, job_history, job_logs, trigger_savepoint, get_savepoint, list_savepoints, stop_job, rescale_job, upgrade_job
    ),
    components(schemas(
        ErrorBody, Health, PluginMeta, JobRecord, JobStatus, JobDetail, NodeStatus, EdgeStatus, SnapshotStat, CheckpointsView, HistoryEvent, ExceptionInfo,
        SavepointInfo, PluginRef, UpgradeOutcome, GuestLogLine, SubmitRequest, StopRequest, RescaleRequest, UpgradeRequest
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    /// The web UI's API types are generated from a copy of the OpenAPI document: it must
    /// be this server's, or the UI would type-check against an API that is not there.
    #[test]
    fn the_web_ui_has_the_current_openapi_document() {
        let want = format!("{}\n", super::ApiDoc::openapi().to_pretty_json().expect("the document serializes"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../web-ui/src/api/openapi.json");
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "{path} is not the server's OpenAPI document: run `make ui-api` (rivulet openapi > {path}) and rebuild the UI");
    }
}
