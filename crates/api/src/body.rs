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
/// No body, or `null`, is `{}` (optional bodies). A number with a zero fraction (`3.0`) is an integer, as JSON Schema (and so the
/// OpenAPI document) says.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" { b"{}" } else { bytes };
    let first = match serde_json::from_slice(bytes) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    // Retry with integral floats made integers; report the first error if that fails too.
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && integral_floats_to_integers(&mut value)
        && let Ok(t) = serde_json::from_value(value)
    {
        return Ok(t);
    }
    Err(ServerError::BadRequest(format!("request body: {first}")).into())
}

/// Turn every float with a zero fraction that fits an `i64` or `u64` into that integer;
/// whether any was changed.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return false };
            // 2^63 and 2^64 are exact as floats: the casts below cannot saturate.
            let as_int = if f.fract() != 0.0 {
                None
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                Some(serde_json::Number::from(f as i64))
            } else if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                Some(serde_json::Number::from(f as u64))
            } else {
                None
            };
            match as_int {
                Some(i) => {
                    *n = i;
                    true
                }
                None => false,
            }
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        Value::Object(map) => map.values_mut().fold(false, |changed, v| integral_floats_to_integers(v) | changed),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_json;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Req {
        parallelism: u32,
        timeout_ms: Option<u64>,
    }

    #[test]
    fn integral_floats_are_integers_and_other_errors_keep_their_place() {
        let r: Req = parse_json(br#"{"parallelism": 4.0, "timeout_ms": 1e3}"#).expect("integral floats");
        assert_eq!(r, Req { parallelism: 4, timeout_ms: Some(1000) });
        let e = parse_json::<Req>(br#"{"parallelism": 4.5}"#).expect_err("a fraction").0.to_string();
        assert!(e.contains("expected u32") && e.contains("line 1 column"), "{e}");
        let e = parse_json::<Req>(br#"{"parallelism": -1.0}"#).expect_err("negative").0.to_string();
        assert!(e.contains("expected u32"), "{e}");
    }
}

/// An empty JSON object (unknown fields rejected).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}
