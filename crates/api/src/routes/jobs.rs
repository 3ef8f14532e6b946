//! `/v1/jobs`: submission (JSON or YAML), the list, one job's detail, exceptions,
//! checkpoints, history and guest logs.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use rivulet_job::{JobSpec, Params};
use rivulet_plugin::GuestLogLine;
use rivulet_server::{CheckpointsView, ExceptionInfo, HistoryEvent, JobDetail, JobRecord, ServerError, Submission};
use rivulet_state::BackendKind;
use serde::Deserialize;

use super::json;
use crate::Shared;
use crate::body::{MAX_JSON_BYTES, parse_json, query as parse_query, read_body};
use crate::error::{ApiResult, ErrorBody};

/// A job submission (JSON). A YAML body (`Content-Type: application/yaml`) is the spec
/// alone.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The job spec: an object, or YAML text. Operators name plugins as `name@version`
    /// or `sha256:<digest>`.
    #[schema(value_type = SpecDoc)]
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
    #[schema(minimum = 1, maximum = 32768)]
    pub parallelism: Option<u32>,
    /// `memory` or `rocksdb`.
    #[serde(default)]
    pub state_backend: Option<BackendKind>,
}

/// How a job spec may be given (the OpenAPI document's view of `SubmitRequest::spec`).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SpecDoc {
    /// The spec as a JSON object (the job spec format: README, "Running jobs").
    Object(BTreeMap<String, serde_json::Value>),
    /// The spec as YAML text.
    Yaml(String),
}

/// Query of a YAML submission.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SubmitQuery {
    /// Start from this savepoint.
    savepoint: Option<String>,
    /// Drop unmatched operator state.
    #[serde(default)]
    allow_non_restored_state: bool,
    /// Parallelism override.
    #[param(minimum = 1, maximum = 32768)]
    parallelism: Option<u32>,
}

/// Submit a job and start it.
#[utoipa::path(post, path = "/v1/jobs", params(SubmitQuery), request_body(content = SubmitRequest, description = "JSON submission, or the YAML spec with Content-Type application/yaml"),
    responses((status = 201, body = JobRecord), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "a sink location another running job writes")))]
pub async fn submit_job(
    State(state): State<Shared>,
    query: Result<Query<SubmitQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let bytes = read_body(body, MAX_JSON_BYTES, "the job submission").await?;
    let q = parse_query(query)?;
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let sub = if ctype.contains("yaml") {
        let text = std::str::from_utf8(&bytes).map_err(|_| ServerError::BadRequest("the YAML spec is not UTF-8".into()))?;
        let spec = JobSpec::parse(text, "request body", &Params::default()).map_err(|e| ServerError::BadRequest(e.to_string()))?;
        Submission {
            spec,
            savepoint: q.savepoint,
            allow_non_restored_state: q.allow_non_restored_state,
            parallelism: q.parallelism,
            state_backend: None,
        }
    } else {
        let req: SubmitRequest = parse_json(&bytes)?;
        // Params fill placeholders inside string values only, after parsing, in both
        // forms: a value is data and cannot add fields to the spec.
        let params = Params::new(req.params);
        let spec = match req.spec {
            serde_json::Value::String(text) => JobSpec::parse(&text, "spec", &params),
            other => {
                let text = serde_json::to_string(&other).map_err(|e| ServerError::BadRequest(e.to_string()))?;
                JobSpec::parse(&text, "spec", &params)
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
        return Err(ServerError::BadRequest("parallelism must be at least 1".into()).into());
    }
    let record = state.jobs.submit(sub)?;
    Ok(json(StatusCode::CREATED, &record))
}

/// Every job.
#[utoipa::path(get, path = "/v1/jobs", responses((status = 200, body = [JobRecord])))]
pub async fn list_jobs(State(state): State<Shared>) -> Response {
    json(StatusCode::OK, &state.jobs.list())
}

/// A job: status, operators with parallelism, records in and out, watermarks,
/// backpressure, the last checkpoint.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path)), responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)))]
pub async fn get_job(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.detail(&id)?))
}

/// Task failures of a job (traps with the guest's message, guest errors…).
#[utoipa::path(get, path = "/v1/jobs/{id}/exceptions", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = [ExceptionInfo], headers(("x-total-count" = usize, description = "How many are kept in all"))), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn job_exceptions(
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    Ok(page(state.jobs.exceptions(&id)?, &parse_query(query)?))
}

/// Checkpoints: retained in storage, completed (with size and duration), failed.
#[utoipa::path(get, path = "/v1/jobs/{id}/checkpoints", params(("id" = String, Path)), responses((status = 200, body = CheckpointsView), (status = 404, body = ErrorBody)))]
pub async fn job_checkpoints(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.checkpoints(&id).await?))
}

/// Versions, swaps (with downtime), rollbacks, rescales, savepoints, stops.
#[utoipa::path(get, path = "/v1/jobs/{id}/history", params(("id" = String, Path)), responses((status = 200, body = [HistoryEvent]), (status = 404, body = ErrorBody)))]
pub async fn job_history(State(state): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &state.jobs.record(&id)?.history))
}

/// What the job's guests logged (SDK log calls, stdout, stderr), oldest first; the last
/// 2000 lines since the server started.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", params(("id" = String, Path), PageQuery),
    responses((status = 200, body = [GuestLogLine], headers(("x-total-count" = usize, description = "How many are kept in all"))), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn job_logs(
    State(state): State<Shared>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    Ok(page(state.jobs.logs(&id)?, &parse_query(query)?))
}

/// The most items one page holds (and the default page size).
pub const MAX_PAGE: usize = 2000;

/// A page of a list kept oldest first: skip the newest `offset`, then take at most
/// `limit` (default and maximum 2000) before them, still oldest first.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Newest items to skip (default 0).
    #[param(minimum = 0, maximum = 4294967295_u64)]
    offset: Option<u32>,
    /// Items to return (default 2000; more is 2000).
    #[param(minimum = 0, maximum = 4294967295_u64)]
    limit: Option<u32>,
}

/// `all[..]` paged by `q`, with the total in `x-total-count`.
fn page<T: serde::Serialize>(all: Vec<T>, q: &PageQuery) -> Response {
    let total = all.len();
    let end = total - q.offset.map_or(0, |o| o as usize).min(total);
    let start = end.saturating_sub(q.limit.map_or(MAX_PAGE, |l| l as usize).min(MAX_PAGE));
    let mut resp = json(StatusCode::OK, &all[start..end]);
    resp.headers_mut().insert("x-total-count", axum::http::HeaderValue::from(total));
    resp
}
