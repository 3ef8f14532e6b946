//! Request bodies: read within a limit, parsed naming the field at fault.

use axum::body::{Body, Bytes};
use rivulet_server::ServerError;
use serde::Deserialize;

use crate::error::ApiResult;

/// Largest JSON (or YAML) request body.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// How much of an oversized body is still read (and thrown away) before answering 413,
/// so a client that is still sending gets the answer instead of a reset connection.
const DRAIN_BYTES: usize = 256 << 20;

/// How long a body may pause between chunks before the request is given up.
const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Read a body of at most `limit` bytes.
pub async fn read_body(body: Body, limit: usize, what: &str) -> ApiResult<Bytes> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0usize;
    loop {
        let next = tokio::time::timeout(BODY_IDLE_TIMEOUT, stream.next())
            .await
            .map_err(|_| ServerError::BadRequest(format!("{what} stopped arriving for {} s", BODY_IDLE_TIMEOUT.as_secs())))?;
        let Some(chunk) = next else { break };
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
        return Err(ServerError::TooLarge(format!("{what} is larger than {limit} bytes")).into());
    }
    Ok(Bytes::from(buf))
}

/// Read and drop up to `limit` bytes of a body that is refused, so a client still
/// sending it gets the answer rather than a broken connection.
pub async fn drain_body(body: Body, limit: usize) {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    while total < limit {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(chunk))) => total = total.saturating_add(chunk.len()),
            _ => break,
        }
    }
}

/// A request's query string as `T`, or a 400 naming what is wrong with it.
pub fn query<T>(q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    q.map(|axum::extract::Query(t)| t).map_err(|e| ServerError::BadRequest(format!("query: {}", e.body_text())).into())
}

/// Parse a JSON body into `T`, naming the field at fault (unknown fields are rejected).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    Ok(serde_json::from_slice(bytes).map_err(|e| ServerError::BadRequest(format!("request body: {e}")))?)
}

/// An empty JSON object (unknown fields rejected).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}
