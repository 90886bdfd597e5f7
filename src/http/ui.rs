//! The management UI: the static files of `management-ui/`, embedded in the binary, served
//! at `/` with their content type, an ETag (304 when it matches), `Cache-Control: no-cache`
//! and a strict Content-Security-Policy (no inline script, nothing from another origin).
//! Paths without an extension are the UI's own routes and get its page.

use super::error::ApiError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "management-ui/"]
// The UI's own tests (run with node by .ci/run) and notes are not served.
#[exclude = "tests/*"]
#[exclude = "*.md"]
struct Assets;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
    form-action 'self'; frame-ancestors 'self'";

/// Answers every path the API's routes do not: unknown `/api` paths with the API's 404,
/// anything else from the UI's files.
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::not_found().into_response();
    }
    let file = path.trim_start_matches('/');
    let file = match file
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
    {
        true => file,
        false => "index.html",
    };
    let Some(asset) = Assets::get(file) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex(&asset.metadata.sha256_hash()));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = match matches {
        true => StatusCode::NOT_MODIFIED.into_response(),
        false => asset.data.into_owned().into_response(),
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(asset.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
