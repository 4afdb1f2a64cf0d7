//! Answers compressed (brotli or gzip) when the client accepts it: pages,
//! JSON and XML, scripts, styles and the WASM bundle. Never image bytes (a
//! disk image does not shrink, and compressing it costs the CPU an upload
//! or download should have), never a range (a range of a compressed answer
//! is not the range asked for), never anything small.

use axum::http::{header, Extensions, HeaderMap, StatusCode, Version};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

/// The media types worth compressing.
const COMPRESSIBLE: [&str; 9] = [
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/xml",
    "text/xml",
    "application/wasm",
    "image/svg+xml",
];

/// Whether an answer is one of [`COMPRESSIBLE`], whole.
fn compressible(status: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions) -> bool {
    if status == StatusCode::PARTIAL_CONTENT || headers.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = kind.split(';').next().unwrap_or_default().trim();
    COMPRESSIBLE
        .iter()
        .any(|compressible| essence.eq_ignore_ascii_case(compressible))
}

/// The layer: brotli or gzip, as the client prefers, for answers of at
/// least 1 KiB that [`compressible`] lets through.
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new()
        .br(true)
        .gzip(true)
        .compress_when(SizeAbove::new(1024).and(compressible))
}
