//! The length a request announces for its body.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

/// The body's `Content-Length`, if the request gave a readable one. hyper
/// holds the body to it, so nothing read from the body (a file in a form,
/// say) can be longer: an upload reserves quota up to it and no further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLength(pub Option<u64>);

impl BodyLength {
    pub fn of(headers: &HeaderMap) -> Self {
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
