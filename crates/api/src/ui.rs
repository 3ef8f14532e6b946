//! The web UI: the single-page app built from `web-ui/` (by `make build`), embedded in
//! the binary so a user needs no Node.js at run time.
//!
//! Served without the API token (the page asks for it and sends it with each API call):
//! the assets hold no data. Unknown paths that are not API routes get `index.html`, so a
//! reload of any page of the app works.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The built assets of `web-ui/dist`.
#[derive(rust_embed::Embed)]
#[folder = "../../web-ui/dist/"]
#[allow_missing = true]
struct Assets;

/// What a binary built without the UI answers at `/`.
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Rivulet</title>\
<p>The web UI was not built into this binary. Run <code>make build</code> (it builds \
<code>web-ui/</code> with Vite, then the server), or use the REST API under <code>/v1/</code>.";

/// Whether a path belongs to the UI rather than to the API.
pub fn is_ui_path(path: &str) -> bool {
    !(path.starts_with("/v1/") || path == "/v1" || path == "/metrics" || path == "/healthz")
}

/// Whether a request only reads (`GET` or `HEAD`): the UI serves no other method.
pub fn is_read(method: &axum::http::Method) -> bool {
    method == axum::http::Method::GET || method == axum::http::Method::HEAD
}

/// Whether the binary holds a built UI.
pub fn is_built() -> bool {
    Assets::get("index.html").is_some()
}

/// Serve an asset, or `index.html` for app routes.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let (file, name) = match Assets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path),
        None => match Assets::get("index.html") {
            // A missing hashed asset is a 404, not the app page.
            Some(_) if path.starts_with("assets/") => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
            Some(f) => (f, "index.html"),
            None => {
                return ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], NOT_BUILT).into_response();
            }
        },
    };
    let mime = file.metadata.mimetype().to_owned();
    let mut resp = (StatusCode::OK, file.data.into_owned()).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    // Vite puts a content hash in every asset name: those never change.
    let cache = if name.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    // The page keeps a bearer token: it loads nothing from elsewhere, runs no inline
    // script and is never framed.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}
