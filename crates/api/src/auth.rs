//! Bearer-token authentication: every route but `/healthz` and the UI's files.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rivulet_server::ServerError;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::{Shared, ui};

/// Constant-time comparison of a presented token with the configured one (both hashed
/// first, so neither length nor content leaks through timing).
fn token_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware.
pub async fn auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(expected) = &state.config.auth_token
        && req.uri().path() != "/healthz"
        && !(ui::is_read(req.method()) && ui::is_ui_path(req.uri().path()))
    {
        let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| token_matches(p.trim(), expected)) {
            // The body of an unauthenticated request is not read: the connection closes.
            let mut resp = ApiError(ServerError::Unauthorized).into_response();
            resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            return resp;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::token_matches("secret-token-123", "secret-token-123"));
        assert!(!super::token_matches("secret-token-12", "secret-token-123"));
        assert!(!super::token_matches("", "secret-token-123"));
    }
}
