//! ViCE errors: `{"code", "message"}` (XML root `Error`) on every non-2xx.
//! The registry answers invalid input with 405, not 400.

use app::error::CoreError;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::codec::{response_format, Format, Reply};
use crate::web::status_of;

#[derive(Debug, Serialize)]
struct ErrorView {
    code: u16,
    message: String,
}

/// The status ViCE gives a core error.
fn status(error: &CoreError) -> StatusCode {
    match error {
        CoreError::Invalid(_) => StatusCode::METHOD_NOT_ALLOWED,
        other => status_of(other),
    }
}

/// An error with its own status, in the negotiated format.
pub fn error_with(format: Format, status: StatusCode, message: String) -> Response {
    let view = ErrorView {
        code: status.as_u16(),
        message,
    };
    let mut response = Reply::new(format, status, "Error", &view).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"depot\""),
        );
    }
    response
}

/// The answer to a handler's outcome.
pub fn respond(format: Format, outcome: Result<Reply, CoreError>) -> Response {
    match outcome {
        Ok(reply) => reply.into_response(),
        Err(error) => error_with(format, status(&error), error.to_string()),
    }
}

/// A method the resource does not have.
pub async fn method_not_allowed(method: Method, headers: HeaderMap) -> Response {
    error_with(
        response_format(&headers),
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on this resource"),
    )
}

/// A path under `/v1` that names no resource: 404 in the negotiated format,
/// whatever the method, rather than the UI's page.
pub async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    let error = CoreError::not_found(format!("resource {}", uri.path()));
    error_with(
        response_format(&headers),
        StatusCode::NOT_FOUND,
        error.to_string(),
    )
}
