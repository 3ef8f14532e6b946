//! `/v1/plugins`: upload (validated before anything is stored), list, get, delete.

use axum::body::Body;
use axum::extract::{FromRequest as _, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use rivulet_server::{PluginMeta, ServerError};
use serde::Deserialize;

use super::json;
use crate::Shared;
use crate::body::{drain_body, query as parse_query, read_body};
use crate::error::{ApiError, ApiResult, ErrorBody};

/// Query of a plugin upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Plugin name.
    #[param(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
    name: String,
    /// Plugin version.
    #[param(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")]
    version: String,
}

/// A component's bytes (the OpenAPI document's view of an upload body).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ComponentBytes(Vec<u8>);

/// A multipart upload: one file field (any name) with the component.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ComponentForm {
    /// The component.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload a component: the raw bytes as the body, or a multipart form with one file
/// field. It is compiled and checked against the `rivulet:operator` world before
/// anything is stored.
#[utoipa::path(post, path = "/v1/plugins", params(UploadQuery),
    request_body(content(
        (ComponentBytes = "application/wasm"),
        (ComponentBytes = "application/octet-stream"),
        (ComponentForm = "multipart/form-data")
    ), description = "The component's bytes, or a multipart form with one file field"),
    responses((status = 201, body = PluginMeta, description = "Registered"), (status = 200, body = PluginMeta, description = "Already registered with these bytes"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody, description = "Not an operator component"),
        (status = 503, body = ErrorBody, description = "Other uploads hold the server's upload buffer: retry shortly")))]
pub async fn upload_plugin(
    State(state): State<Shared>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> ApiResult<Response> {
    let limit = state.config.max_plugin_bytes;
    let is_multipart = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("multipart/form-data"));
    // The bytes this upload may hold, reserved server-wide before any is read: many
    // concurrent uploads cannot buffer more than --upload-buffer-mb together.
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let capacity_kib = (state.config.upload_buffer_bytes >> 10).max(1);
    let need_kib = (declared.unwrap_or(limit).min(limit).div_ceil(1024)).clamp(1, capacity_kib);
    let Ok(_reserved) = state.upload_buffer.clone().try_acquire_many_owned(need_kib as u32) else {
        drain_body(req.into_body(), limit).await;
        let e = ServerError::Unavailable(format!(
            "the server is receiving other uploads (its upload buffer, --upload-buffer-mb, holds {} MiB): retry shortly",
            state.config.upload_buffer_bytes >> 20
        ));
        let mut resp = ApiError(e).into_response();
        resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return Ok(resp);
    };
    let (parts, body) = req.into_parts();
    // The body is read before anything is judged, so the connection stays usable.
    let bytes = read_body(body, limit, "the plugin upload").await?;
    let q = parse_query(query)?;
    let bytes = if is_multipart {
        let req = Request::from_parts(parts, Body::from(bytes));
        let mut form = Multipart::from_request(req, &()).await.map_err(|e| ServerError::BadRequest(format!("multipart: {}", e.body_text())))?;
        let mut file = None;
        while let Some(field) = form.next_field().await.map_err(|e| ServerError::BadRequest(format!("multipart: {}", e.body_text())))? {
            let data = field.bytes().await.map_err(|e| ServerError::BadRequest(format!("multipart: {}", e.body_text())))?;
            if file.replace(data).is_some() {
                return Err(ServerError::BadRequest("multipart: send exactly one field, the component".into()).into());
            }
        }
        file.ok_or_else(|| ServerError::BadRequest("multipart: no field holds the component".into()))?
    } else {
        bytes
    };
    if bytes.is_empty() {
        return Err(ServerError::BadRequest("the body is empty: send the component's bytes".into()).into());
    }
    let (meta, created) = state.registry.upload(&q.name, &q.version, bytes.to_vec()).await?;
    Ok(json(if created { StatusCode::CREATED } else { StatusCode::OK }, &meta))
}

/// Every registered plugin version.
#[utoipa::path(get, path = "/v1/plugins", responses((status = 200, body = [PluginMeta])))]
pub async fn list_plugins(State(state): State<Shared>) -> Response {
    json(StatusCode::OK, &state.registry.list())
}

/// One plugin version.
#[utoipa::path(get, path = "/v1/plugins/{name}/{version}", params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = PluginMeta), (status = 404, body = ErrorBody)))]
pub async fn get_plugin(State(state): State<Shared>, Path((name, version)): Path<(String, String)>) -> ApiResult<Response> {
    let meta = state.registry.get(&name, &version).ok_or_else(|| ServerError::NotFound(format!("plugin {name}@{version}")))?;
    Ok(json(StatusCode::OK, &meta))
}

/// Remove a plugin version (refused while a running job uses it).
#[utoipa::path(delete, path = "/v1/plugins/{name}/{version}", params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = PluginMeta), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_plugin(State(state): State<Shared>, Path((name, version)): Path<(String, String)>) -> ApiResult<Response> {
    if let Some(job) = state.jobs.uses_plugin(&name, &version) {
        return Err(ServerError::Conflict(format!("plugin {name}@{version} is used by running job {job}")).into());
    }
    Ok(json(StatusCode::OK, &state.registry.delete(&name, &version)?))
}
