//! The length a request announces for its body.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

/// The body's `Content-Length`, if the request gave a readable one. hyper
/// holds the body to it, so nothing read from the body (a file in a form,
/// say) can be longer: an upload reserves quota up to it and no further.
/// A body sent chunked has no length, whatever `Content-Length` it also
/// names (hyper drops the header then, and its body is read chunked: a
/// length believed there would size every reservation of an upload by a
/// number its body need not keep to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLength(pub Option<u64>);

impl BodyLength {
    pub fn of(headers: &HeaderMap) -> Self {
        if headers.contains_key(header::TRANSFER_ENCODING) {
            return Self(None);
        }
        Self(
            headers
                .get(header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for BodyLength {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::of(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_has_no_length_whatever_else_it_names() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "1".parse().unwrap());
        assert_eq!(BodyLength::of(&headers), BodyLength(Some(1)));
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        assert_eq!(BodyLength::of(&headers), BodyLength(None));
    }
}
