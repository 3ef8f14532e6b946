//! The handlers, by resource.

pub mod jobs;
pub mod operations;
pub mod plugins;
pub mod system;
pub mod workers;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `value` as JSON with `status`.
fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}
