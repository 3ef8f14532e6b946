//! Liveness, metrics, the OpenAPI document, and what unknown routes get (the UI's pages).

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rivulet_server::ServerError;
use serde::{Deserialize, Serialize};
use utoipa::OpenApi as _;

use super::json;
use crate::Shared;
use crate::auth::Role;
use crate::error::{ApiError, ErrorBody};

pub async fn method_not_allowed(req: Request) -> Response {
    let body = ErrorBody { error: format!("method {} is not allowed on {}", req.method(), req.uri().path()) };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

pub async fn not_found(req: Request) -> Response {
    if crate::ui::is_read(req.method()) && crate::ui::is_ui_path(req.uri().path()) {
        let head = req.method() == axum::http::Method::HEAD;
        let mut resp = crate::ui::serve(req.uri().clone()).await;
        if head {
            *resp.body_mut() = Body::empty();
        }
        return resp;
    }
    ApiError(ServerError::NotFound(format!("route {} {}", req.method(), req.uri().path()))).into_response()
}

/// Whether the server is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// It answers.
    Ok,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: HealthStatus,
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
pub async fn healthz(State(state): State<Shared>) -> Response {
    let health = Health {
        status: HealthStatus::Ok,
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started.elapsed().as_secs_f64(),
        ui: crate::ui::is_built(),
        auth: state.config.auth.is_some(),
    };
    json(StatusCode::OK, &health)
}

/// Who the caller is to the server.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Session {
    /// The role of the presented token (`admin` on a server without tokens).
    pub role: Role,
}

/// The role of the presented token: what the UI may offer.
#[utoipa::path(get, path = "/v1/session", responses((status = 200, body = Session), (status = 401, body = ErrorBody)))]
pub async fn session(role: Option<Extension<Role>>) -> Response {
    json(StatusCode::OK, &Session { role: role.map_or(Role::Admin, |r| r.0) })
}

/// Metrics in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition")))]
pub async fn metrics_text(State(state): State<Shared>) -> Response {
    let text = crate::metrics::render(&state);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", responses((status = 200, description = "The OpenAPI document")))]
pub async fn openapi_json() -> Response {
    json(StatusCode::OK, &crate::ApiDoc::openapi())
}
