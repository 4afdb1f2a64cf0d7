//! Answers compressed (brotli or gzip) when the client accepts it: pages,
//! JSON and XML, scripts, styles and the WASM bundle. Never image bytes (a
//! disk image does not shrink, and compressing it costs the CPU an upload
//! or download should have), never a range (a range of a compressed answer
//! is not the range asked for), never anything small, never what is marked
//! [`as_is`], and nothing over [`MAX_ON_THE_FLY`]: an anonymous flood of
//! requests for the 2 MB WASM bundle must not cost a compression each
//! (such files are for compressing once, at build time).

use axum::http::{header, Extensions, HeaderMap, StatusCode, Version};
use axum::response::Response;
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

/// The largest answer compressed as it is sent, in bytes.
pub const MAX_ON_THE_FLY: u64 = 1 << 20;

/// The mark of an answer that goes as it is.
#[derive(Debug, Clone, Copy)]
struct AsIs;

/// Marks an answer to go as it is. The personal store's answers do: its
/// files are the user's bytes (their ranges and ETags are of those bytes),
/// and dav-server's bodies panic when polled past their end, as an encoder
/// polls them.
pub async fn as_is(mut response: Response) -> Response {
    response.extensions_mut().insert(AsIs);
    response
}

/// Whether an answer is one of [`COMPRESSIBLE`], whole, and not marked.
fn compressible(
    status: StatusCode,
    _: Version,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if status == StatusCode::PARTIAL_CONTENT
        || headers.contains_key(header::CONTENT_RANGE)
        || extensions.get::<AsIs>().is_some()
        || length.is_some_and(|length| length > MAX_ON_THE_FLY)
    {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(kind: &'static str, length: u64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        headers.insert(header::CONTENT_LENGTH, length.into());
        headers
    }

    fn decides(status: StatusCode, headers: &HeaderMap, extensions: &Extensions) -> bool {
        compressible(status, Version::HTTP_11, headers, extensions)
    }

    #[test]
    fn pages_and_documents_yes_bytes_ranges_marked_and_huge_no() {
        let none = Extensions::new();
        let ok = StatusCode::OK;
        assert!(decides(
            ok,
            &headers("text/html; charset=utf-8", 30_000),
            &none
        ));
        assert!(decides(
            ok,
            &headers("application/json", MAX_ON_THE_FLY),
            &none
        ));
        assert!(!decides(
            ok,
            &headers("application/octet-stream", 30_000),
            &none
        ));
        assert!(!decides(
            ok,
            &headers("application/wasm", MAX_ON_THE_FLY + 1),
            &none
        ));
        let partial = StatusCode::PARTIAL_CONTENT;
        assert!(!decides(
            partial,
            &headers("application/json", 30_000),
            &none
        ));
        let mut marked = Extensions::new();
        marked.insert(AsIs);
        assert!(!decides(ok, &headers("application/xml", 30_000), &marked));
    }
}
